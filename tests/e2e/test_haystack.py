"""ChromedbDocumentStore against the real service (the real model, HTTP, the API key): Haystack's own
document store tests, and Haystack pipelines that write with DocumentWriter and search with the
retrievers. The integrations' service is shared with the other frameworks' suites: each test starts
by emptying it."""

import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"  # before haystack is imported: tests send no usage events

import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret

from chromedb_client.haystack import ChromedbDocumentStore, ChromedbEmbeddingRetriever, ChromedbTextRetriever
from tests.e2e.conftest import INTEGRATION_API_KEY
from tests.haystack_suite import DIMENSION, ChromedbStoreSuite

pytestmark = pytest.mark.e2e

FACTS = [
    Document(id="paris", content="Paris is the capital and largest city of France.", meta={"topic": "geography"}),
    Document(id="cat", content="The cat sat on the mat and purred.", meta={"topic": "pets"}),
    Document(id="revenue", content="Quarterly revenue grew by 12 percent.", meta={"topic": "finance"}),
]


@pytest.fixture
def store(integration_service, monkeypatch):
    # The key by environment variable, as a deployment passes it: a store built so serializes.
    monkeypatch.setenv("CHROMEDB_API_KEY", INTEGRATION_API_KEY)
    store = ChromedbDocumentStore(integration_service.url, api_key=Secret.from_env_var("CHROMEDB_API_KEY"))
    store.delete_all_documents()
    yield store
    store.close()


class TestChromedbDocumentStore(ChromedbStoreSuite):
    """Haystack's base and extended document store tests (the skipped ones say why)."""

    @pytest.fixture
    def document_store(self, store) -> ChromedbDocumentStore:  # the base class's own fixture raises
        return store


def test_a_pipeline_writes_and_finds_by_meaning_and_words(store):
    indexing = Pipeline()
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    assert indexing.run({"writer": {"documents": FACTS}})["writer"]["documents_written"] == 3

    query = Pipeline()
    query.add_component("retriever", ChromedbTextRetriever(store, top_k=2, mode="semantic"))
    # As a deployment loads it: the key named, not written; the module allowed by name.
    query = Pipeline.loads(query.dumps(), allowed_modules=["chromedb_client.haystack"])
    found = query.run({"retriever": {"query": "Which city is France's capital?"}})["retriever"]["documents"]
    assert found[0].id == "paris" and found[0].meta == {"topic": "geography"}

    keyword = ChromedbTextRetriever(store, mode="keyword")
    assert [document.id for document in keyword.run(query="purred")["documents"]] == ["cat"]
    finance = {"field": "meta.topic", "operator": "==", "value": "finance"}
    hybrid = ChromedbTextRetriever(store, filters=finance).run(query="France")["documents"]
    assert [document.id for document in hybrid] == ["revenue"]


def test_the_embedding_retriever_finds_a_document_by_its_own_vector(store, integration_service):
    store.write_documents(FACTS)
    with ChromedbDocumentStore(integration_service.url, return_embedding=True) as store_with_vectors:
        vectors = {document.id: document.embedding or [] for document in store_with_vectors.filter_documents()}
    assert all(len(vector) == DIMENSION for vector in vectors.values())  # the model's vectors
    found = ChromedbEmbeddingRetriever(store, top_k=1).run(query_embedding=vectors["cat"])["documents"]
    assert [document.id for document in found] == ["cat"] and found[0].score == pytest.approx(1.0, abs=1e-3)
