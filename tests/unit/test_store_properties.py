"""Property tests: TenantStore under concurrent upserts and deletes, against a real chromadb on disk.

Hypothesis generates a list of writes (ids drawn from a small pool, so writes collide with each other
and with deletes; a quota small enough to be hit) and runs them from four threads at once. The store
must then behave as if the writes had happened one at a time: some order of them, consistent with
what finished before what started, explains every answer the store gave and the data it ends with.
"""

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, cast

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.client import Client
from chromadb.config import Settings as ChromaSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.core.config import Settings, load_settings
from deployments.core.errors import PlanLimitExceeded, QuotaExceeded
from deployments.storage.tenant_store import Delete, TenantStore, Upsert

QUOTA = 15
ID_POOL = [f"doc-{n}" for n in range(20)]  # more ids than the quota allows, so upserts get refused
WORKERS = 4
DIMENSION = 384

Kind = Literal["upsert", "delete"]
State = frozenset[tuple[str, str]]  # (id, text) of every stored document


@dataclass(frozen=True)
class Op:
    kind: Kind
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    count: int | None = None  # the count the store reported after the write; None when refused
    deleted: int | None = None  # deletes only: how many of the ids existed
    refused: bool = False  # upserts: QuotaExceeded; deletes by filter: PlanLimitExceeded


@dataclass(frozen=True)
class Outcome:
    """What one write answered, and when (monotonic clock) it was called and had returned."""

    started: float
    ended: float
    answer: Answer


def text_of(index: int) -> str:
    """Each operation writes its own text, so the stored text says which upsert wrote a document last."""
    return f"written by operation {index}"


ops_strategy = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["upsert", "upsert", "delete"]),  # upserts twice as often, so the quota fills up
        ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=8, unique=True).map(tuple),
    ),
    min_size=6,  # enough writes to fill the quota and collide
    max_size=30,
)


def unit_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def tenant_settings(persist_dir: Path) -> Settings:
    return load_settings(_env_file=None, persist_dir=persist_dir, max_docs=QUOTA)


def run_concurrently(store: TenantStore, ops: list[Op]) -> list[Outcome]:
    """Run every op from WORKERS threads at once (released together by a barrier) and time each call."""
    rng = np.random.default_rng(0)
    vectors = [unit_vectors(len(op.ids), rng) for op in ops]
    gate = threading.Barrier(WORKERS)

    def warm_up(_: int) -> None:
        gate.wait()  # every worker thread exists and starts taking ops at the same moment

    def run(index: int) -> Outcome:
        op = ops[index]
        started = time.perf_counter()
        if op.kind == "delete":
            deleted, count = store.delete(list(op.ids))
            return Outcome(started, time.perf_counter(), Answer(count=count, deleted=deleted))
        texts = [text_of(index)] * len(op.ids)
        try:
            count = store.upsert(list(op.ids), texts, vectors[index], [{"op": index}] * len(op.ids))
        except QuotaExceeded:
            return Outcome(started, time.perf_counter(), Answer(refused=True))
        return Outcome(started, time.perf_counter(), Answer(count=count))

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(warm_up, range(WORKERS)))
        return list(pool.map(run, range(len(ops))))


def apply(state: State, op: Op, index: int) -> tuple[State, Answer]:
    """The specification: one write applied to a set of documents, as TenantStore documents it."""
    stored = dict(state)
    if op.kind == "delete":
        found = [id_ for id_ in op.ids if id_ in stored]
        for id_ in found:
            del stored[id_]
        return frozenset(stored.items()), Answer(count=len(stored), deleted=len(found))
    added = sum(1 for id_ in op.ids if id_ not in stored)
    if len(stored) + added > QUOTA:
        return state, Answer(refused=True)  # all or nothing: a refused upsert changes nothing
    stored.update(dict.fromkeys(op.ids, text_of(index)))
    return frozenset(stored.items()), Answer(count=len(stored))


