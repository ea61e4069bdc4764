"""Exact search while a collection is small: the answers are brute force's over what is stored now,
through every kind of write, where chromadb's HNSW index (here made deliberately narrow) misses."""

import chromadb
import numpy as np
import pytest
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError

from deployments.storage.exact_search import ExactWhenSmall

DIMENSION = 32
TOP = 10


def unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def raw(tmp_path):
    client = chromadb.PersistentClient(path=str(tmp_path), settings=ChromaSettings(anonymized_telemetry=False))
    # A search breadth of 10 on random vectors: chromadb's own answers are far from exact.
    hnsw: CreateHNSWConfiguration = {"space": "cosine", "ef_search": 10, "ef_construction": 10, "max_neighbors": 4}
    return client.create_collection("exact-test", configuration={"hnsw": hnsw}, embedding_function=None)


def brute_force(stored: dict[str, np.ndarray], queries: np.ndarray, allowed: set[str] | None = None) -> list[list[str]]:
    ids = [id_ for id_ in stored if allowed is None or id_ in allowed]
    scores = queries @ np.stack([stored[id_] for id_ in ids]).T
    return [[ids[row] for row in np.argsort(-row_scores, kind="stable")[:TOP]] for row_scores in scores]


def searched(collection, queries, **filters) -> list[list[str]]:
    found = collection.query(query_embeddings=queries, n_results=TOP, include=["documents", "distances"], **filters)
    assert all(text is not None for row in found["documents"] for text in row)
    return found["ids"]


def test_answers_are_exact_through_writes_where_the_index_is_not(raw):
    rng = np.random.default_rng(7)
    vectors = unit(rng, 1_500)
    stored = {f"doc-{n}": vector for n, vector in enumerate(vectors)}
    metadatas = [{"even": n % 2 == 0} for n in range(len(vectors))]
    exact = ExactWhenSmall(raw)
    exact.add(ids=list(stored), embeddings=vectors, documents=[f"text {n}" for n in range(1_500)], metadatas=metadatas)
    queries = unit(rng, 20)

    approximate = ExactWhenSmall(raw, most=0).query(query_embeddings=queries, n_results=TOP, include=[])["ids"]
    assert approximate != brute_force(stored, queries), "the narrow index was exact: the test proves nothing"
    assert searched(exact, queries) == brute_force(stored, queries)

    # Every kind of write is seen by the next search: new and replaced vectors, deletes by id and by filter.
    changed = unit(rng, 300)
    changed_ids = [f"doc-{n}" for n in range(0, 600, 2)]  # half of them replaced, the rest new
    exact.upsert(ids=changed_ids, embeddings=changed, documents=["changed"] * 300)
    stored.update(zip(changed_ids, changed, strict=True))
    exact.delete(ids=["doc-1", "doc-3"])
    del stored["doc-1"], stored["doc-3"]
    assert searched(exact, queries) == brute_force(stored, queries)
    exact.delete(where={"even": False})
    stored = {id_: v for id_, v in stored.items() if int(id_.split("-")[1]) % 2 == 0 or id_ in changed_ids}
    assert searched(exact, queries) == brute_force(stored, queries)

    # A filter is chromadb's to resolve; the ranking of what passes it is exact.
    evens = set(exact.get(where={"even": True}, include=[])["ids"])
    assert searched(exact, queries, where={"even": True}) == brute_force(stored, queries, evens)


def test_above_its_limit_chromadbs_index_answers_and_below_it_again_exact(raw):
    rng = np.random.default_rng(11)
    vectors = unit(rng, 300)
    exact = ExactWhenSmall(raw, most=200)
    exact.add(ids=[f"doc-{n}" for n in range(300)], embeddings=vectors, documents=["text"] * 300)
    queries = unit(rng, 5)
    index = ExactWhenSmall(raw, most=0)
    assert (
        exact.query(query_embeddings=queries, n_results=TOP)["ids"]
        == index.query(query_embeddings=queries, n_results=TOP)["ids"]
    )
    exact.delete(ids=[f"doc-{n}" for n in range(150)])
    stored = {f"doc-{n}": vectors[n] for n in range(150, 300)}
    assert searched(exact, queries) == brute_force(stored, queries)


def test_an_empty_or_filtered_out_collection_answers_nothing(raw):
    exact = ExactWhenSmall(raw)
    queries = unit(np.random.default_rng(3), 2)
    assert exact.query(query_embeddings=queries, n_results=TOP)["ids"] == [[], []]
    exact.add(ids=["a"], embeddings=queries[:1], documents=["text"], metadatas=[{"k": 1}])
    assert exact.query(query_embeddings=queries, n_results=TOP, where={"k": 2})["ids"] == [[], []]
    found = exact.query(query_embeddings=queries[:1], n_results=TOP)
    assert found["ids"] == [["a"]] and found["distances"] is not None
    assert found["distances"][0][0] == pytest.approx(0.0, abs=1e-6)


def test_a_write_that_fails_after_chromadb_committed_it_is_still_found(raw, monkeypatch):
    """chromadb can fail after its own commit (storage.chroma.storage_errors): the vectors held are
    then read again, so the stored records are searched, not what was held before the write."""
    rng = np.random.default_rng(5)
    vectors = unit(rng, 50)
    stored = {f"doc-{n}": vector for n, vector in enumerate(vectors)}
    exact = ExactWhenSmall(raw)
    exact.add(ids=list(stored), embeddings=vectors, documents=["text"] * 50)
    assert searched(exact, vectors[:3]) == brute_force(stored, vectors[:3])  # held from here on
    commit = Collection.upsert

    def commit_then_fail(self, *args, **kwargs):
        commit(self, *args, **kwargs)
        raise InternalError("failed after its commit")

    monkeypatch.setattr(Collection, "upsert", commit_then_fail)
    new = unit(rng, 5)
    with pytest.raises(InternalError):
        exact.upsert(ids=[f"new-{n}" for n in range(5)], embeddings=new, documents=["new"] * 5)
    stored.update((f"new-{n}", vector) for n, vector in enumerate(new))
    assert searched(exact, new) == brute_force(stored, new)
    assert [row[0] for row in searched(exact, new)] == [f"new-{n}" for n in range(5)]
