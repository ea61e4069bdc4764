"""What each route does, composed from the Embedder and ChromaStore handles.

The routes stay thin and the same service runs under Ray Serve (deployment handles) and in contract
tests (in-process stand-ins with the same `.method.remote(...)` shape), both behind the typed calls
of deployments.api.handles.

An /embed/ is three calls at most: the store (stored vectors, quota), the Embedder (vectors of the
texts that changed), the store (the write). Token counts and chunk boundaries need the tokenizer
only, which the Ingress holds itself (deployments.embedding.tokens).
"""

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np

from deployments.api import limits
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.rate_limits import RateLimiter
from deployments.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    CountResponse,
    DeleteRequest,
    DeleteResponse,
    DeploymentState,
    DocumentOut,
    EmbedRequest,
    EmbedResponse,
    GetRequest,
    GetResponse,
    HealthResponse,
    ListRequest,
    ListResponse,
    PlanLimitsOut,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SnapshotResponse,
    UpdateRequest,
    UpdateResponse,
)
from deployments.api.write_gate import WriteGate
from deployments.core.config import Settings
from deployments.core.errors import InvalidRequest, ServiceError
from deployments.core.types import Chunks, Span, StoreInfo, Vectors
from deployments.embedding.models import MAX_TEXTS_PER_CALL, Embedded
from deployments.embedding.query_encoders import QueryEncoder
from deployments.embedding.tokens import Tokenizing, chunk_texts, truncated_flags
from deployments.runtime import metrics
from deployments.runtime.calls import NotAnsweredInTime
from deployments.runtime.lanes import Lane
from deployments.storage.ranking import DEFAULT_HYBRID_WEIGHT, Query

Info = TypeVar("Info", StoreInfo, dict[str, Any])
# Store calls for searches in flight at once; searches made meanwhile share the next (runtime.lanes).
STORE_SEARCH_CALLS_IN_FLIGHT = 2
# Searches in one store call, at most.
MOST_SEARCHES_A_CALL = 32


