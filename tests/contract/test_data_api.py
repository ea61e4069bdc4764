"""Reading documents back: by ids (`POST /get/`), one by id (`GET /documents/{id}`), and the count."""

import urllib.parse

import pytest


@pytest.fixture
def stored(client):
    documents = [
        {"id": "a", "text": "first text", "metadata": {"page": 1}},
        {"id": "b", "text": "second text"},
        {"id": "ünï code/../x", "text": "third text", "metadata": {"tag": "odd"}},
    ]
    assert client.post("/embed/", json={"documents": documents}).status_code == 200
    return client


def test_get_returns_documents_in_the_order_asked_and_lists_the_missing(stored):
    body = stored.post("/get/", json={"ids": ["b", "nope", "a", "b"]}).json()
    assert body["missing"] == ["nope"]
    assert body["documents"] == [
        {"id": "b", "text": "second text", "metadata": {}, "embedding": None},
        {"id": "a", "text": "first text", "metadata": {"page": 1}, "embedding": None},
    ]


def test_include_picks_the_fields_and_the_embedding_is_the_stored_vector(stored):
    body = stored.post("/get/", json={"ids": ["a"], "include": ["embedding"]}).json()
    (document,) = body["documents"]
    assert document["text"] is None and document["metadata"] is None
    assert len(document["embedding"]) == 384
    assert abs(sum(x * x for x in document["embedding"]) - 1.0) < 1e-4  # unit length, as the model makes it


def test_one_document_by_id_and_404_when_absent(stored):
    found = stored.get("/documents/" + urllib.parse.quote("ünï code", safe=""))
    assert found.status_code == 404 and found.json()["error"] == "not_found"
    assert stored.get("/documents/a").json() == {
        "id": "a",
        "text": "first text",
        "metadata": {"page": 1},
        "embedding": None,
    }


def test_count_and_quota(stored):
    assert stored.get("/count/").json() == {"count": 3, "quota": 20}
    assert stored.get("/count").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [({"ids": []}, "ids"), ({"ids": ["a"], "include": ["vectors"]}, "include.0"), ({"ids": ["x"] * 257}, "ids")],
)
def test_bad_gets_are_a_clear_422(stored, body, field):
    response = stored.post("/get/", json=body)
    assert response.status_code == 422 and response.json()["field"] == field, response.text


def test_reading_needs_the_key_like_writing(make_client):
    locked = make_client(api_key="a-key-for-reads-0123456789")
    for response in (
        locked.get("/count/"),
        locked.get("/documents/a"),
        locked.post("/get/", json={"ids": ["a"]}),
    ):
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"


# --- listing, filtered deletes, metadata updates, batch and vector search ---------------------------

PAGE_DOCS = [
    {"id": f"p{n}", "text": f"note number {n} about {'cats' if n % 2 else 'taxes'}", "metadata": {"n": n}}
    for n in range(5)
]


@pytest.fixture
def paged(client):
    assert client.post("/embed/", json={"documents": PAGE_DOCS}).status_code == 200
    return client


def ids_of(documents):
    return [document["id"] for document in documents]


def test_list_pages_through_everything_in_insertion_order(paged):
    seen, offset, pages = [], 0, 0
    while offset is not None:
        body = paged.post("/list/", json={"limit": 2, "offset": offset}).json()
        seen += ids_of(body["documents"])
        offset, pages = body["next_offset"], pages + 1
    assert seen == [doc["id"] for doc in PAGE_DOCS] and pages == 3
    first = paged.post("/list/", json={"limit": 1, "include": ["embedding"]}).json()["documents"][0]
    assert first["text"] is None and len(first["embedding"]) == 384


def test_list_filters_by_metadata_and_by_text(paged):
    by_metadata = paged.post("/list/", json={"where": {"n": {"$gte": 3}}}).json()
    assert ids_of(by_metadata["documents"]) == ["p3", "p4"] and by_metadata["next_offset"] is None
    by_text = paged.post("/list/", json={"where_document": {"$contains": "cats"}}).json()
    assert ids_of(by_text["documents"]) == ["p1", "p3"]


def test_delete_by_filter_deletes_exactly_the_matches_everywhere(paged):
    response = paged.post("/delete/", json={"where_document": {"$contains": "taxes"}, "where": {"n": {"$lt": 4}}})
    assert response.json() == {"deleted": 2, "count": 3}
    assert ids_of(paged.post("/list/", json={}).json()["documents"]) == ["p1", "p3", "p4"]
    keyword = paged.post("/search/", json={"query": "taxes", "mode": "keyword"}).json()["results"]
    assert ids_of(keyword) == ["p4"]  # the keyword index followed the delete
    assert paged.post("/delete/", json={"where": {"n": 99}}).json() == {"deleted": 0, "count": 3}


