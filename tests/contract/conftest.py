"""The real API and Gateway over in-process stand-ins for the deployment handles: the real
ChromaStore class on a temporary folder and an Embedder using the fast hashing backend."""

from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from ray.serve import Deployment

from deployments.api import create_api
from deployments.backends import HashingBackend
from deployments.embedder import Embedded, embed_texts, truncated_flags
from deployments.gateway import Gateway
from deployments.store import ChromaStore


class LocalHandle:
    """`handle.method.remote(...)` for a plain object, as a DeploymentHandle offers it."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> SimpleNamespace:
        method = getattr(self._target, name)

        async def remote(*args: Any) -> Any:
            result = method(*args)
            return await result if hasattr(result, "__await__") else result

        return SimpleNamespace(remote=remote)


class FakeEmbedder:
    def __init__(self, max_tokens: int = 256) -> None:
        self.backend = HashingBackend(384, max_tokens)
        self.encoded: list[str] = []  # every text the model was run on, in order

    async def embed(self, texts: list[str]) -> Embedded:
        self.encoded.extend(texts)
        return embed_texts(self.backend, texts)

    def truncated(self, texts: list[str]) -> list[bool]:
        return truncated_flags(self.backend, texts)

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend.name}


@pytest.fixture
def make_client(make_settings):
    def make(**overrides: Any) -> TestClient:
        settings = make_settings(**overrides)
        store_class = cast(Deployment, ChromaStore).func_or_class  # the plain class, outside Ray
        assert callable(store_class)
        store = store_class(settings)
        embedder = FakeEmbedder()
        api = create_api(Gateway(settings, LocalHandle(embedder), LocalHandle(store)))
        api.state.embedder = embedder  # for tests that check what the model was run on
        api.state.store = store  # for tests that make the store misbehave
        return TestClient(api)

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client(max_docs=20)