class TenantService:
    def __init__(
        self,
        settings: Settings,
        embedder: EmbedderCalls,
        store: StoreCalls,
        tokenizer: Tokenizing,
        queries: QueryEncoder | None = None,
    ) -> None:
        """`tokenizer`: the model's (deployments.embedding.tokens). `queries` embeds search queries
        (deployments.embedding.query_encoders); by default the Embedder's query lane."""
        self.settings = settings
        self._embedder = embedder
        self._store = store
        self._tokenizer = tokenizer
        # Concurrent searches share store calls: a call's fixed cost on both sides (the hop, the
        # hand-off to a reader thread) is paid once for them all (README: Performance).
        self._store_searches = Lane(store.search_many, STORE_SEARCH_CALLS_IN_FLIGHT, MOST_SEARCHES_A_CALL)
        self._queries = queries or embedder
        self.rate_limiter = RateLimiter(settings.limits)
        self._writes = WriteGate()  # reads never queue behind a burst of writes (deployments.api.write_gate)

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        limits.check_embed(request, self.settings.limits)
        for index, doc in enumerate(request.documents):
            self._check_dimension(doc.embedding, f"documents.{index}.embedding")
        ids = [doc.id or uuid.uuid4().hex for doc in request.documents]
        texts = [doc.text for doc in request.documents]
        supplied = [doc.embedding for doc in request.documents]
        async with self._writes.admit(charge=lambda: self.rate_limiter.admit_documents(len(ids))):
            # One store read before the model runs at all: a write past the quota is refused here, not
            # after its embedding (the upsert checks again, atomically), and unchanged texts keep their vectors.
            stored = await self._store.stored_vectors(ids, texts)
            chunks: list[Chunks | None] = await self._chunks(texts, supplied) if request.chunking else [None] * len(ids)
            # A chunked document's own vector is its first chunk's, already made.
            given = [vector if cut is None else cut.vectors[0] for vector, cut in zip(supplied, chunks, strict=True)]
            embedded = await self._embed_changed(ids, texts, given, stored)
            count = await self._store.upsert(
                ids,
                texts,
                embedded.vectors,
                [doc.metadata for doc in request.documents],
                [vector is not None for vector in supplied],
                chunks,
            )
            self._counted(count)
            truncated = [id_ for id_, cut in zip(ids, embedded.truncated, strict=True) if cut]
            cut_into = {id_: len(cut.spans) for id_, cut in zip(ids, chunks, strict=True) if cut is not None}
            return EmbedResponse(ids=ids, count=count, truncated=truncated, chunks=cut_into)

    async def _chunks(self, texts: list[str], supplied: list[list[float] | None]) -> list[Chunks | None]:
        """Each text longer than one chunk, cut and embedded chunk by chunk (None for the others, and
        for documents that bring their own vector)."""
        candidates = [i for i, vector in enumerate(supplied) if vector is None]
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        spans: list[list[Span]] = await asyncio.to_thread(
            chunk_texts, self._tokenizer, [texts[i] for i in candidates], size, overlap
        )
        long = {i: cut for i, cut in zip(candidates, spans, strict=True) if len(cut) > 1}
        limits.check_chunks(sum(len(cut) for cut in long.values()), self.settings.limits)
        chunks: list[Chunks | None] = [None] * len(texts)
        if long:
            pieces = [texts[i][start:end] for i, cut in long.items() for start, end in cut]
            embedded = await self._embed_documents(pieces)
            first = 0
            for i, cut in long.items():
                chunks[i] = Chunks(cut, embedded.vectors[first : first + len(cut)])
                first += len(cut)
        return chunks

    async def _embed_changed(
        self, ids: list[str], texts: list[str], supplied: list[list[float] | Vectors | None], stored: dict[str, Vectors]
    ) -> Embedded:
        """Vectors for every text: the tenant's own where supplied, else the `stored` one where the
        text is stored unchanged under the same id (the model's vector of that very text), else the
        model's. Only the last kind runs the model."""
        vectors = np.empty((len(ids), self.settings.dimension), dtype=np.float32)
        truncated = [False] * len(ids)  # a supplied vector was not cut to the model's window
        own = [i for i, vector in enumerate(supplied) if vector is not None]
        for i in own:
            vectors[i] = supplied[i]
        rest = [i for i in range(len(ids)) if supplied[i] is None]
        changed = [i for i in rest if ids[i] not in stored]
        reused = [i for i in rest if ids[i] in stored]
        if changed:
            fresh = await self._embed_documents([texts[i] for i in changed])
            vectors[changed] = fresh.vectors
            for i, cut in zip(changed, fresh.truncated, strict=True):
                truncated[i] = cut
        if reused:
            cut_reused = await asyncio.to_thread(truncated_flags, self._tokenizer, [texts[i] for i in reused])
            for i, cut in zip(reused, cut_reused, strict=True):
                vectors[i] = stored[ids[i]]
                truncated[i] = cut
        return Embedded(vectors, truncated)

    async def _embed_documents(self, texts: list[str]) -> Embedded:
        """The model's vectors for documents (or chunks), in calls of MAX_TEXTS_PER_CALL texts."""
        slices = [texts[start : start + MAX_TEXTS_PER_CALL] for start in range(0, len(texts), MAX_TEXTS_PER_CALL)]
        parts = await asyncio.gather(*(self._embedder.embed(part) for part in slices))
        return Embedded(
            np.concatenate([part.vectors for part in parts]), [cut for part in parts for cut in part.truncated]
        )

    async def embeddings(self, texts: list[str]) -> tuple[Vectors, list[int]]:
        """The model's vectors of `texts`, stored nowhere (POST /v1/embeddings), and how many tokens
        the model read of each. From the Embedder's document lane, the one that made every stored
        vector, so a text gets the very vector /embed/ stores for it; the Ingress's query model is a
        second session on one thread for searches, which a thousand inputs would hold up."""
        limits.check_inputs(texts, self.settings.limits)
        self.rate_limiter.admit_documents(len(texts), field="input")  # each costs the model a document's run
        embedded, counts = await asyncio.gather(
            self._embed_documents(texts), asyncio.to_thread(self._tokenizer.token_counts, texts)
        )
        # Past its window the model reads a text's start only (as /embed/ does): that is what it used.
        window = self._tokenizer.max_tokens
        return embedded.vectors, [min(count, window) for count in counts]

    async def search(self, request: SearchRequest) -> SearchResponse:
        self._check_search(request)
        [result] = await self.search_batch([request])
        if isinstance(result, ServiceError):
            raise result
        return result

    async def search_many(self, request: BatchSearchRequest) -> BatchSearchResponse:
        """Several searches in one request: each checked and answered as /search/ does, in one
        batch; the first that fails fails the request, its field named within `searches`."""
        for index, search in enumerate(request.searches):
            self._check_search(search, f"searches.{index}.")
        if len(request.searches) > 1:
            self.rate_limiter.admit_request(len(request.searches) - 1)  # the middleware counted one
        results = await self.search_batch(request.searches)
        for index, result in enumerate(results):
            if isinstance(result, ServiceError):
                raise type(result)(result.message, field=f"searches.{index}.{result.field or ''}".rstrip("."))
        return BatchSearchResponse(results=[r for r in results if isinstance(r, SearchResponse)])

    def _check_search(self, request: SearchRequest, field: str = "") -> None:
        limits.check_search(request, self.settings.limits, field)
        self._check_dimension(request.vector, f"{field}vector")

    def _check_dimension(self, vector: list[float] | None, field: str) -> None:
        if vector is not None and len(vector) != self.settings.dimension:
            raise InvalidRequest(
                f"the vector has {len(vector)} numbers; this instance's model ({self.settings.model_name}) "
                f"makes {self.settings.dimension}",
                field=field,
            )

    async def search_batch(self, requests: list[SearchRequest]) -> list[SearchResponse | ServiceError]:
        """Many searches for the price of two hops at most: one model run for all queries that need
        a vector (keyword ones and those that bring their own do not), one store call; searches
        made meanwhile by other requests share both (runtime.lanes)."""
        needing = [i for i, r in enumerate(requests) if r.mode != "keyword" and r.vector is None]
        vectors = {i: np.asarray(r.vector, dtype=np.float32) for i, r in enumerate(requests) if r.vector is not None}
        if needing:
            embedded = await self._queries.embed_queries([requests[i].query or "" for i in needing])
            vectors.update(zip(needing, embedded, strict=True))
        queries = [
            Query(
                vectors.get(i),
                r.top_k,
                r.where,
                r.query or "",
                r.mode,
                DEFAULT_HYBRID_WEIGHT if r.hybrid_weight is None else r.hybrid_weight,
                r.where_document,
            )
            for i, r in enumerate(requests)
        ]
        found = await self._store_searches(queries)
        return [
            hits if isinstance(hits, ServiceError) else SearchResponse(results=[SearchHit(**hit) for hit in hits])
            for hits in found
        ]

    async def get(self, request: GetRequest) -> GetResponse:
        limits.check_ids(request.ids, self.settings.limits)
        found = await self._store.get(request.ids, list(dict.fromkeys(request.include)))
        present = {document["id"] for document in found}
        missing = [id_ for id_ in dict.fromkeys(request.ids) if id_ not in present]
        return GetResponse(documents=[DocumentOut(**document) for document in found], missing=missing)

    async def list(self, request: ListRequest) -> ListResponse:
        limits.check_list(request, self.settings.limits)
        include = list(dict.fromkeys(request.include))
        documents, next_offset = await self._store.page(
            request.limit, request.offset, request.where, request.where_document, include
        )
        return ListResponse(documents=[DocumentOut(**document) for document in documents], next_offset=next_offset)

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        limits.check_update(request, self.settings.limits)
        ids = [document.id for document in request.documents]
        metadatas = [document.metadata for document in request.documents]
        async with self._writes.admit(charge=lambda: self.rate_limiter.admit_documents(len(ids))):
            return UpdateResponse(updated=await self._store.update_metadata(ids, metadatas))

    async def snapshot(self) -> SnapshotResponse:
        async with self._writes.admit():
            return SnapshotResponse(**await self._store.snapshot())

    async def count(self) -> CountResponse:
        count = self._counted(await self._store.count())
        return CountResponse(count=count, quota=self.settings.quota)

    def _counted(self, count: int) -> int:
        """Every document count the store reports updates the gauges (here, in the Ingress: in the
        store replica, chromadb's own OpenTelemetry set-up hides Ray's metrics)."""
        metrics.record_count(count, self.settings.quota)
        return count

    async def delete(self, request: DeleteRequest) -> DeleteResponse:
        if request.ids is None:
            return await self._delete_matching(request)
        ids = request.ids
        limits.check_ids(ids, self.settings.limits)
        async with self._writes.admit(charge=lambda: self.rate_limiter.admit_documents(len(ids))):
            deleted, count = await self._store.delete(ids)
        return DeleteResponse(deleted=deleted, count=self._counted(count))

    async def _delete_matching(self, request: DeleteRequest) -> DeleteResponse:
        """By filter: how many match is read first, so that they are charged to documents/s as
        deleting them by id would be; the store refuses more than a request's worth."""
        limits.check_filters(request, self.settings.limits)
        most = self.settings.limits.max_docs_per_request
        filters = (request.where, request.where_document)
        matching = await self._store.count_matching(*filters, most)
        async with self._writes.admit(charge=lambda: self.rate_limiter.admit_documents(min(matching, most))):
            deleted, count = await self._store.delete_where(*filters, most, expected=matching)
        return DeleteResponse(deleted=deleted, count=self._counted(count))

    async def health(self) -> HealthResponse:
        store_state, store_info = await _probe(self._store.info())
        if store_info and store_info["count"] is not None:
            self._counted(store_info["count"])
        embedder_state, _ = await _probe(self._embedder.info())
        healthy = "unavailable" not in (store_state.status, embedder_state.status)
        settings = self.settings
        return HealthResponse(
            status="ok" if healthy else "degraded",
            tenant_id=settings.tenant_id,
            plan=settings.plan,
            model_name=settings.model_name,
            dimension=settings.dimension,
            count=store_info["count"] if store_info else None,
            quota=settings.quota,
            auth="open" if settings.api_key is None else "api_key",
            keys=list(settings.api_keys),
            limits=PlanLimitsOut(
                **{name: getattr(settings.limits, name) for name in PlanLimitsOut.model_fields}
                # the chunking settings in effect (they override the plan's)
                | {"chunk_tokens": settings.chunk_size, "chunk_overlap_tokens": settings.chunk_overlap}
            ),
            deployments={
                "Ingress": DeploymentState(status="ok"),
                "Embedder": embedder_state,
                "ChromaStore": store_state,
            },
        )


async def _probe(info: Awaitable[Info]) -> tuple[DeploymentState, Info | None]:
    """A deployment's state, from its `info()` (which gives up after HEALTH_PROBE_TIMEOUT_S). One
    that is there but slow to answer is `busy`: alive, working through a queue of imports, say."""
    try:
        value = await info
    except NotAnsweredInTime:
        return DeploymentState(status="busy"), None
    except ServiceError:
        return DeploymentState(status="unavailable"), None
    return DeploymentState(status="ok", detail=dict(value)), value
