"""Where a search's query is embedded: in the Ingress's own process, or by the Embedder's query lane.

Every Serve call between deployments costs about 3 ms and as much CPU on each side on 2 cores
(README: Performance); embedding a 10-word query costs about 7 ms. So on CPU the Ingress holds a
second session of the model for queries only, and a search makes one call (to the store) instead
of two. Documents are still embedded by the Embedder, which scales on its own; where the model
runs on a GPU, or only on torch, queries go to the Embedder's query lane instead (serve_config's
`query_embedding` argument, app.py).
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol

import numpy as np

from deployments.core.config import Settings
from deployments.core.types import Vectors
from deployments.embedding.backends import EmbeddingBackend
from deployments.embedding.models import cores
from deployments.runtime.lanes import Lane

QueryEmbedding = Literal["ingress", "embedder"]

# Queries in one run at most: the backend cuts it into model runs of TOKEN_BUDGET tokens (about
# ten queries each, packed into one line), spread over its threads.
MOST_QUERIES_A_RUN = 32
# Calls to the Embedder's query lane in flight at once, from one Ingress replica.
EMBEDDER_CALLS_IN_FLIGHT = 4

logger = logging.getLogger("ray.serve")


class QueryEncoder(Protocol):
    async def embed_queries(self, texts: list[str]) -> Vectors:
        """One unit-length row per query, the same model as the stored documents'."""
        ...


class LocalQueryEncoder:
    """The model in this process, on threads of its own (ONNX Runtime releases the GIL while it
    works, so the event loop goes on answering HTTP meanwhile): one per core, so two search batches
    in flight are embedded side by side, each on a core, rather than one after the other."""

    def __init__(self, backend: EmbeddingBackend) -> None:
        self.backend = backend
        self._threads = ThreadPoolExecutor(cores(), "query-embed")

    async def embed_queries(self, texts: list[str]) -> Vectors:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.backend.encode, texts)


class SharedRuns:
    """An encoder whose concurrent calls share model runs (deployments.runtime.lanes): at most
    `slots` runs in flight; calls made meanwhile go together into the next."""

    def __init__(self, encoder: QueryEncoder, slots: int) -> None:
        self.encoder = encoder
        self._lane: Lane[str, Vectors] = Lane(self._rows, slots, MOST_QUERIES_A_RUN)

    async def _rows(self, texts: list[str]) -> list[Vectors]:
        return list(await self.encoder.embed_queries(texts))

    async def embed_queries(self, texts: list[str]) -> Vectors:
        return np.array(await self._lane(texts), dtype=np.float32)


def query_encoder(settings: Settings, embedder: QueryEncoder, where: QueryEmbedding) -> QueryEncoder:
    """The encoder `where` asks for: this process's model, or `embedder` (the Embedder's query lane:
    deployments.api.handles.EmbedderCalls), also when the model cannot run here on ONNX Runtime.
    Either way concurrent searches share its runs."""
    if where == "ingress":
        # The model's libraries are imported only where they are used.
        from deployments.embedding.models import backend_choice, load_backend

        for_queries = settings.for_queries()
        if backend_choice(for_queries, gpu=False) != "torch":
            backend = load_backend(for_queries, gpu=False)
            logger.info("queries are embedded in the Ingress by %s", backend.name)
            return SharedRuns(LocalQueryEncoder(backend), slots=cores())
        logger.warning("queries are embedded by the Embedder: %s runs on torch, not here", settings.model_name)
    return SharedRuns(embedder, slots=EMBEDDER_CALLS_IN_FLIGHT)
