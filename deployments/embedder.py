"""The Embedder deployment: the tenant's model, loaded once per replica, fed by dynamic batching."""

import asyncio
import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve

from deployments.core.config import Settings
from deployments.core.types import Vectors
from deployments.embedding.backends import EmbeddingBackend, SentenceTransformerBackend
from deployments.embedding.models import MAX_TEXTS_PER_CALL, Embedded, embed_texts, load_backend
from deployments.runtime import metrics
from deployments.runtime.heap import trim_heap_when_quiet


def total_texts(requests: list[list[str]]) -> int:
    """A batch's size for `@serve.batch`: its texts, not its calls."""
    return sum(len(texts) for texts in requests)


def _rows_of(requests: list[list[str]]) -> list[slice]:
    """Which rows of a batch's results belong to each of the calls it was made of."""
    ends = list(itertools.accumulate(len(request) for request in requests))
    return [slice(end - len(request), end) for request, end in zip(requests, ends, strict=True)]


# How much lower than the rest of the service bulk embedding runs (Linux nice steps; the launcher
# starts Ray's workers at 0, so bulk runs at 10): when a search and an import want the same core,
# the search's work (HTTP, query embedding, the store's lookup and writes) goes first; when nobody
# searches, the import has every core. Measured in README: Performance.
BULK_NICENESS_STEPS = 10


def lower_this_threads_priority(steps: int = BULK_NICENESS_STEPS) -> None:
    """Run the calling thread, and the threads it starts from now on, `steps` nice levels lower
    (a per-thread attribute on Linux, inherited by new threads; 19 at most)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: one priority for all
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + steps))


# Its shape (replicas, CPUs, GPUs, autoscaling, queue sizes, batching) is serve_config*.yaml's alone.
@serve.deployment
class Embedder:
    """Two lanes that never wait for each other: `embed` for documents (imports, chunks, index
    rebuilds), at low CPU priority, and `embed_queries` for searches, with a model session of its
    own at normal priority (loaded at start when `serves_queries`, else on the first query: with the
    shipped CPU config the Ingress embeds its queries itself, README: Architecture)."""

    def __init__(self, settings: Settings, serves_queries: bool = True) -> None:
        """`serves_queries`: whether searches are embedded here (else the query lane's model is
        loaded only if a query ever comes)."""
        import ray

        self._settings = settings
        self._gpu = bool(ray.get_gpu_ids())
        # One thread each, so the model runs one batch at a time per lane; the bulk one is made at low
        # priority before the model is loaded, so ONNX Runtime's own threads inherit it.
        self._bulk = ThreadPoolExecutor(1, "bulk-embed", initializer=lower_this_threads_priority)
        self._queries = ThreadPoolExecutor(1, "query-embed")
        self.backend = self._bulk.submit(load_backend, settings, self._gpu).result()
        self._query_backend: EmbeddingBackend | None = None
        self._documents_pending = 0  # texts of document calls not answered yet (queued or embedding)
        if serves_queries:
            self._queries.submit(self._query_model).result()
        trim_heap_when_quiet()  # an import's model runs leave ~300 MB free in the heap (runtime.heap)

    async def embed(self, texts: list[str]) -> Embedded:
        """Documents (or chunks): at most MAX_TEXTS_PER_CALL texts, embedded with the calls beside it."""
        self._documents_pending += len(texts)
        try:
            return await self._embed_documents(texts)
        finally:
            self._documents_pending -= len(texts)

    # Concurrent calls are embedded as one batch of at most `max_batch_size` texts, in the order they came.
    @serve.batch(max_batch_size=MAX_TEXTS_PER_CALL, batch_wait_timeout_s=0.0, batch_size_fn=total_texts)
    async def _embed_documents(self, requests: list[list[str]]) -> list[Embedded]:
        texts = [text for request in requests for text in request]
        metrics.embed_batch.observe(len(texts))
        # In a thread, so the replica keeps accepting (and queueing) calls while the model works.
        embedded = await asyncio.get_running_loop().run_in_executor(self._bulk, embed_texts, self.backend, texts)
        return [Embedded(embedded.vectors[rows], embedded.truncated[rows]) for rows in _rows_of(requests)]

    async def embed_queries(self, texts: list[str]) -> Vectors:
        """Search queries (each call a batch of them), batched among themselves only: never behind a
        document batch."""
        vectors: Vectors = await self._embed_query_batch(texts)
        return vectors

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _embed_query_batch(self, requests: list[list[str]]) -> list[Vectors]:
        texts = [text for request in requests for text in request]
        vectors = await asyncio.get_running_loop().run_in_executor(self._queries, self._encode_queries, texts)
        return [vectors[rows] for rows in _rows_of(requests)]

    def _encode_queries(self, texts: list[str]) -> Vectors:
        return self._query_model().encode(texts)

    def _query_model(self) -> EmbeddingBackend:
        if self._query_backend is None:
            # torch's model may be shared by two threads; an ONNX session of its own keeps the lanes apart.
            shared = isinstance(self.backend, SentenceTransformerBackend) and self._settings.query_backend is None
            self._query_backend = self.backend if shared else load_backend(self._settings.for_queries(), self._gpu)
        return self._query_backend

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Tune batching live from serve_config.yaml's user_config (`max_batch_size` in texts)."""
        if "max_batch_size" in user_config:
            texts = max(int(user_config["max_batch_size"]), MAX_TEXTS_PER_CALL)  # a call must fit one batch
            self._embed_documents.set_max_batch_size(texts)  # type: ignore[attr-defined]
        if "batch_wait_timeout_s" in user_config:
            wait_s = float(user_config["batch_wait_timeout_s"])
            self._embed_documents.set_batch_wait_timeout_s(wait_s)  # type: ignore[attr-defined]

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "dimension": self.backend.dimension,
            "max_tokens": self.backend.max_tokens,
            "documents_pending": self._documents_pending,
        }
