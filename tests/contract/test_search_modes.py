"""`/search/` modes: semantic (the default), keyword (BM25) and hybrid, through the real API."""

import pytest

DOCUMENTS = [
    {"id": "cats", "text": "Cats sleep on warm mats all afternoon.", "metadata": {"kind": "pets"}},
    {"id": "dogs", "text": "Dogs chase balls in the park.", "metadata": {"kind": "pets"}},
    {"id": "tax", "text": "Quarterly tax filings are due in April.", "metadata": {"kind": "finance"}},
]


@pytest.fixture
def stored(client):
    assert client.post("/embed/", json={"documents": DOCUMENTS}).status_code == 200
    client.app.state.embedder.encoded.clear()
    return client


def search(client, **body):
    response = client.post("/search/", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_keyword_mode_matches_words_and_never_runs_the_model(stored):
    hits = search(stored, query="chasing dog", mode="keyword")
    assert [hit["id"] for hit in hits] == ["dogs"]
    assert hits[0]["score"] > 0 and hits[0]["metadata"] == {"kind": "pets"}
    assert stored.app.state.embedder.encoded == []


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_every_mode_applies_the_filter_and_top_k(stored, mode):
    hits = search(stored, query="cats dogs tax", mode=mode, where={"kind": "pets"}, top_k=1)
    assert len(hits) == 1 and hits[0]["metadata"] == {"kind": "pets"}


def test_hybrid_scores_lie_in_0_1_and_its_weight_moves_the_ranking(stored):
    hits = search(stored, query="april filings", mode="hybrid", top_k=3)
    assert hits[0]["id"] == "tax" and all(0.0 <= hit["score"] <= 1.0 for hit in hits)
    keyword = search(stored, query="dogs chase cats", mode="keyword")
    keyword_only = search(stored, query="dogs chase cats", mode="hybrid", hybrid_weight=0.0)
    assert len(keyword) == 2 and [hit["id"] for hit in keyword_only][:2] == [hit["id"] for hit in keyword]
    # weight 0 leaves only the keyword scores, min-max normalised: the best 1, the rest 0 here
    assert [hit["score"] for hit in keyword_only] == [1.0, 0.0, 0.0]
    semantic = search(stored, query="april filings", top_k=3)
    semantic_only = search(stored, query="april filings", mode="hybrid", hybrid_weight=1.0, top_k=3)
    assert [hit["id"] for hit in semantic_only] == [hit["id"] for hit in semantic]


def test_deleted_and_replaced_documents_leave_the_keyword_index(stored):
    stored.post("/delete/", json={"ids": ["cats"]})
    stored.post("/embed/", json={"documents": [{"id": "tax", "text": "Dogs do not pay tax."}]})
    assert search(stored, query="mats", mode="keyword") == []
    assert search(stored, query="quarterly", mode="keyword") == []
    assert {hit["id"] for hit in search(stored, query="dogs", mode="keyword")} == {"dogs", "tax"}
