"""The real API and TenantService over in-process stand-ins for the deployment handles: the real
ChromaStore class on a temporary folder and an Embedder using the fast hashing backend."""

from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from ray.serve import Deployment

from deployments.api.app import create_api
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.service import TenantService
from deployments.store import ChromaStore
from tests.fakes import FakeEmbedder, LocalHandle


@pytest.fixture
def make_client(make_settings):
    def make(**overrides: Any) -> TestClient:
        settings = make_settings(**overrides)
        store_class = cast(Deployment, ChromaStore).func_or_class  # the plain class, outside Ray
        assert callable(store_class)
        embedder = FakeEmbedder()
        store = store_class(settings, LocalHandle(embedder))
        embedder_handle, store_handle = LocalHandle(embedder), LocalHandle(store)
        service = TenantService(settings, EmbedderCalls(embedder_handle), StoreCalls(store_handle), embedder.backend)
        api = create_api(service)
        api.state.handles = {"Embedder": embedder_handle, "ChromaStore": store_handle}  # for tests that count calls
        api.state.embedder = embedder  # for tests that check what the model was run on
        api.state.store = store  # for tests that make the store misbehave
        return TestClient(api)

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client(max_docs=20)
