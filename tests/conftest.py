"""Shared fixtures: settings on a temporary folder, and the environment kept out of unit tests."""

from collections.abc import Callable
from pathlib import Path

import pytest

from deployments.config import Settings, load_settings

TENANT_VARIABLES = ("TENANT_ID", "PLAN", "MODEL_NAME", "DIMENSION", "MAX_DOCS", "PERSIST_DIR")

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _no_tenant_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell or .env must not change what the tests see."""
    for name in TENANT_VARIABLES:
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
