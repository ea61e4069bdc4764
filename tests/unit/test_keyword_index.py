"""The keyword index (tantivy) beside chromadb: BM25 search, filters, and staying in step with
chromadb through writes, crashes between the two, a lost or damaged index folder."""

import json
import shutil
from typing import Any

import pytest
import tantivy

from deployments.core.errors import InvalidFilter
from deployments.core.types import Metadata
from deployments.embedding.backends import HashingBackend
from deployments.storage import tenant_store
from deployments.storage.keyword_index import MARKS_FILE, PENDING_ID, KeywordIndex
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import KEYWORD_DIR, TenantStore

BACKEND = HashingBackend()
DOCS: dict[str, tuple[str, Metadata]] = {
    "cats": ("Cats sleep on warm mats all afternoon.", {"kind": "pets"}),
    "dogs": ("Dogs chase balls in the park; dogs love parks.", {"kind": "pets"}),
    "tax": ("Quarterly tax filings are due in April.", {"kind": "finance"}),
    "cars": ("Electric cars charge overnight in garages.", {"kind": "transport"}),
}


def add(store: TenantStore, docs: dict[str, tuple[str, Metadata]]) -> None:
    ids = list(docs)
    texts = [docs[id_][0] for id_ in ids]
    store.upsert(ids, texts, BACKEND.encode(texts), [docs[id_][1] for id_ in ids])


def keyword(store: TenantStore, text: str, top_k: int = 10, where: dict[str, Any] | None = None) -> list[str]:
    (hits,) = store.search.many([Query(None, top_k, where, text, "keyword")])
    if isinstance(hits, Exception):
        raise hits
    return [hit["id"] for hit in hits]


@pytest.fixture
def store(settings) -> TenantStore:
    opened = TenantStore(settings)
    add(opened, DOCS)
    return opened


def test_keyword_search_ranks_by_bm25_with_stemming(store):
    (hits,) = store.search.many([Query(None, 10, None, "dog chasing", "keyword")])
    assert isinstance(hits, list) and hits[0]["id"] == "dogs"  # "dog", "chasing" match "Dogs", "chase"
    assert hits[0]["text"] == DOCS["dogs"][0] and hits[0]["metadata"] == {"kind": "pets"}
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    assert keyword(store, "no such words anywhere") == []
    assert keyword(store, "?! --") == []  # no words at all: no query syntax reaches tantivy
    assert keyword(store, 'tax OR "AND" (april') == ["tax"]


def test_filters_apply_in_keyword_and_hybrid_modes(store):
    assert set(keyword(store, "dogs cats tax", where={"kind": "pets"})) == {"dogs", "cats"}
    assert keyword(store, "tax", where={"kind": "pets"}) == []
    vector = BACKEND.encode(["tax"])[0]
    (hybrid,) = store.search.many([Query(vector, 10, {"kind": "finance"}, "tax", "hybrid")])
    assert isinstance(hybrid, list) and [hit["id"] for hit in hybrid] == ["tax"]
    with pytest.raises(InvalidFilter):
        keyword(store, "tax", where={"kind": {"$bogus": 1}})


def test_writes_keep_the_keyword_index_in_step(store):
    add(store, {"tax": ("Cats and taxes do not mix.", {"kind": "finance"})})
    assert "tax" not in keyword(store, "april") and "tax" in keyword(store, "cats")
    store.delete(["cats", "nope"])
    assert keyword(store, "mats") == [] and len(store.keywords.ids()) == store.count() == 3


def test_a_crash_between_chromadb_and_the_keyword_index_is_repaired_at_start(settings, store):
    """What the bracket guards against: chromadb wrote, the keyword commit never happened."""
    store.keywords.mark_pending(["cars", "new"])
    texts = ["Bicycles need no charging.", "A brand new document about zebras."]
    store._collection.upsert(ids=["cars", "new"], documents=texts, embeddings=BACKEND.encode(texts))
    store._collection.delete(ids=["dogs"])
    store.keywords.mark_pending(["dogs"])  # and crash: no sync
    store.close()
    reopened = TenantStore(settings)
    assert reopened.keywords.pending() == []
    assert keyword(reopened, "zebras") == ["new"] and keyword(reopened, "bicycles") == ["cars"]
    assert keyword(reopened, "electric garages") == [] and keyword(reopened, "parks") == []


def test_a_mark_left_in_the_index_by_an_earlier_version_is_still_repaired_at_start(settings, store):
    """Marks used to be a document of the index itself: an index a crash left one in still has it
    honoured after an upgrade, and then cleared."""
    text = "A brand new document about zebras."
    store.keywords._writer.add_document(tantivy.Document(id=PENDING_ID, pending=json.dumps(["new"])))
    store.keywords._commit()
    store._collection.upsert(ids=["new"], documents=[text], embeddings=BACKEND.encode([text]))  # and crash
    store.close()
    reopened = TenantStore(settings)
    assert reopened.keywords.pending() == [] and reopened.keywords._pending_docs() == []
    assert keyword(reopened, "zebras") == ["new"]


@pytest.mark.parametrize("damage", ["missing", "unreadable", "unreadable marks", "drifted"])
def test_a_lost_damaged_or_drifted_keyword_index_is_rebuilt_at_start(settings, store, damage):
    folder = settings.data_dir / KEYWORD_DIR
    store.close()
    if damage == "missing":
        shutil.rmtree(folder)
    elif damage == "unreadable":
        for path in folder.iterdir():
            if path.is_file():
                path.write_bytes(b"\x00garbage")
    elif damage == "unreadable marks":  # which ids were pending is lost: all of them are
        (folder / MARKS_FILE).write_bytes(b"\x00garbage" * 100)
    else:  # it missed a write (say, it was restored from an older copy)
        index = KeywordIndex(folder)
        index.rebuild([("cats", DOCS["cats"][0])])
        index.close()
    reopened = TenantStore(settings)
    assert sorted(reopened.keywords.ids()) == sorted(DOCS)
    assert keyword(reopened, "quarterly") == ["tax"] and keyword(reopened, "garages") == ["cars"]


def test_an_index_that_missed_an_add_and_a_delete_is_brought_in_step_at_start(settings, store):
    """The counts agree (one more, one fewer) but the ids do not: the check compares ids."""
    text = "A zebra crossing near the harbour."
    store._collection.add(ids=["zebra"], documents=[text], embeddings=BACKEND.encode([text]))
    store._collection.delete(ids=["tax"])  # both behind the keyword index's back, with no mark
    store.close()
    reopened = TenantStore(settings)
    assert keyword(reopened, "zebra harbour") == ["zebra"] and keyword(reopened, "quarterly") == []
    assert sorted(reopened.keywords.ids()) == sorted(reopened._collection.get(include=[])["ids"])
    assert reopened.keywords.pending() == []


def test_an_index_far_out_of_step_is_rebuilt_from_every_stored_text(settings, store, monkeypatch):
    monkeypatch.setattr(tenant_store, "PAGE", 2)  # more ids differ than one repair takes: the rebuild, page by page
    store.close()
    shutil.rmtree(settings.data_dir / KEYWORD_DIR)
    reopened = TenantStore(settings)
    assert sorted(reopened.keywords.ids()) == sorted(DOCS)
    assert keyword(reopened, "quarterly") == ["tax"] and keyword(reopened, "garages") == ["cars"]
