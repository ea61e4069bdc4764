"""The API key in the OpenAPI document: /docs' Authorize button. Every route the key guards lists the
key's schemes, the open ones do not, and what the document says matches what the middleware does."""

import pytest

KEY = "openapi-key-0123456789abcdef"
SCHEMES = {"ApiKeyBearer", "ApiKeyHeader"}
# The only documented operation the middleware lets through without a key (auth.PUBLIC_PATHS).
OPEN = {("get", "/healthz/")}


@pytest.fixture
def locked(make_client):
    return make_client(api_key=KEY)


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_the_key_is_declared_as_bearer_and_as_x_api_key(locked):
    schemes = locked.get("/openapi.json").json()["components"]["securitySchemes"]
    assert set(schemes) == SCHEMES
    assert (schemes["ApiKeyBearer"]["type"], schemes["ApiKeyBearer"]["scheme"]) == ("http", "bearer")
    assert {key: schemes["ApiKeyHeader"][key] for key in ("type", "in", "name")} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }


def test_every_guarded_route_lists_the_key_and_the_open_ones_do_not(locked):
    document = locked.get("/openapi.json").json()
    listed = {(method, path) for method, path, operation in operations(document) if "security" in operation}
    every = {(method, path) for method, path, _ in operations(document)}
    assert listed == every - OPEN and len(listed) > 10
    for method, path, operation in operations(document):
        if (method, path) in listed:
            # Either scheme; {}: an instance without a key takes the request without one.
            assert operation["security"] == [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}, {}], (method, path)


def test_what_the_document_says_is_what_the_middleware_does(locked):
    """Each documented operation, called without a key: refused exactly when it lists the key."""
    document = locked.get("/openapi.json").json()
    for method, path, operation in operations(document):
        response = locked.request(method.upper(), path.replace("{doc_id}", "doc-1"), content=b"{}")
        assert (response.status_code == 401) == ("security" in operation), (method, path, response.status_code)


def test_every_instance_serves_the_same_document(locked, make_client, tmp_path):
    """tests/fuzzing.py fuzzes against one document: the key's schemes do not depend on a key being set."""
    open_instance = make_client(persist_dir=tmp_path / "open")
    assert locked.get("/openapi.json").json() == open_instance.get("/openapi.json").json()


def test_the_docs_and_the_console_still_load_without_the_key(locked):
    docs = locked.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    assert locked.get("/redoc").status_code == 200
    assert locked.get("/openapi.json").status_code == 200
    console = locked.get("/console/")
    assert console.status_code == 200 and console.headers["content-type"].startswith("text/html")
