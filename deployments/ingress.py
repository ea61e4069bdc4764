"""The Ingress deployment: serves the REST API and routes to the Embedder and the ChromaStore."""

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api.app import create_api
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.schemas import SearchRequest, SearchResponse
from deployments.api.service import TenantService
from deployments.core.config import Settings
from deployments.core.errors import ServiceError
from deployments.embedding.query_encoders import QueryEmbedding, query_encoder
from deployments.embedding.tokens import load_tokenizer


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
        embedder_calls, store_calls = EmbedderCalls(embedder), StoreCalls(store)
        self.service = TenantService(
            settings,
            embedder_calls,
            store_calls,
            load_tokenizer(settings.model_path),
            search_batcher=self.search_batched,
            queries=query_encoder(settings, embedder_calls, query_embedding),
        )

    # Concurrent searches share one query embedding and one store call: on a small machine Serve's
    # per-call cost, not the model, bounds throughput, so fewer calls per search is what pays.
    # No wait: a lone search goes at once; under load, searches queue while batches are in flight.
    # Several batches at once make a pipeline: one batch's queries are embedded while the store
    # searches for the one before (README: Performance).
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0, max_concurrent_batches=4)
    async def search_batched(self, requests: list[SearchRequest]) -> list[SearchResponse | ServiceError]:
        return await self.service.search_batch(requests)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built in the replica, after __init__, so the app holds this replica's handles.
        return create_api(self.service)