def find_linearization(ops: list[Op], outcomes: list[Outcome], final: State) -> list[int] | None:
    """An order of the ops that (1) respects real time: an op that returned before another was called
    comes first; (2) gives, applied one by one to an empty store, every answer the store gave; and
    (3) ends in exactly the documents the store holds. None when no such order exists."""

    @cache
    def search(done: frozenset[int], state: State) -> tuple[int, ...] | None:
        if len(done) == len(ops):
            return () if state == final else None
        pending = [i for i in range(len(ops)) if i not in done]
        first_return = min(outcomes[i].ended for i in pending)
        for i in pending:
            if outcomes[i].started > first_return:
                continue  # another pending op had returned before this one was called
            after, expected = apply(state, ops[i], i)
            if expected == outcomes[i].answer and (rest := search(done | {i}, after)) is not None:
                return (i, *rest)
        return None

    order = search(frozenset(), frozenset())
    return None if order is None else list(order)


def stored_documents(store_settings: Settings) -> State:
    """The collection's documents read through a client of our own, not through the store."""
    client = chromadb.PersistentClient(
        path=str(store_settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    )
    try:
        found = client.get_collection(store_settings.collection_name).get(include=["documents"])
        return frozenset(zip(found["ids"], found["documents"] or [], strict=True))
    finally:
        close(client)


def close(client: ClientAPI) -> None:
    """Stop chromadb's shared system for the folder once its last client closes: each example has a
    folder of its own, and hundreds of open ones (while shrinking) would pile up file handles."""
    cast(Client, client).close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops=ops_strategy)
def test_concurrent_writes_are_linearizable_and_respect_the_quota(ops: list[Op]) -> None:
    """Concurrent upserts and deletes behave as the same writes one at a time: the count each write
    reports and the final count match the collection's real content, the quota is never exceeded,
    a refused upsert stores nothing of its batch, the keyword index ends in step with chromadb, and
    the final documents (which write wrote each) are exactly what a sequential replay of the writes,
    in an order consistent with real time, gives."""
    with tempfile.TemporaryDirectory() as folder:
        store_settings = tenant_settings(Path(folder))
        store = TenantStore(store_settings)
        try:
            outcomes = run_concurrently(store, ops)
            final = stored_documents(store_settings)
            reported_count = store.count()
            keyword_count = len(store.keywords.ids())
            # Which ids the keyword index finds for each writer's number (its texts' only own word).
            keyword_found = {
                text: {hit for hit, _ in store.keywords.search(text.split()[-1], QUOTA)}
                for text in {t for _, t in final}
            }
        finally:
            store.close()

        # The count the store reports is the collection's real count, and never above the quota.
        assert reported_count == len(final) <= QUOTA
        answers = [outcome.answer for outcome in outcomes]
        assert all(a.count is not None and a.count <= QUOTA for a in answers if not a.refused)

        # A refused upsert stored nothing: ids only refused upserts named are absent, and no
        # document carries the text of a refused upsert.
        acknowledged = {
            id_ for op, a in zip(ops, answers, strict=True) if op.kind == "upsert" and not a.refused for id_ in op.ids
        }
        assert {id_ for id_, _ in final} <= acknowledged
        refused_texts = {text_of(i) for i, a in enumerate(answers) if a.refused}
        assert not {text for _, text in final} & refused_texts

        # The keyword index holds exactly the final texts, each under the ids that hold it.
        assert keyword_count == len(final)
        assert keyword_found == {text: {i for i, t in final if t == text} for text in keyword_found}

        # Some sequential order explains every answer and the final content.
        assert find_linearization(ops, outcomes, final) is not None, (ops, outcomes, sorted(final))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    ops=st.lists(
        st.builds(
            Op,
            kind=st.just("upsert"),
            ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=8, unique=True).map(tuple),
        ),
        min_size=2,
        max_size=20,
    )
)
def test_imports_written_together_answer_as_written_one_at_a_time(ops: list[Op]) -> None:
    """TenantStore.upsert_many (the imports that queued while a write ran, written together) gives
    each request the answer, and the collection and keyword index the content, that the same
    upserts written one at a time in order give: ids shared between requests, quota refusals and
    all."""
    rng = np.random.default_rng(0)
    requests = [
        Upsert(
            list(op.ids), [text_of(index)] * len(op.ids), unit_vectors(len(op.ids), rng), [{"op": index}] * len(op.ids)
        )
        for index, op in enumerate(ops)
    ]
    with tempfile.TemporaryDirectory() as folder:
        store_settings = tenant_settings(Path(folder))
        store = TenantStore(store_settings)
        try:
            outcomes = store.upsert_many(requests)
            final = stored_documents(store_settings)
            keyword_ids = sorted(store.keywords.ids())
        finally:
            store.close()
    expected: list[Answer] = []
    state: State = frozenset()
    for index, op in enumerate(ops):
        state, answer = apply(state, op, index)
        expected.append(answer)
    assert [
        Answer(refused=True) if isinstance(o, QuotaExceeded) else Answer(count=cast(int, o)) for o in outcomes
    ] == expected
    assert final == state
    assert keyword_ids == sorted(id_ for id_, _ in state)


