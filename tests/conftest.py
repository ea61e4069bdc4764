"""Shared fixtures: settings on a temporary folder, the environment kept out of unit tests, and one
ONNX export of the model for the whole run."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deployments.core.config import Settings, load_settings

# Every setting's variable (API_KEY, EMBED_BACKEND, ... as well as the tenant's): one exported in a
# developer's shell would otherwise turn the contract tests into 401s, or load another backend.
# Except MODEL_CACHE_DIR, which only says where the model's export is kept: the run sets its own.
MODEL_CACHE_VARIABLE = "MODEL_CACHE_DIR"
SETTING_VARIABLES = tuple(name.upper() for name in Settings.model_fields if name.upper() != MODEL_CACHE_VARIABLE)

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


@pytest.fixture(scope="session", autouse=True)
def onnx_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One model cache folder (MODEL_CACHE_DIR) for the whole run, the services the end-to-end tests
    start included (they inherit this environment): the model is exported to ONNX once (10-15 s of
    torch on 2 cores) by the first that needs it, as the container image has it built in, instead of
    at every start of every test's service. The export itself is tested on a folder of its own
    (tests/unit/test_backends.py)."""
    folder = tmp_path_factory.getbasetemp() / "cache" / "model-cache"  # the layout of bench's --cache-dir
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_CACHE_VARIABLE, str(folder))
        yield folder
