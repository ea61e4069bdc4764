"""/embed/ with chunking: long texts are stored as chunks and found by any part of them, one result
per document with its best chunk's span; deletes, replacements and metadata updates reach every
chunk; the quota and listings count documents. The hashing embedder reads the first 256 words of a
text, as the model reads its first 256 word pieces."""

import pytest

FILLER = " ".join(f"filler{n}" for n in range(400))  # 400 words: the tail is past the window
TAIL = "volcanic eruptions release sulphur dioxide"
LONG = f"{FILLER} {TAIL}."


def embed(client, *documents, chunking=True):
    response = client.post("/embed/", json={"documents": list(documents), "chunking": chunking})
    assert response.status_code == 200, response.text
    return response.json()


def search(client, query, **options):
    response = client.post("/search/", json={"query": query, **options})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def chunk_records(client) -> int:
    return client.app.state.store.store.chunks.collection.count()


def test_a_long_document_is_found_by_its_tail_only_when_chunked(client):
    body = embed(client, {"id": "chunked", "text": LONG, "metadata": {"k": 1}})
    assert body["chunks"] == {"chunked": 3} and body["truncated"] == [] and body["count"] == 1
    unchunked = embed(client, {"id": "plain", "text": LONG}, chunking=False)
    assert unchunked["truncated"] == ["plain"] and unchunked["chunks"] == {}
    hits = search(client, TAIL, top_k=2)
    assert hits[0]["id"] == "chunked" and hits[0]["text"] == LONG and hits[0]["metadata"] == {"k": 1}
    start, end = hits[0]["span"]
    assert TAIL in LONG[start:end] and start > 0 and end == len(LONG)
    assert hits[1]["id"] == "plain" and hits[1]["score"] < hits[0]["score"] and hits[1].get("span") is None
    hybrid = search(client, TAIL, mode="hybrid", top_k=1)
    assert hybrid[0]["id"] == "chunked" and hybrid[0]["span"] == [start, end]
    assert client.get("/count/").json()["count"] == 2  # documents, not chunks
    assert [d["id"] for d in client.post("/list/", json={}).json()["documents"]] == ["chunked", "plain"]


def test_filters_apply_to_chunks_through_their_document(client):
    embed(client, {"id": "doc", "text": LONG, "metadata": {"team": "geo"}})
    assert search(client, TAIL, where={"team": "bio"}) == []
    assert search(client, TAIL, where_document={"$contains": "glacier"}) == []
    client.post("/update/", json={"documents": [{"id": "doc", "metadata": {"team": "bio"}}]})
    (hit,) = search(client, TAIL, where={"team": "bio"}, top_k=1)
    assert hit["id"] == "doc" and hit["span"][1] == len(LONG)
    assert search(client, TAIL, where={"team": "geo"}) == []


def test_deletes_and_replacements_reach_every_chunk(client):
    embed(client, {"id": "a", "text": LONG}, {"id": "b", "text": LONG.replace("volcanic", "oceanic")})
    assert chunk_records(client) == 4  # 2 chunks after the first, per document
    client.post("/delete/", json={"ids": ["a"]})
    assert chunk_records(client) == 2 and [h["id"] for h in search(client, TAIL, top_k=5)][:1] == ["b"]
    embed(client, {"id": "b", "text": "short now"})  # replaced by a text that fits: no chunks left
    assert chunk_records(client) == 0
    embed(client, {"id": "c", "text": LONG, "metadata": {"drop": True}})
    client.post("/delete/", json={"where": {"drop": True}})
    assert chunk_records(client) == 0 and client.get("/count/").json()["count"] == 1


def test_a_request_making_more_chunks_than_the_plan_allows_is_refused(make_client):
    client = make_client(max_docs=100, chunk_tokens=10, chunk_overlap_tokens=0)
    documents = [{"text": " ".join(f"t{d}x{n}" for n in range(1000))} for d in range(21)]  # 21 x 100 chunks
    response = client.post("/embed/", json={"documents": documents, "chunking": True})
    assert response.status_code == 422 and response.json()["error"] == "plan_limit_exceeded", response.text
    assert client.get("/count/").json()["count"] == 0 and chunk_records(client) == 0


@pytest.mark.parametrize("chunking", [1, "yes", None])
def test_chunking_is_a_boolean(client, chunking):
    response = client.post("/embed/", json={"documents": [{"text": "t"}], "chunking": chunking})
    assert response.status_code == 422 and response.json()["field"] == "chunking"
