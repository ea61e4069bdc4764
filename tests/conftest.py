"""Shared fixtures: settings on a temporary folder, and the environment kept out of unit tests."""

from collections.abc import Callable
from pathlib import Path

import pytest

from deployments.core.config import Settings, load_settings

# Every setting's variable (API_KEY, EMBED_BACKEND, ... as well as the tenant's): one exported in a
# developer's shell would otherwise turn the contract tests into 401s, or load another backend.
SETTING_VARIABLES = tuple(name.upper() for name in Settings.model_fields)

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _no_tenant_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell or .env must not change what the tests see."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    def make(**overrides: object) -> Settings:
        overrides.setdefault("persist_dir", tmp_path / "data")
        return load_settings(_env_file=None, **overrides)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()
