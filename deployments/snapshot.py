"""The operator's restore command: `python -m deployments.snapshot restore SNAPSHOT_FOLDER`, with
the instance stopped and the tenant's settings (TENANT_ID, PERSIST_DIR, ...) in the environment
(README: Snapshots). The work is storage.snapshot.restore."""

import sys
from pathlib import Path

from deployments.core.config import load_settings
from deployments.core.errors import ConfigError
from deployments.storage.snapshot import restore


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "restore":
        print("usage: python -m deployments.snapshot restore SNAPSHOT_FOLDER", file=sys.stderr)
        return 2
    try:
        target = restore(Path(argv[1]), load_settings())
    except ConfigError as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 2
    print(f"restored {argv[1]} into {target}: start the service with these settings")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
