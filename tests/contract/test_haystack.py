"""ChromedbDocumentStore and its retrievers on the in-process API (the real routes, validation and
ChromaStore on a temporary folder; the hashing embedder): Haystack's own document store tests, then
what they do not cover: the filter translation, metadata rules, vectors, serialization, retrievers."""

import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"  # before haystack is imported: tests send no usage events

import subprocess
import sys

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy, FilterPolicy
from haystack.errors import FilterError
from haystack.utils import Secret

from chromedb_client.haystack import (
    ChromedbDocumentStore,
    ChromedbEmbeddingRetriever,
    ChromedbTextRetriever,
    to_where,
)
from tests.contract.app_transport import AppTransport
from tests.haystack_suite import DIMENSION, ChromedbStoreSuite


@pytest.fixture
def service(make_client):
    return make_client(plan="pro", max_docs=10_000)


@pytest.fixture
def make_store(service):
    stores: list[ChromedbDocumentStore] = []

    def make(**options) -> ChromedbDocumentStore:
        stores.append(ChromedbDocumentStore("http://testserver", transport=AppTransport(service), **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def document_store(make_store) -> ChromedbDocumentStore:
    return make_store()


class TestChromedbDocumentStore(ChromedbStoreSuite):
    """Haystack's base and extended document store tests (the skipped ones say why)."""

    @pytest.fixture
    def document_store(self, make_store) -> ChromedbDocumentStore:  # the base class's own fixture raises
        return make_store()


def unit_vector(axis: int) -> list[float]:
    return [1.0 if index == axis else 0.0 for index in range(DIMENSION)]


def test_the_readme_example_runs(document_store):
    from haystack.components.writers import DocumentWriter

    indexing = Pipeline()
    indexing.add_component("writer", DocumentWriter(document_store, policy=DuplicatePolicy.OVERWRITE))
    notes = [
        Document(content="The cat sat on the mat.", meta={"source": "notes", "page": 3}),
        Document(content="Quarterly revenue grew by 12 percent.", meta={"source": "notes", "page": 9}),
    ]
    assert indexing.run({"writer": {"documents": notes}})["writer"]["documents_written"] == 2
    query = Pipeline()
    query.add_component("retriever", ChromedbTextRetriever(document_store, top_k=3, mode="hybrid"))
    early = {"field": "meta.page", "operator": "<", "value": 5}
    found = query.run({"retriever": {"query": "pets resting on rugs", "filters": early}})["retriever"]["documents"]
    assert [document.content for document in found] == ["The cat sat on the mat."]
    both = {
        "operator": "AND",
        "conditions": [
            {"field": "meta.source", "operator": "==", "value": "notes"},
            {"field": "meta.page", "operator": "in", "value": [3, 9]},
        ],
    }
    assert document_store.filter_documents(both) == notes
    assert document_store.delete_by_filter({"field": "meta.page", "operator": "==", "value": 9}) == 1
    assert document_store.count_documents() == 1


# --- packaging -----------------------------------------------------------------------------------


def test_importing_the_client_does_not_import_haystack():
    code = "import sys, chromedb_client, chromedb_client.client; assert 'haystack' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the filter translation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "where"),
    [
        ({"field": "meta.page", "operator": "==", "value": 3}, {"page": {"$eq": 3}}),
        ({"field": "meta.page", "operator": ">=", "value": 2.5}, {"page": {"$gte": 2.5}}),
        (
            {"operator": "AND", "conditions": [{"field": "meta.a", "operator": "!=", "value": "x"}]},
            {"a": {"$ne": "x"}},
        ),
        (
            {
                "operator": "NOT",
                "conditions": [
                    {"field": "meta.a", "operator": "==", "value": 1},
                    {"field": "meta.b", "operator": "in", "value": ["x", "y"]},
                ],
            },
            {"$or": [{"a": {"$ne": 1}}, {"b": {"$nin": ["x", "y"]}}]},
        ),
        (
            {
                "operator": "NOT",
                "conditions": [
                    {
                        "operator": "OR",
                        "conditions": [
                            {"field": "meta.a", "operator": "!=", "value": True},
                            {"field": "meta.b", "operator": "not in", "value": [1]},
                        ],
                    }
                ],
            },
            {"$and": [{"a": {"$eq": True}}, {"b": {"$in": [1]}}]},
        ),
        # chromadb's lists hold one type: a mixed list is one $in (or $nin) per type.
        (
            {"field": "meta.k", "operator": "in", "value": [1, "1", 2, True]},
            {"$or": [{"k": {"$in": [1, 2]}}, {"k": {"$in": ["1"]}}, {"k": {"$in": [True]}}]},
        ),
        (
            {"field": "meta.k", "operator": "not in", "value": [1, "1"]},
            {"$and": [{"k": {"$nin": [1]}}, {"k": {"$nin": ["1"]}}]},
        ),
        # Conditions every document meets alike fold away.
        ({"field": "meta.k", "operator": "in", "value": []}, False),
        ({"field": "meta.k", "operator": "not in", "value": []}, True),
        ({"field": "meta.k", "operator": ">", "value": None}, False),
        ({"operator": "NOT", "conditions": [{"field": "meta.k", "operator": "<", "value": None}]}, True),
        (
            {
                "operator": "OR",
                "conditions": [
                    {"field": "meta.k", "operator": "in", "value": []},
                    {"field": "meta.j", "operator": "==", "value": "x"},
                ],
            },
            {"j": {"$eq": "x"}},
        ),
        (
            {
                "operator": "AND",
                "conditions": [
                    {"field": "meta.k", "operator": "in", "value": []},
                    {"field": "meta.j", "operator": "==", "value": "x"},
                ],
            },
            False,
        ),
    ],
)
def test_filters_translate_to_the_services_where(filters, where):
    assert to_where(filters) == where


@pytest.mark.parametrize(
    ("filters", "says"),
    [
        ({"field": "meta.date", "operator": ">", "value": "1972-12-11"}, "compares finite numbers only"),
        ({"field": "meta.n", "operator": "<", "value": True}, "compares finite numbers only"),
        ({"field": "meta.n", "operator": "<", "value": float("nan")}, "compares finite numbers only"),
        ({"field": "meta.n", "operator": "==", "value": None}, "cannot test for a key's presence"),
        ({"field": "meta.n", "operator": "in", "value": [1, None]}, "cannot test for a key's presence"),
        ({"field": "meta.n", "operator": "==", "value": [1]}, "not a list"),
        ({"field": "meta.n", "operator": "in", "value": (1, 2)}, "takes a list"),
        ({"field": "content", "operator": "==", "value": "x"}, "filters on metadata only"),
        ({"field": "page", "operator": "==", "value": 1}, "filters on metadata only"),
        ({"field": "meta.n", "operator": "~", "value": 1}, "unknown comparison operator"),
        ({"operator": "XOR", "conditions": []}, "unknown logical operator"),
        (
            {"operator": "NOT", "conditions": [{"field": "meta.n", "operator": ">", "value": 1}]},
            "cannot be expressed",
        ),
    ],
)
def test_a_filter_the_service_cannot_express_raises_filter_error(filters, says):
    with pytest.raises(FilterError, match=says):
        to_where(filters)


def test_a_filter_the_service_refuses_is_a_filter_error(document_store):
    document_store.write_documents([Document(content="a")])
    with pytest.raises(FilterError, match=r"refused the filter.*reserved"):
        document_store.filter_documents({"field": "meta._cdbi:x", "operator": "==", "value": 1})
    deep = {"field": "meta.k", "operator": "==", "value": 0}
    for level in range(10):  # deeper than the plan's filter depth (10)
        deep = {"operator": "OR", "conditions": [deep, {"field": "meta.k", "operator": "==", "value": level}]}
    with pytest.raises(FilterError, match=r"refused the filter.*deep"):
        document_store.filter_documents(deep)
    with pytest.raises(ValueError, match=r"document '.*' was refused: .*reserved"):
        document_store.update_by_filter({"field": "meta.k", "operator": "!=", "value": 1}, {"chroma:x": 1})


def test_mixed_in_lists_and_missing_keys_match_as_in_haystack(document_store):
    documents = [
        Document(id="int", content="a", meta={"k": 1}),
        Document(id="str", content="b", meta={"k": "1"}),
        Document(id="bool", content="c", meta={"k": True}),
        Document(id="none", content="d", meta={"other": 1}),
    ]
    document_store.write_documents(documents)

    def ids(filters):
        return [document.id for document in document_store.filter_documents(filters)]

    assert ids({"field": "meta.k", "operator": "in", "value": [1, "1"]}) == ["int", "str"]
    assert ids({"field": "meta.k", "operator": "not in", "value": [1, "1"]}) == ["bool", "none"]
    assert ids({"field": "meta.k", "operator": "!=", "value": 1}) == ["str", "bool", "none"]
    assert ids({"field": "meta.k", "operator": "in", "value": []}) == []
    assert ids({"field": "meta.k", "operator": "not in", "value": []}) == ["int", "str", "bool", "none"]


# --- writing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, [1, 2], {"a": 1}])
def test_metadata_the_service_cannot_store_raises_naming_the_key(document_store, value):
    with pytest.raises(ValueError, match=r"document 'd1': metadata 'bad' is .*unsupported_meta='json'"):
        document_store.write_documents([Document(id="d1", content="a", meta={"ok": 1, "bad": value})])
    assert document_store.count_documents() == 0


def test_unsupported_meta_json_stores_it_as_json_text(make_store):
    store = make_store(unsupported_meta="json")
    meta = {"none": None, "list": [1, "a"], "dict": {"a": [True]}, "kept": 2}
    store.write_documents([Document(id="d1", content="a", meta=meta)])
    (document,) = store.filter_documents()
    assert document.meta == {"none": "null", "list": '[1,"a"]', "dict": '{"a":[true]}', "kept": 2}
    assert store.filter_documents({"field": "meta.list", "operator": "==", "value": '[1,"a"]'}) == [document]


def test_documents_the_service_cannot_store_raise_value_error(document_store):
    from haystack.dataclasses import ByteStream, SparseEmbedding

    refused = [
        (Document(id="no-text", meta={"a": 1}), "has no text"),
        (Document(id="blank", content="  "), "has no text"),
        (Document(id="blob", content="a", blob=ByteStream(b"x")), "has a blob"),
        (Document(id="sparse", content="a", sparse_embedding=SparseEmbedding([1], [0.5])), "sparse_embedding"),
        (Document(id="short", content="a", embedding=[0.1] * 3), "'short' was refused: .*384"),
        (Document(id="x" * 300, content="a"), "was refused: .*256"),
    ]
    for document, says in refused:
        with pytest.raises(ValueError, match=says):
            document_store.write_documents([Document(content="fine"), document])
    assert document_store.count_documents() == 0


def test_repeated_ids_in_one_call_follow_the_policy(document_store):
    first, second = Document(id="1", content="first"), Document(id="1", content="second")
    with pytest.raises(DuplicateDocumentError, match="given twice"):
        document_store.write_documents([first, second], policy=DuplicatePolicy.FAIL)
    assert document_store.write_documents([first, second], policy=DuplicatePolicy.SKIP) == 1
    assert document_store.filter_documents() == [first]
    assert document_store.write_documents([first, second], policy=DuplicatePolicy.OVERWRITE) == 2
    assert document_store.filter_documents() == [second]


def test_skip_writes_the_new_documents_and_fail_writes_none(document_store):
    stored = Document(id="a", content="stored")
    document_store.write_documents([stored])
    new = [Document(id=f"n{index}", content=f"new {index}") for index in range(3)]
    with pytest.raises(DuplicateDocumentError, match="1 of the documents are stored already"):
        document_store.write_documents([*new, Document(id="a", content="changed")], policy=DuplicatePolicy.FAIL)
    assert document_store.count_documents() == 1
    assert document_store.write_documents([*new, Document(id="a", content="changed")], policy=DuplicatePolicy.SKIP) == 3
    assert [document.content for document in document_store.filter_documents()] == ["stored", "new 0", "new 1", "new 2"]


def test_many_documents_go_in_batches_and_come_back_in_pages(make_client):
    # The starter plan: 256 documents per request, so 300 documents are two writes, two pages, two deletes.
    service = make_client(plan="starter", max_docs=1_000)
    store = ChromedbDocumentStore("http://testserver", transport=AppTransport(service))
    documents = [Document(id=f"{index:04}", content=f"document {index}", meta={"n": index}) for index in range(300)]
    assert store.write_documents(documents) == 300
    assert store.count_documents() == 300
    assert store.filter_documents() == documents
    assert store.filter_documents({"field": "meta.n", "operator": ">=", "value": 290}) == documents[290:]
    store.delete_documents([document.id for document in documents[:280]])
    assert store.filter_documents() == documents[280:]
    store.close()


def test_vectors_are_sent_and_returned_when_asked(make_store):
    store = make_store(return_embedding=True)
    store.write_documents(
        [Document(id="own", content="a", embedding=unit_vector(0)), Document(id="model", content="b")]
    )
    own, model = store.filter_documents()
    assert own.embedding == pytest.approx(unit_vector(0))
    assert model.embedding is not None and len(model.embedding) == DIMENSION  # the service embedded the text


# --- serialization ----------------------------------------------------------------------------------


def test_the_store_and_retrievers_serialize_with_the_key_by_name(monkeypatch):
    monkeypatch.setenv("MY_TENANT_KEY", "k" * 16)
    store = ChromedbDocumentStore(
        "http://tenant:8000", api_key=Secret.from_env_var("MY_TENANT_KEY"), return_embedding=True
    )
    data = store.to_dict()
    assert data == {
        "type": "chromedb_client.haystack.ChromedbDocumentStore",
        "init_parameters": {
            "url": "http://tenant:8000",
            "api_key": {"type": "env_var", "env_vars": ["MY_TENANT_KEY"], "strict": True},
            "return_embedding": True,
            "unsupported_meta": "raise",
            "timeout": 120.0,
            "retries": 10,
        },
    }
    restored = ChromedbDocumentStore.from_dict(data)
    assert restored.to_dict() == data and restored.client._http.headers["Authorization"] == "Bearer " + "k" * 16

    pipeline = Pipeline()
    pipeline.add_component("text", ChromedbTextRetriever(store, top_k=3, filter_policy=FilterPolicy.MERGE))
    pipeline.add_component(
        "vector", ChromedbEmbeddingRetriever(store, filters={"field": "meta.a", "operator": "==", "value": 1})
    )
    # Haystack loads classes of allowed modules only: a pipeline file names a URL and a variable to send.
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["chromedb_client.haystack"])
    assert loaded.to_dict() == pipeline.to_dict()
    text = loaded.get_component("text")
    assert (
        isinstance(text, ChromedbTextRetriever) and text.filter_policy is FilterPolicy.MERGE and text.mode == "hybrid"
    )


