"""API_KEY: every route but the health check and the docs needs the key; without one, the instance is open."""

import pytest

KEY = "k3y-for-tests-0123456789"


@pytest.fixture
def locked(make_client):
    return make_client(api_key=KEY)


def embed_body() -> dict[str, object]:
    return {"documents": [{"id": "a", "text": "hello"}]}


@pytest.mark.parametrize("path", ["/embed/", "/embed", "/search/", "/delete/"])
def test_a_request_without_the_key_is_refused_before_its_body_is_read(locked, path):
    response = locked.post(path, content=b"not json at all")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthorized" and "Authorization: Bearer" in body["message"]
    assert KEY not in response.text


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "wrong"}, {"Authorization": f"Basic {KEY}"}],
)
def test_a_wrong_key_is_refused_and_nothing_is_written(locked, headers):
    response = locked.post("/embed/", json=embed_body(), headers=headers)
    assert response.status_code == 401
    assert KEY not in response.text
    assert locked.get("/healthz/").json()["count"] == 0


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}])
def test_the_key_opens_every_route(locked, headers):
    assert locked.post("/embed/", json=embed_body(), headers=headers).json()["count"] == 1
    hits = locked.post("/search/", json={"query": "hello"}, headers=headers).json()["results"]
    assert [hit["id"] for hit in hits] == ["a"]
    assert locked.post("/delete/", json={"ids": ["a"]}, headers=headers).json() == {"deleted": 1, "count": 0}


def test_health_and_docs_stay_open_and_say_a_key_is_required_without_showing_it(locked):
    health = locked.get("/healthz/")
    assert health.status_code == 200 and health.json()["auth"] == "api_key"
    assert KEY not in health.text
    assert locked.get("/openapi.json").status_code == 200
    assert locked.get("/docs").status_code == 200


def test_without_a_key_the_instance_is_open_and_says_so(client):
    assert client.get("/healthz/").json()["auth"] == "open"
    assert client.post("/embed/", json=embed_body()).status_code == 200