def test_a_filtered_delete_over_the_plan_deletes_nothing(make_client):
    client = make_client(max_docs=400)
    documents = [{"id": f"d{n}", "text": f"bulk {n}", "metadata": {"batch": "old"}} for n in range(257)]
    for start in (0, 200):
        assert client.post("/embed/", json={"documents": documents[start : start + 200]}).status_code == 200
    response = client.post("/delete/", json={"where": {"batch": "old"}})
    assert response.status_code == 422 and response.json()["error"] == "plan_limit_exceeded", response.text
    assert client.get("/count/").json()["count"] == 257


def test_update_replaces_metadata_without_running_the_model(paged):
    embedder = paged.app.state.embedder
    before = paged.post("/get/", json={"ids": ["p1"], "include": ["embedding"]}).json()["documents"][0]
    encoded = len(embedder.encoded)
    response = paged.post("/update/", json={"documents": [{"id": "p1", "metadata": {"tag": "new"}}]})
    assert response.json() == {"updated": 1}
    after = paged.post("/get/", json={"ids": ["p1"], "include": ["text", "metadata", "embedding"]}).json()
    (document,) = after["documents"]
    assert document["metadata"] == {"tag": "new"} and document["text"] == PAGE_DOCS[1]["text"]
    assert document["embedding"] == before["embedding"] and len(embedder.encoded) == encoded


def test_update_of_an_unknown_id_is_404_and_changes_nothing(paged):
    response = paged.post(
        "/update/", json={"documents": [{"id": "p0", "metadata": {"x": 1}}, {"id": "ghost", "metadata": {}}]}
    )
    assert response.status_code == 404 and "ghost" in response.json()["message"], response.text
    assert paged.get("/documents/p0").json()["metadata"] == {"n": 0}


def test_batch_search_answers_each_search_in_order(paged):
    body = {"searches": [{"query": "cats", "top_k": 1, "mode": "keyword"}, {"query": "taxes", "top_k": 2}]}
    results = paged.post("/search/batch/", json=body).json()["results"]
    assert len(results) == 2 and len(results[0]["results"]) == 1 and len(results[1]["results"]) == 2
    assert "cats" in results[0]["results"][0]["text"]


def test_search_by_vector_and_by_text_filters(paged):
    vector = paged.post("/get/", json={"ids": ["p2"], "include": ["embedding"]}).json()["documents"][0]["embedding"]
    hits = paged.post("/search/", json={"vector": vector, "top_k": 2}).json()["results"]
    assert hits[0]["id"] == "p2" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    encoded = len(paged.app.state.embedder.encoded)
    for mode in ("semantic", "keyword", "hybrid"):
        body = {"query": "note", "mode": mode, "where_document": {"$not_contains": "cats"}}
        assert set(ids_of(paged.post("/search/", json=body).json()["results"])) == {"p0", "p2", "p4"}, mode
    assert len(paged.app.state.embedder.encoded) == encoded + 2  # keyword mode never ran the model


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/list/", {"limit": 257}, "limit"),
        ("/list/", {"limit": 0}, "limit"),
        ("/list/", {"offset": -1}, "offset"),
        ("/list/", {"offset": 141340391144916912}, "offset"),
        ("/list/", {"where": {"n": {"$bogus": 1}}}, "where"),
        ("/list/", {"where_document": {"$contains": 5}}, "where_document"),
        ("/delete/", {"ids": ["a"], "where": {"n": 1}}, "body"),
        ("/delete/", {}, "body"),
        ("/delete/", {"where": {}}, "body"),
        ("/update/", {"documents": []}, "documents"),
        ("/update/", {"documents": [{"id": "p0", "metadata": {}}, {"id": "p0", "metadata": {}}]}, "documents"),
        ("/update/", {"documents": [{"id": "p0", "metadata": {"k": "x" * 5000}}]}, "documents.0.metadata"),
        ("/search/batch/", {"searches": []}, "searches"),
        ("/search/batch/", {"searches": [{"query": "x"}] * 33}, "searches"),
        ("/search/batch/", {"searches": [{"query": "x"}, {"query": "y", "where": {"$bad": 1}}]}, "searches.1.where"),
        ("/search/batch/", {"searches": [{"query": "x", "top_k": 51}]}, "searches.0.top_k"),
        ("/search/", {"vector": [0.1] * 10}, "vector"),
        ("/search/", {"vector": [0.1] * 384, "query": "x"}, "body"),
        ("/search/", {"vector": [0.1] * 384, "mode": "keyword"}, "body"),
        ("/search/", {}, "body"),
        ("/search/", {"query": "x", "where_document": {"$contains": 5}}, "where_document"),
        ("/search/", {"vector": [3e38] * 384}, "vector"),
        ("/search/", {"vector": [0.0] * 384}, "vector"),
        ("/search/", {"query": "x", "top_k": True}, "top_k"),
        ("/search/", {"query": "x", "top_k": 10.0}, "top_k"),
        ("/search/", {"query": "x", "mode": "hybrid", "hybrid_weight": True}, "hybrid_weight"),
        ("/list/", {"limit": 10.0}, "limit"),
    ],
)
def test_bad_data_api_requests_are_a_clear_4xx_and_change_nothing(paged, path, body, field):
    response = paged.post(path, json=body)
    assert response.status_code in (422,), response.text
    assert response.json()["field"] == field, response.text
    assert paged.get("/count/").json()["count"] == len(PAGE_DOCS)