def test_a_key_given_as_a_token_is_not_serialized():
    store = ChromedbDocumentStore("http://tenant:8000", api_key=Secret.from_token("k" * 16))
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        store.to_dict()


# --- retrievers ----------------------------------------------------------------------------------


def test_the_text_retriever_searches_in_every_mode(document_store):
    document_store.write_documents(
        [
            Document(id="cat", content="The cat sat on the mat.", meta={"kind": "pet"}),
            Document(id="tax", content="Quarterly revenue grew.", meta={"kind": "money"}),
        ]
    )
    for mode in ("semantic", "keyword", "hybrid"):
        found = ChromedbTextRetriever(document_store, mode=mode).run(query="quarterly revenue")["documents"]
        assert found[0].id == "tax" and found[0].content == "Quarterly revenue grew." and found[0].score is not None
    pets = {"field": "meta.kind", "operator": "==", "value": "pet"}
    found = ChromedbTextRetriever(document_store, filters=pets).run(query="quarterly revenue")["documents"]
    assert [(document.id, document.meta) for document in found] == [("cat", {"kind": "pet"})]


def test_the_embedding_retriever_searches_by_vector_and_applies_the_filter_policy(document_store):
    document_store.write_documents(
        [
            Document(id="cat", content="a", meta={"kind": "pet", "n": 0}, embedding=unit_vector(0)),
            Document(id="dog", content="b", meta={"kind": "pet", "n": 1}, embedding=unit_vector(1)),
            Document(id="tax", content="c", meta={"kind": "money", "n": 2}, embedding=unit_vector(2)),
        ]
    )
    pets = {"field": "meta.kind", "operator": "==", "value": "pet"}
    vector = ChromedbEmbeddingRetriever(document_store, filters=pets, top_k=5)
    found = vector.run(query_embedding=unit_vector(1))["documents"]
    assert found[0].id == "dog" and found[0].score == pytest.approx(1.0) and found[0].meta == {"kind": "pet", "n": 1}
    assert {document.id for document in found} == {"cat", "dog"}  # the retriever's filter holds
    assert len(vector.run(query_embedding=unit_vector(1), top_k=1)["documents"]) == 1
    nothing = {"field": "meta.kind", "operator": "in", "value": []}
    assert vector.run(query_embedding=unit_vector(2), filters=nothing)["documents"] == []

    # REPLACE (the default): the run's filters instead of the retriever's; MERGE: both (AND).
    every = {"field": "meta.n", "operator": "<=", "value": 2}
    assert vector.run(query_embedding=unit_vector(2), filters=every)["documents"][0].id == "tax"
    merged = ChromedbEmbeddingRetriever(document_store, filters=pets, filter_policy=FilterPolicy.MERGE)
    found = merged.run(query_embedding=unit_vector(2), filters=every)["documents"]
    assert {document.id for document in found} == {"cat", "dog"}


def test_a_retriever_needs_this_store():
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    with pytest.raises(TypeError, match="ChromedbDocumentStore"):
        ChromedbTextRetriever(InMemoryDocumentStore())  # type: ignore[arg-type]