def group_of(id_: str) -> int:
    """The metadata value a delete by filter matches on: three groups of the id pool."""
    return ID_POOL.index(id_) % 3


@dataclass(frozen=True)
class ByFilter:
    """A delete of every document of a group, refused when more than `most` match."""

    group: int
    most: int


delete_requests = st.lists(
    st.one_of(
        st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=8),
        st.builds(ByFilter, group=st.integers(0, 2), most=st.integers(0, 5)),
    ),
    min_size=2,
    max_size=20,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stored=st.lists(st.sampled_from(ID_POOL), max_size=QUOTA, unique=True), requests=delete_requests)
def test_deletes_written_together_answer_as_deleted_one_at_a_time(
    stored: list[str], requests: list[list[str] | ByFilter]
) -> None:
    """TenantStore.delete_many (the deletes that queued while a write ran, written together) gives
    each request the answer, and the collection and keyword index the content, that the same
    deletes one at a time in order give: ids named twice, by one request or by several, ids never
    stored, and deletes by filter (matching what earlier requests delete, or refused for matching
    too many) included."""
    with tempfile.TemporaryDirectory() as folder:
        store_settings = tenant_settings(Path(folder))
        store = TenantStore(store_settings)
        try:
            if stored:
                store.upsert(
                    stored,
                    [text_of(0)] * len(stored),
                    unit_vectors(len(stored), np.random.default_rng(0)),
                    [{"group": group_of(id_)} for id_ in stored],
                )
            outcomes = store.delete_many(
                [
                    Delete(where={"group": request.group}, most=request.most, expected=request.most)
                    if isinstance(request, ByFilter)
                    else Delete(request)
                    for request in requests
                ]
            )
            final = stored_documents(store_settings)
            keyword_ids = sorted(store.keywords.ids())
        finally:
            store.close()
    state: State = frozenset((id_, text_of(0)) for id_ in stored)
    expected: list[Answer] = []
    for request in requests:
        if isinstance(request, ByFilter):
            matching = tuple(id_ for id_, _ in state if group_of(id_) == request.group)
            if len(matching) > request.most:
                expected.append(Answer(refused=True))
                continue
            state, answer = apply(state, Op("delete", matching), 0)
        else:
            state, answer = apply(state, Op("delete", tuple(dict.fromkeys(request))), 0)
        expected.append(answer)
    assert [
        Answer(refused=True) if isinstance(outcome, PlanLimitExceeded) else Answer(count=outcome[1], deleted=outcome[0])
        for outcome in cast(list[tuple[int, int] | PlanLimitExceeded], outcomes)
    ] == expected
    assert final == state
    assert keyword_ids == sorted(id_ for id_, _ in state)