def test_a_vector_with_nan_is_refused(paged):
    content = '{"vector": [NaN' + ", 0.1" * 383 + "]}"
    response = paged.post("/search/", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["field"].startswith("vector"), response.text


# --- documents with the tenant's own vectors -------------------------------------------------------


def own_vector(seed: int) -> list[float]:
    return [((seed * 31 + i * 17) % 97 - 48) / 97 for i in range(384)]


def test_a_supplied_vector_is_stored_as_given_and_the_model_is_not_run(client):
    embedder = client.app.state.embedder
    vector = own_vector(1)
    body = {"documents": [{"id": "mine", "text": "a text", "metadata": {"k": 1}, "embedding": vector}]}
    response = client.post("/embed/", json=body)
    assert response.status_code == 200 and response.json()["truncated"] == [], response.text
    assert embedder.encoded == []
    (stored,) = client.post("/get/", json={"ids": ["mine"], "include": ["metadata", "embedding"]}).json()["documents"]
    assert stored["metadata"] == {"k": 1}  # the service's own key for the vector is never shown
    assert stored["embedding"] == pytest.approx(vector, abs=1e-6)
    hits = client.post("/search/", json={"vector": vector, "top_k": 1}).json()["results"]
    assert hits[0]["id"] == "mine" and hits[0]["metadata"] == {"k": 1}
    client.post("/update/", json={"documents": [{"id": "mine", "metadata": {"k": 2}}]})
    # the same text sent again without a vector is the model's to embed: the supplied one is not reused
    client.post("/embed/", json={"documents": [{"id": "mine", "text": "a text"}]})
    assert embedder.encoded == ["a text"]


@pytest.mark.parametrize(
    ("embedding", "field"),
    [
        ([0.1] * 383, "documents.0.embedding"),
        ([0.1] * 385, "documents.0.embedding"),
        ("x", "documents.0.embedding"),
        ([3e38] * 384, "documents.0.embedding"),  # every number fits float32, the length does not
        ([1e39] + [0.1] * 383, "documents.0.embedding"),  # a number beyond float32
        ([0.0] * 384, "documents.0.embedding"),  # no direction
        ([1e-30] * 384, "documents.0.embedding"),  # a length float32 rounds to zero
        ([True] + [0.1] * 383, "documents.0.embedding.0"),  # a boolean is not a number
    ],
)
def test_a_bad_supplied_vector_is_refused_and_nothing_is_stored(client, embedding, field):
    response = client.post("/embed/", json={"documents": [{"text": "t", "embedding": embedding}]})
    assert response.status_code == 422 and response.json()["field"].startswith(field), response.text
    assert client.get("/count/").json()["count"] == 0


def test_infinity_in_a_supplied_vector_is_refused(client):
    content = '{"documents": [{"text": "t", "embedding": [Infinity' + ", 0.1" * 383 + "]}]}"
    response = client.post("/embed/", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["field"].startswith("documents.0.embedding")


@pytest.mark.parametrize("key", ["_cdbi:vector", "$and", "$gt"])
def test_the_service_metadata_prefix_and_operators_are_reserved(client, key):
    response = client.post("/embed/", json={"documents": [{"text": "t", "metadata": {key: "x"}}]})
    assert response.status_code == 422 and "reserved" in response.json()["message"], response.text
    assert client.get("/count/").json()["count"] == 0
