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
