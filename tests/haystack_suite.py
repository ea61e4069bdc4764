"""Haystack's own document store tests (haystack.testing.document_store) as they apply to
ChromedbDocumentStore, for both tiers: each subclasses `ChromedbStoreSuite` with its `document_store`.

The tests that cannot pass by the service's design are skipped here, each with its reason; the
README's Haystack section lists them."""

import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"  # before haystack is imported: tests send no usage events

import dataclasses

import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.testing.document_store import DocumentStoreBaseExtendedTests, create_filterable_docs

DIMENSION = 384  # the instance's vector size (all-MiniLM-L6-v2); the service refuses vectors of any other
NO_NONE = (
    "the service stores no None metadata values, and its filter cannot ask whether a document has a key, "
    "so == None / != None (a key's absence or presence) raise FilterError"
)
NO_DATES = (
    "the service compares numbers only: a range comparison of ISO date strings raises FilterError "
    "(store dates as numbers, e.g. Unix seconds, to filter them by range)"
)


class ChromedbStoreSuite(DocumentStoreBaseExtendedTests):
    @pytest.fixture
    def filterable_docs(self) -> list[Document]:
        """Haystack's filterable documents with their random vectors cut to the instance's length: the
        base fixture's have 768 numbers, which the service refuses. Only the filters are under test."""
        return [
            dataclasses.replace(document, embedding=document.embedding[:DIMENSION]) if document.embedding else document
            for document in create_filterable_docs()
        ]

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        """Every field as written, in the order written, except the vector: the store returns none
        unless built with return_embedding=True (which the tiers' own tests check)."""
        assert received == [dataclasses.replace(document, embedding=None) for document in expected]

    def test_write_documents(self, document_store) -> None:
        """DuplicatePolicy.NONE is FAIL here, as in Haystack's InMemoryDocumentStore."""
        document = Document(content="test doc", meta={"page": 1})
        assert document_store.write_documents([document]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([document])
        self.assert_documents_are_equal(document_store.filter_documents(), [document])

    @pytest.mark.skip(reason=NO_NONE)
    def test_comparison_equal_with_none(self, document_store, filterable_docs) -> None: ...

    @pytest.mark.skip(reason=NO_NONE)
    def test_comparison_not_equal_with_none(self, document_store, filterable_docs) -> None: ...

    @pytest.mark.skip(reason=NO_DATES)
    def test_comparison_greater_than_with_iso_date(self, document_store, filterable_docs) -> None: ...

    @pytest.mark.skip(reason=NO_DATES)
    def test_comparison_greater_than_equal_with_iso_date(self, document_store, filterable_docs) -> None: ...

    @pytest.mark.skip(reason=NO_DATES)
    def test_comparison_less_than_with_iso_date(self, document_store, filterable_docs) -> None: ...

    @pytest.mark.skip(reason=NO_DATES)
    def test_comparison_less_than_equal_with_iso_date(self, document_store, filterable_docs) -> None: ...
