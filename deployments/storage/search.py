"""Search over the tenant's collection in three modes: `semantic` scores by cosine similarity,
`keyword` by BM25 (storage.keyword_index), `hybrid` by the fusion of both (storage.ranking). A long
document's chunks (storage.chunk_store) count as the document, at its best chunk's score."""

import json
import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from chromadb.api.models.Collection import Collection

from deployments.core.errors import InternalFailure, ServiceError
from deployments.core.types import Filter, Hit, Metadata, Vectors
from deployments.storage.chroma import filter_args, filter_errors, rows
from deployments.storage.chunk_store import ChunkStore, span_of
from deployments.storage.internal_metadata import CHUNK_SET, public
from deployments.storage.keyword_index import KeywordIndex
from deployments.storage.ranking import HYBRID_CANDIDATES, Query, Scored, cosine_score, fuse

logger = logging.getLogger("ray.serve")


class TenantSearch:
    """Reads only: safe beside a running write (chromadb serves both)."""

    def __init__(self, documents: Collection, chunks: ChunkStore, keywords: KeywordIndex) -> None:
        self._collection = documents
        self._chunks = chunks
        self._keywords = keywords

    def many(self, queries: list[Query]) -> list[list[Hit] | ServiceError]:
        """The top_k best documents of each query, best first, in its mode. Vector searches sharing
        a size and filter go to chromadb as one call; a bad filter fails only the queries that carry it."""
        results: list[list[Hit] | ServiceError] = [[] for _ in queries]
        semantic = self._semantic_many([(i, q) for i, q in enumerate(queries) if q.mode != "keyword"])
        for index, query in enumerate(queries):
            with _own_failure(results, [index]):
                found = semantic.get(index, [])
                if isinstance(found, ServiceError):
                    raise found
                if query.mode == "semantic":
                    results[index] = found
                    continue
                keyword = self._keyword(query.text, _candidates(query), query.where, query.where_document)
                results[index] = keyword[: query.top_k] if query.mode == "keyword" else _fused(found, keyword, query)
        return results

    def _semantic_many(self, queries: list[tuple[int, Query]]) -> dict[int, list[Hit] | ServiceError]:
        groups: dict[str, list[tuple[int, Query]]] = {}
        found: dict[int, list[Hit] | ServiceError] = {}  # (a dict: _own_failure indexes it by query)
        for index, query in queries:
            key = json.dumps([_candidates(query), query.where or None, query.where_document or None], sort_keys=True)
            groups.setdefault(key, []).append((index, query))
        for members in groups.values():
            first = members[0][1]
            vectors = np.stack([cast(Vectors, query.vector) for _, query in members])
            with _own_failure(found, [index for index, _ in members]), filter_errors(first.where, first.where_document):
                answers = self._query(vectors, _candidates(first), first.where, first.where_document)
                answers = self._best_chunks(vectors, _candidates(first), first.where, first.where_document, answers)
                found.update((index, hits) for (index, _), hits in zip(members, answers, strict=True))
        return found

    def _keyword(self, text: str, limit: int, where: Filter | None, where_document: Filter | None) -> list[Hit]:
        allowed = None
        if where or where_document:  # chromadb resolves the filters; the keyword index ranks what passes
            with filter_errors(where, where_document):
                allowed = self._collection.get(**filter_args(where, where_document), include=[])["ids"]
        return self._hits(self._keywords.search(text, limit, allowed))

    def _hits(self, scored: Scored) -> list[Hit]:
        """Hits for (id, score) pairs, with the stored text and metadata; ids deleted since are left out."""
        if not scored:
            return []
        found = self._collection.get(ids=[id_ for id_, _ in scored], include=["documents", "metadatas"])
        stored = {id_: (text, metadata) for id_, text, metadata in rows(found)}
        return [
            {"id": id_, "text": stored[id_][0], "metadata": public(stored[id_][1]), "score": score}
            for id_, score in scored
            if id_ in stored
        ]

    def _query(
        self, vectors: Vectors, top_k: int, where: Filter | None, where_document: Filter | None
    ) -> list[list[Hit]]:
        found = self._collection.query(
            query_embeddings=vectors,
            n_results=top_k,
            **filter_args(where, where_document),
            include=["documents", "metadatas", "distances"],
        )
        documents = cast(list[list[str]], found["documents"])
        metadatas = cast(list[list[Metadata | None]], found["metadatas"])
        distances = cast(list[list[float]], found["distances"])
        # A document deleted while the query ran can still come back from the index, without its
        # text: it is gone, so it is left out (the search sees the store after that delete).
        return [
            [
                {"id": id_, "text": text, "metadata": metadata, "score": cosine_score(distance)}
                for id_, text, metadata, distance in zip(*row, strict=True)
                if text is not None
            ]
            for row in zip(found["ids"], documents, metadatas, distances, strict=True)
        ]

    def _best_chunks(
        self,
        vectors: Vectors,
        candidates: int,
        where: Filter | None,
        where_document: Filter | None,
        answers: list[list[Hit]],
    ) -> list[list[Hit]]:
        """Each query's hits, one per document at its best chunk's score and span. A chunk counts
        only if its document exists, passes both filters and still has that chunk set."""
        merged = []
        for hits, chunks in zip(answers, self._chunks.best_spans(vectors, candidates, where), strict=True):
            best = {hit["id"]: _with_span(hit, span_of(hit["metadata"])) for hit in hits}
            better = [
                parent
                for parent, (score, _, _) in chunks.items()
                if parent not in best or score > best[parent]["score"]
            ]
            if better:
                found = self._collection.get(
                    ids=better, **filter_args(where, where_document), include=["documents", "metadatas"]
                )
                for parent, text, metadata in rows(found):
                    score, span, chunk_set = chunks[parent]
                    if (metadata or {}).get(CHUNK_SET) == chunk_set:
                        hit = {"id": parent, "text": text, "metadata": metadata, "score": score}
                        best[parent] = _with_span(hit, span)
            merged.append(sorted(best.values(), key=lambda hit: hit["score"], reverse=True)[:candidates])
        return merged


@contextmanager
def _own_failure(results: MutableMapping[int, Any] | list[Any], indexes: list[int]) -> Iterator[None]:
    """A search's failure is its own: concurrent searches share one call here (deployments.ingress
    batches them), and one bad query must not fail the others. Its error takes its place in `results`."""
    try:
        yield
    except ServiceError as exc:
        for index in indexes:
            results[index] = exc
    except Exception:
        logger.exception("a search failed")
        for index in indexes:
            results[index] = InternalFailure("the search failed on the server; it was logged: retry, or report it")


def _with_span(hit: Hit, span: list[int] | None) -> Hit:
    """A hit as the API shows it: the tenant's metadata only, and the span of a chunked document's chunk."""
    shown = {**hit, "metadata": public(hit["metadata"])}
    return {**shown, "span": span} if span is not None else shown


def _candidates(query: Query) -> int:
    """How many results each ranking gives: top_k, or more for hybrid fusion to choose from."""
    return query.top_k if query.mode == "semantic" else max(query.top_k, HYBRID_CANDIDATES)


def _fused(semantic: list[Hit], keyword: list[Hit], query: Query) -> list[Hit]:
    ranked = fuse(
        [(hit["id"], hit["score"]) for hit in semantic], [(hit["id"], hit["score"]) for hit in keyword], query.weight
    )
    by_id = {hit["id"]: hit for hit in [*keyword, *semantic]}
    return [{**by_id[id_], "score": score} for id_, score in ranked[: query.top_k]]
