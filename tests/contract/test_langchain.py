"""chromedb_client.langchain.ChromedbVectorStore against the in-process app: LangChain's own standard
VectorStore suite (langchain-tests), whole, both ways of embedding, and what it does not cover:
filters, scores, deletes by filter, the vectors really being sent, refused metadata storing nothing.

The suite runs twice. `TestServiceEmbeds` is the default use: texts go to the service, its model
(here the hashing fake of tests/fakes.py) embeds them and the queries. The suite's expectations
hold with it: every query it makes ("bar", "new foo", "foo") is the whole text of one stored
document, whose vector the fake makes identical to the query's (cosine 1, ranked first), and the
other is ranked after it whatever its score. `TestOwnVectors` embeds on the caller's side with the
suite's own DeterministicFakeEmbedding, sized to the service's dimension (the service refuses any
other length), so documents travel with "embedding" and searches with "vector": the same suite over
the other path through the service.
"""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from chromedb_client import Client
from chromedb_client.langchain import ChromedbVectorStore
from tests.contract.app_transport import AppTransport

# The suite's async tests are coroutines; anyio's pytest plugin runs them (on asyncio).
pytestmark = pytest.mark.anyio

SERVICE_DIMENSION = 384  # the contract app's (tests/fakes.py FakeEmbedder)


@pytest.fixture
def app(make_client: Any) -> TestClient:
    # pro: 1,000 documents per request and 200 results per search; the quota is the plan's million.
    test_client: TestClient = make_client(plan="pro")
    return test_client


@pytest.fixture
def db(app: TestClient) -> Iterator[Client]:
    """chromedb_client's Client with the in-process app answering its requests (Starlette's
    TestClient is built on httpx2, whose transport httpx cannot take as it is)."""
    with Client("http://testserver", transport=AppTransport(app), retries=0) as client:
        yield client


class TestServiceEmbeds(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, db: Client) -> ChromedbVectorStore:
        assert db.count()[0] == 0  # a fresh app on its own folder for every test
        return ChromedbVectorStore(db)


class TestOwnVectors(VectorStoreIntegrationTests):
    @staticmethod
    def get_embeddings() -> Embeddings:
        return DeterministicFakeEmbedding(size=SERVICE_DIMENSION)

    @pytest.fixture
    def vectorstore(self, db: Client) -> ChromedbVectorStore:
        assert db.count()[0] == 0 and db.health()["dimension"] == SERVICE_DIMENSION
        return ChromedbVectorStore(db, embedding=self.get_embeddings())


NOTES = [
    Document(page_content="The cat sat on the mat.", metadata={"source": "notes", "page": 3}),
    Document(page_content="The dog sat on the rug.", metadata={"source": "mail", "page": 1}),
    Document(page_content="Quarterly revenue grew by 12 percent.", metadata={"source": "notes", "page": 9}),
]


def test_a_filter_is_the_services_where_and_scores_are_cosine_similarities(db):
    store = ChromedbVectorStore(db)
    store.add_documents(NOTES, ids=["cat", "dog", "revenue"])
    hits = store.similarity_search_with_score("The cat sat on the mat.", k=3)
    assert hits[0][0].id == "cat"
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0, abs=1e-5)  # higher is better
    filtered = store.similarity_search("sat on", k=3, filter={"$and": [{"source": "notes"}, {"page": {"$lt": 5}}]})
    assert filtered == [Document(id="cat", page_content=NOTES[0].page_content, metadata=NOTES[0].metadata)]
    in_text = store.similarity_search("sat on", k=3, where_document={"$contains": "rug"})
    assert [document.id for document in in_text] == ["dog"]


def test_a_retriever_passes_its_filter_and_relevance_scores_stay_between_0_and_1(db):
    store = ChromedbVectorStore(db)
    store.add_documents(NOTES, ids=["cat", "dog", "revenue"])
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"source": "mail"}})
    assert [document.id for document in retriever.invoke("a cat on a mat")] == ["dog"]
    relevant = store.similarity_search_with_relevance_scores("The cat sat on the mat.", k=3)
    assert all(0.0 <= relevance <= 1.0 for _, relevance in relevant)
    assert relevant[0][1] == pytest.approx(1.0, abs=1e-5)


def test_delete_by_filter_and_never_everything(db):
    store = ChromedbVectorStore(db)
    store.add_documents(NOTES, ids=["cat", "dog", "revenue"])
    assert store.delete(filter={"source": "notes"}) is True
    assert [document.id for document in store.get_by_ids(["cat", "dog", "revenue"])] == ["dog"]
    with pytest.raises(ValueError, match="give ids or a filter"):
        store.delete()
    assert db.count()[0] == 1


def test_own_embeddings_send_vectors_and_the_service_model_never_runs(app, db):
    embeddings = DeterministicFakeEmbedding(size=SERVICE_DIMENSION)
    store = ChromedbVectorStore.from_texts(
        ["alpha beta", "gamma delta"], embeddings, [{"n": 1}, {"n": 2}], ids=["a", "g"], client=db
    )
    assert store.similarity_search("gamma delta", k=1)[0].id == "g"  # the query embedded here, sent as a vector
    assert store.similarity_search_by_vector(embeddings.embed_query("alpha beta"), k=1)[0].id == "a"
    assert app.app.state.embedder.encoded == []
    (stored,) = db.get(["a"], include=("embedding",))
    sent = np.asarray(embeddings.embed_documents(["alpha beta"])[0])
    kept = np.asarray(stored.embedding)
    assert kept @ sent / (np.linalg.norm(kept) * np.linalg.norm(sent)) == pytest.approx(1.0, abs=1e-6)


def test_the_service_embeds_texts_and_queries_by_default(app, db):
    store = ChromedbVectorStore.from_texts(["alpha beta"], None, client=db)
    store.similarity_search("alpha", k=1)
    assert app.app.state.embedder.encoded == ["alpha beta", "alpha"]


def test_more_documents_than_a_batch_go_in_several_requests_and_come_back_in_order(db):
    store = ChromedbVectorStore(db, batch_size=3)
    ids = store.add_texts([f"note number {n}" for n in range(10)], [{"n": n} for n in range(10)])
    assert len(set(ids)) == 10 and db.count()[0] == 10
    assert [document.metadata["n"] for document in store.get_by_ids(ids[::-1])] == list(range(9, -1, -1))
    store.delete(ids[:7])
    assert db.count()[0] == 3


def test_refused_metadata_in_a_later_batch_stores_nothing(db):
    store = ChromedbVectorStore(db, batch_size=2)
    metadatas: list[dict[str, Any]] = [{"n": n} for n in range(5)]
    metadatas[4] = {"n": 4, "authors": ["Ada", "Grace"]}
    with pytest.raises(ValueError, match=r"document 4 \(id 'd4'\): metadata key 'authors' holds a list"):
        store.add_texts([f"note {n}" for n in range(5)], metadatas, ids=[f"d{n}" for n in range(5)])
    assert db.count()[0] == 0


async def test_async_calls_reach_the_same_store(db):
    store = ChromedbVectorStore(db)
    await store.aadd_documents(NOTES, ids=["cat", "dog", "revenue"])
    hits = await store.asimilarity_search_with_score("The dog sat on the rug.", k=1, filter={"source": "mail"})
    assert [(document.id, round(score, 4)) for document, score in hits] == [("dog", 1.0)]
    await store.adelete(["dog"])
    assert [document.id for document in await store.aget_by_ids(["cat", "dog"])] == ["cat"]
