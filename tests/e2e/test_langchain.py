"""LangChain's standard VectorStore suite (langchain-tests), whole, against the real service
(`integration_service`: the real model, chromadb and HAProxy), the service embedding texts and
queries as ChromedbVectorStore does by default; then what the suite cannot show with one-word
texts: the real model ranking by meaning, under a filter, through a retriever."""

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from bench.instance import ServeInstance
from chromedb_client import Client
from chromedb_client.langchain import ChromedbVectorStore
from tests.e2e.conftest import INTEGRATION_API_KEY, emptied

# The suite's async tests are coroutines; anyio's pytest plugin runs them (on asyncio).
pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def db(integration_service: ServeInstance) -> Iterator[Client]:
    with Client(integration_service.url, api_key=INTEGRATION_API_KEY, timeout=60) as client:
        yield emptied(client)


class TestOnTheService(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, db: Client) -> ChromedbVectorStore:
        return ChromedbVectorStore(db)


def test_the_real_model_ranks_by_meaning_under_a_filter_and_through_a_retriever(db):
    store = ChromedbVectorStore(db)
    store.add_documents(
        [
            Document(page_content="The cat sat on the mat.", metadata={"source": "notes", "page": 3}),
            Document(page_content="A kitten naps on the rug.", metadata={"source": "mail", "page": 1}),
            Document(page_content="Quarterly revenue grew by 12 percent.", metadata={"source": "notes", "page": 9}),
        ],
        ids=["cat", "kitten", "revenue"],
    )
    hits = store.similarity_search_with_score("pets resting on carpets", k=3)
    assert [document.id for document, _ in hits][-1] == "revenue"  # shares no words with the query either way
    assert hits[0][1] > hits[-1][1]  # cosine similarity: higher is closer in meaning
    notes = store.similarity_search("pets resting on carpets", k=3, filter={"source": "notes"})
    assert [document.id for document in notes] == ["cat", "revenue"]
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"source": "notes"}})
    assert [document.id for document in retriever.invoke("how did sales do this quarter")] == ["revenue"]
