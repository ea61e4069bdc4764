"""API_KEY: every route but the health check and the docs needs the key; without one, the instance is open."""

import pytest

from deployments.core.errors import ConfigError

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
    assert health.status_code == 200 and health.json()["auth"] == "api_key" and health.json()["keys"] == ["API_KEY"]
    assert KEY not in health.text
    assert locked.get("/openapi.json").status_code == 200
    assert locked.get("/docs").status_code == 200


def test_without_a_key_the_instance_is_open_and_says_so(client):
    assert client.get("/healthz/").json()["auth"] == "open" and client.get("/healthz/").json()["keys"] == []
    assert client.post("/embed/", json=embed_body()).status_code == 200


NEXT = "the-next-key-0123456789"
READ_ONLY = "read-only-key-0123456789"


@pytest.fixture
def rotating(make_client):
    return make_client(api_key=KEY, api_key_next=NEXT, api_key_readonly=READ_ONLY)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_during_a_rotation_both_full_keys_open_every_route(rotating):
    assert rotating.post("/embed/", json=embed_body(), headers=bearer(KEY)).status_code == 200
    assert rotating.post("/delete/", json={"ids": ["a"]}, headers=bearer(NEXT)).json() == {"deleted": 1, "count": 0}
    assert rotating.post("/snapshot/", headers={"X-API-Key": NEXT}).status_code == 200


def test_a_read_only_key_reads_and_never_writes(rotating):
    assert rotating.post("/embed/", json=embed_body(), headers=bearer(KEY)).status_code == 200
    reader = bearer(READ_ONLY)
    assert [hit["id"] for hit in rotating.post("/search/", json={"query": "hello"}, headers=reader).json()["results"]]
    assert rotating.post("/search/batch/", json={"searches": [{"query": "hello"}]}, headers=reader).status_code == 200
    assert rotating.post("/get/", json={"ids": ["a"]}, headers=reader).json()["documents"][0]["id"] == "a"
    assert rotating.post("/list/", json={}, headers=reader).status_code == 200
    assert rotating.get("/documents/a", headers=reader).status_code == 200
    assert rotating.get("/count/", headers=reader).json()["count"] == 1
    for method, path, body in [
        ("POST", "/embed/", embed_body()),
        ("POST", "/update/", {"documents": [{"id": "a", "metadata": {"k": 1}}]}),
        ("POST", "/delete/", {"ids": ["a"]}),
        ("POST", "/snapshot/", None),
        ("GET", "/metrics/", None),
    ]:
        response = rotating.request(method, path, json=body, headers=reader)
        assert response.status_code == 403 and response.json()["error"] == "read_only_key", (path, response.text)
    assert rotating.get("/count/", headers=reader).json()["count"] == 1
    assert rotating.get("/documents/a", headers=reader).json()["metadata"] == {}


def test_health_names_the_keys_that_are_set_never_their_values(rotating):
    health = rotating.get("/healthz/")
    assert health.json()["keys"] == ["API_KEY", "API_KEY_NEXT", "API_KEY_READONLY"]
    assert not any(key in health.text for key in (KEY, NEXT, READ_ONLY))


@pytest.mark.parametrize(
    ("settings", "problem"),
    [({"api_key_readonly": READ_ONLY}, "need API_KEY"), ({"api_key": KEY, "api_key_next": KEY}, "must all differ")],
)
def test_key_settings_that_make_no_sense_refuse_to_start(make_settings, settings, problem):
    with pytest.raises(ConfigError, match=problem):
        make_settings(**settings)
