"""Check the tenant's settings before Ray starts: `python -m deployments.core.preflight`.

`serve run serve_config.yaml` builds the application inside Ray, where a bad setting only shows up
as a failed deployment in the logs while the process keeps running. The entrypoints run this first,
so a misconfigured container exits at once (status 2) with one line naming the variable.
"""

import sys
import tempfile

from deployments.core.config import Settings, load_settings
from deployments.core.errors import ConfigError


def checked_settings() -> Settings | None:
    """The settings, summarised on stdout; None (reason on stderr) when they are invalid."""
    try:
        settings = load_settings()
        _check_writable(settings)
    except ConfigError as exc:
        print(f"chromedb-instance: {exc}", file=sys.stderr)
        return None
    print(
        f"chromedb-instance: tenant {settings.tenant_id!r}, plan {settings.plan}, model {settings.model_name} "
        f"({settings.dimension} dims), quota {settings.quota} documents, data in {settings.data_dir}"
    )
    return settings


def _check_writable(settings: Settings) -> None:
    """chromadb cannot even open a folder it cannot write: say so now, not as a failing store replica."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"PERSIST_DIR: the tenant's data folder {settings.data_dir} is not writable ({exc.strerror}); "
            "mount a writable volume there"
        ) from None


def main() -> int:
    return 0 if checked_settings() is not None else 2


if __name__ == "__main__":
    sys.exit(main())
