"""The Ingress deployment: serves the REST API and routes to the Embedder and the ChromaStore."""

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api.app import create_api
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.service import TenantService
from deployments.core.config import Settings
from deployments.embedding.query_encoders import QueryEmbedding, query_encoder
from deployments.embedding.tokens import load_tokenizer
from deployments.runtime.heap import trim_heap_when_quiet


# Its shape (replicas, CPUs, queue sizes, backpressure) is serve_config*.yaml's alone.
@serve.deployment
@serve.ingress()
class Ingress:
    def __init__(
        self,
        settings: Settings,
        embedder: DeploymentHandle[Any],
        store: DeploymentHandle[Any],
        query_embedding: QueryEmbedding = "ingress",
    ) -> None:
        embedder_calls, store_calls = EmbedderCalls(embedder), StoreCalls(store, channel=True)
        self.service = TenantService(
            settings,
            embedder_calls,
            store_calls,
            load_tokenizer(settings.model_path),
            queries=query_encoder(settings, embedder_calls, query_embedding),
        )
        trim_heap_when_quiet()  # what a burst of searches left free in the heap (runtime.heap)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built in the replica, after __init__, so the app holds this replica's handles.
        return create_api(self.service)
