"""POST /v1/embeddings on the real service (`integration_service`: the real model behind HAProxy and
Serve): the official `openai` client with its base_url pointed at the instance, LangChain's standard
embeddings suite (langchain-tests) whole through langchain-openai's OpenAIEmbeddings, and vectors
equal to those /embed/ stores for the same texts."""

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from bench.instance import ServeInstance
from deployments.core.config import resolve_model_path
from deployments.embedding.tokens import load_tokenizer
from tests.e2e.conftest import INTEGRATION_API_KEY, patient_client

# The suite's async tests are coroutines; anyio's pytest plugin runs them (on asyncio).
pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The cat sat on the mat.", "A kitten naps on the rug.", "Quarterly revenue grew by 12 percent."]
# "Equal" to within float32's last bits: chromadb keeps its own copy of a vector, normalised again
# for its cosine index (one float32 step, 3e-8, off the model's), and the Embedder pads a batch to
# its longest text, so a text embedded beside other texts may move as much.
SAME = 1e-6


@pytest.fixture(scope="module")
def openai_client(integration_service: ServeInstance) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{integration_service.url}/v1", api_key=INTEGRATION_API_KEY, timeout=60)
    yield client
    client.close()


@pytest.fixture
def rest(integration_service: ServeInstance) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {INTEGRATION_API_KEY}"}
    with patient_client(integration_service.url, timeout=60, headers=headers) as client:
        yield client


def stored_vectors(rest: httpx.Client, texts: list[str]) -> list[list[float]]:
    """What /embed/ stores for `texts`, read back with /get/; the documents are deleted again (the
    service is shared with the other frameworks' suites)."""
    ids = [f"openai-{uuid.uuid4().hex}" for _ in texts]
    documents = [{"id": id_, "text": text} for id_, text in zip(ids, texts, strict=True)]
    try:
        assert rest.post("/embed/", json={"documents": documents}).status_code == 200
        found = rest.post("/get/", json={"ids": ids, "include": ["embedding"]}).json()["documents"]
        return [document["embedding"] for document in found]
    finally:
        assert rest.post("/delete/", json={"ids": ids}).status_code == 200


def test_the_openai_client_embeds_with_the_real_model(openai_client):
    response = openai_client.embeddings.create(model=MODEL, input=TEXTS)  # asks for base64, decodes it
    assert response.model == MODEL and [item.index for item in response.data] == [0, 1, 2]
    vectors = np.array([item.embedding for item in response.data])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cat, kitten, revenue = vectors
    assert cat @ kitten > cat @ revenue + 0.2  # by meaning: cat and kitten share only "on the"
    # Counted by the model's own tokenizer, [CLS] and [SEP] included.
    tokens = sum(load_tokenizer(resolve_model_path(MODEL)).token_counts(TEXTS))
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens


def test_the_vectors_are_those_embed_stores(openai_client, rest):
    served = [item.embedding for item in openai_client.embeddings.create(model=MODEL, input=TEXTS).data]
    np.testing.assert_allclose(served, stored_vectors(rest, TEXTS), rtol=0, atol=SAME)


def test_float_and_base64_carry_the_same_numbers(rest):
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": TEXTS[0]}
    as_floats = rest.post("/v1/embeddings", json=body).json()["data"][0]["embedding"]
    packed = rest.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    np.testing.assert_allclose(decoded, as_floats, rtol=0, atol=SAME)


def test_the_openai_client_raises_its_own_errors_with_the_service_s_message(integration_service, openai_client):
    with pytest.raises(openai.UnprocessableEntityError) as wrong_model:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert wrong_model.value.code == "validation_error" and wrong_model.value.param == "model"
    assert isinstance(wrong_model.value.body, dict) and MODEL in wrong_model.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError) as token_ids:
        openai_client.embeddings.create(model=MODEL, input=[[15339, 1917]])
    assert isinstance(token_ids.value.body, dict) and "token ids" in token_ids.value.body["message"]
    stranger = openai.OpenAI(base_url=f"{integration_service.url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        stranger.embeddings.create(model=MODEL, input="x")
    assert unauthorized.value.code == "unauthorized"


def langchain_params(url: str) -> dict[str, Any]:
    """OpenAIEmbeddings for a server that is not OpenAI's. check_embedding_ctx_length=False: send the
    texts, not tiktoken's ids of them (tiktoken would download OpenAI's vocabulary, and the service
    refuses token ids, which its model cannot read)."""
    return {
        "model": MODEL,
        "base_url": f"{url}/v1",
        "api_key": INTEGRATION_API_KEY,
        "check_embedding_ctx_length": False,
    }


class TestOpenAIEmbeddingsOnTheService(EmbeddingsIntegrationTests):
    """The whole suite, nothing skipped or overridden: only where the service is."""

    @pytest.fixture(autouse=True)
    def _service(self, integration_service: ServeInstance) -> None:
        # Autouse fixtures run first: the suite's `model` fixture reads the URL from here.
        self.url = integration_service.url

    @property
    def embeddings_class(self) -> type[OpenAIEmbeddings]:
        return OpenAIEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        # Each async test runs on an event loop of its own. The openai client's default async HTTP
        # client keeps connections open, and when it is collected it closes them on whatever loop
        # runs then: the next test's, which fails with "Event loop is closed". One that keeps no
        # connection past its request leaves nothing bound to a finished loop.
        no_keepalive = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_keepalive_connections=0))
        return {**langchain_params(self.url), "http_async_client": no_keepalive}


def test_langchain_gets_the_vectors_embed_stores(integration_service, rest):
    embeddings = OpenAIEmbeddings(**langchain_params(integration_service.url))
    documents = embeddings.embed_documents(TEXTS)
    np.testing.assert_allclose(documents, stored_vectors(rest, TEXTS), rtol=0, atol=SAME)
    np.testing.assert_allclose(embeddings.embed_query(TEXTS[0]), documents[0], rtol=0, atol=SAME)
