"""ChromedbVectorStore's checks made before any request (metadata the service would refuse, blank
texts, ids given twice), and that LangChain stays an optional import of chromedb_client."""

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from chromedb_client import Client
from chromedb_client.langchain import ChromedbVectorStore, check_metadata

REPO = Path(__file__).resolve().parents[2]


def no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, yet {request.method} {request.url.path} was")


@pytest.fixture
def store() -> ChromedbVectorStore:
    """A store whose client fails on any request: everything here must be refused before one."""
    return ChromedbVectorStore(Client("http://tenant", transport=httpx.MockTransport(no_requests), retries=0))


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, "None"), (["Ada", "Grace"], "a list"), ({"name": "Ada"}, "a dict"), ((1, 2), "a tuple"), (b"x", "bytes")],
)
def test_values_the_service_refuses_raise_naming_the_document_and_key(store, value, kind):
    metadatas: list[dict[str, Any]] = [{"page": 1}, {"page": 2, "authors": value}]
    with pytest.raises(ValueError, match=rf"document 1 \(id 'b'\): metadata key 'authors' holds {kind};"):
        store.add_texts(["first", "second"], metadatas, ids=["a", "b"])


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**63])
def test_numbers_out_of_the_services_range_raise(store, value):
    with pytest.raises(ValueError, match=r"metadata key 'n' holds .*finite, integers within 64 bits"):
        store.add_texts(["text"], [{"n": value}])


@pytest.mark.parametrize("key", ["chroma:x", "#x", "$x", "_cdbi:vector", "", 3])
def test_reserved_or_non_string_keys_raise(store, key):
    with pytest.raises(ValueError, match="metadata key"):
        store.add_texts(["text"], [{key: "value"}])


def test_blank_texts_ids_given_twice_and_mismatched_lengths_raise(store):
    with pytest.raises(ValueError, match=r"document 1 \(id 'b'\): the text is empty or only whitespace"):
        store.add_texts(["text", "  "], ids=["a", "b"])
    with pytest.raises(ValueError, match="id is given twice"):
        store.add_texts(["one", "two"], ids=["same", "same"])
    with pytest.raises(ValueError, match="2 metadatas for 1 texts"):
        store.add_texts(["one"], [{}, {}])


def test_an_unknown_option_is_an_error_not_ignored(store):
    with pytest.raises(TypeError, match="filters"):
        store.similarity_search("query", filters={"page": 1})


def test_accepted_metadata_is_passed_unchanged():
    metadata = {"source": "notes", "page": 3, "score": 0.5, "draft": False, "big": -(2**63)}
    assert check_metadata(metadata, "document 0") == metadata
    assert check_metadata(None, "document 0") == {}


def test_chromedb_client_does_not_import_langchain_and_the_service_does_not_require_it():
    probe = "import sys, chromedb_client; print(sorted(m for m in sys.modules if 'langchain' in m))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert "langchain" not in (REPO / "requirements.txt").read_text()
