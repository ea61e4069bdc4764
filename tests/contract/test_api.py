"""The HTTP contract: routes, bodies, status codes and error shapes."""

import dataclasses

import pytest

from deployments.core.plans import PLANS

ROUTES = [("POST", "/embed"), ("POST", "/search"), ("POST", "/delete"), ("GET", "/healthz")]
BODIES = {
    "/embed": {"documents": [{"id": "x", "text": "hello"}]},
    "/search": {"query": "hello"},
    "/delete": {"ids": ["x"]},
}


def docs(*texts, **metadata):
    return {"documents": [{"id": f"d{n}", "text": text, "metadata": metadata} for n, text in enumerate(texts)]}


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("slash", ["", "/"])
def test_every_route_answers_with_and_without_slash(client, method, path, slash):
    response = client.request(method, path + slash, json=BODIES.get(path), follow_redirects=False)
    assert response.status_code == 200, response.text


def test_embed_search_delete_round_trip(client):
    added = client.post("/embed/", json=docs("red apples and pears", "fast cars on roads", kind="x"))
    assert added.json() == {"ids": ["d0", "d1"], "count": 2, "truncated": [], "chunks": {}}
    results = client.post("/search/", json={"query": "apples", "top_k": 2}).json()["results"]
    assert [hit["id"] for hit in results] == ["d0", "d1"]
    assert results[0]["metadata"] == {"kind": "x"} and results[0]["text"] == "red apples and pears"
    assert client.post("/delete/", json={"ids": ["d0", "nope"]}).json() == {"deleted": 1, "count": 1}


def test_missing_ids_are_generated_and_truncation_reported(client):
    body = client.post("/embed/", json={"documents": [{"text": "short"}, {"id": "long", "text": "w " * 300}]}).json()
    assert len(body["ids"]) == 2 and len(body["ids"][0]) == 32 and body["ids"][1] == "long"
    assert body["truncated"] == ["long"]


def test_an_unchanged_text_is_not_embedded_again(client):
    long_text = "w " * 300
    first = {"documents": [{"id": "a", "text": "red apples"}, {"id": "long", "text": long_text}]}
    assert client.post("/embed/", json=first).json()["count"] == 2
    encoded = client.app.state.embedder.encoded
    assert encoded == ["red apples", long_text]
    again = {
        "documents": [
            {"id": "a", "text": "red apples", "metadata": {"v": 2}},
            {"id": "long", "text": long_text},
            {"id": "b", "text": "fast cars"},
        ]
    }
    body = client.post("/embed/", json=again).json()
    assert body == {"ids": ["a", "long", "b"], "count": 3, "truncated": ["long"], "chunks": {}}
    assert encoded == ["red apples", long_text, "fast cars"]  # only the new text ran through the model
    hits = client.post("/search/", json={"query": "red apples", "top_k": 1}).json()["results"]
    assert hits[0]["id"] == "a" and hits[0]["metadata"] == {"v": 2} and hits[0]["score"] > 0.99
    client.post("/embed/", json={"documents": [{"id": "a", "text": "blue whales"}]})
    assert encoded[-1] == "blue whales"  # a changed text is embedded again
    hits = client.post("/search/", json={"query": "blue whales", "top_k": 1}).json()["results"]
    assert hits[0]["id"] == "a" and hits[0]["score"] > 0.99


def test_an_embed_is_one_store_read_one_model_call_and_one_write(client):
    """Truncation flags of reused texts and chunk boundaries come from the Ingress's own tokenizer."""
    handles = client.app.state.handles
    client.post("/embed/", json={"documents": [{"id": "long", "text": "w " * 300}]})
    for handle in handles.values():
        handle.called.clear()
    resent = {"documents": [{"id": "long", "text": "w " * 300}, {"id": "new", "text": "fresh"}]}
    assert client.post("/embed/", json=resent).json()["truncated"] == ["long"]
    chunked = {"documents": [{"id": "chunked", "text": "v " * 600}], "chunking": True}
    assert client.post("/embed/", json=chunked).json()["chunks"] == {"chunked": 4}
    assert handles["ChromaStore"].called == ["stored_vectors", "upsert"] * 2
    assert handles["Embedder"].called == ["embed"] * 2


def test_healthz_reports_the_instance(client):
    client.post("/embed/", json=docs("one"))
    body = client.get("/healthz/").json()
    assert body["status"] == "ok"
    assert (body["tenant_id"], body["plan"], body["dimension"], body["count"], body["quota"]) == (
        "default",
        "starter",
        384,
        1,
        20,
    )
    starter = dataclasses.asdict(PLANS["starter"])
    assert body["limits"] == {name: value for name, value in starter.items() if name not in ("name", "max_docs")}
    assert {name: state["status"] for name, state in body["deployments"].items()} == {
        "Ingress": "ok",
        "Embedder": "ok",
        "ChromaStore": "ok",
    }


def test_quota_refusal_is_403_and_stores_nothing(client):
    """... and comes before the model runs: a tenant at its quota spends no embedding CPU."""
    client.post("/embed/", json={"documents": [{"id": f"a{n}", "text": f"doc {n}"} for n in range(15)]})
    encoded = list(client.app.state.embedder.encoded)
    response = client.post("/embed/", json={"documents": [{"id": f"b{n}", "text": f"new {n}"} for n in range(6)]})
    chunked = {"documents": [{"id": f"c{n}", "text": "long words " * 400} for n in range(6)], "chunking": True}
    assert client.post("/embed/", json=chunked).status_code == 403
    assert client.app.state.embedder.encoded == encoded
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "quota_exceeded"
    assert "20" in body["message"] and "15" in body["message"]
    assert client.get("/healthz/").json()["count"] == 15
    assert client.post("/delete/", json={"ids": [f"b{n}" for n in range(6)]}).json()["deleted"] == 0


LONG = "x" * 10_001
BAD_REQUESTS = [
    ("/embed/", {"documents": []}, 422, "documents"),
    ("/embed/", {}, 422, "documents"),
    ("/embed/", {"documents": [{"text": ""}]}, 422, "documents.0.text"),
    ("/embed/", {"documents": [{"text": " \n\t "}]}, 422, "documents.0.text"),
    ("/embed/", {"documents": [{"text": 5}]}, 422, "documents.0.text"),
    ("/embed/", {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, 422, "documents"),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": [1, 2]}}]}, 422, "documents.0.metadata.k"),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": {"a": 1}}}]}, 422, "documents.0.metadata.k"),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": None}}]}, 422, "documents.0.metadata.k"),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"chroma:document": "a"}}]}, 422, "documents.0.metadata"),
    ("/embed/", {"documents": [{"id": "", "text": "x"}]}, 422, "documents.0.id"),
    ("/embed/", {"documents": [{"id": "a\u0000b", "text": "x"}]}, 422, "documents.0.id"),
    ("/embed/", {"documents": [{"text": LONG}]}, 422, "documents.0.text"),
    ("/embed/", {"documents": [{"text": f"t{n}"} for n in range(257)]}, 422, "documents"),
    ("/embed/", {"documents": [{"text": "x", "colour": "red"}]}, 422, "documents.0.colour"),
    ("/embed/", [1, 2], 422, "body"),
    ("/search/", {"query": ""}, 422, "query"),
    ("/search/", {"query": "   "}, 422, "query"),
    ("/search/", {"query": "x", "top_k": 0}, 422, "top_k"),
    ("/search/", {"query": "x", "top_k": -3}, 422, "top_k"),
    ("/search/", {"query": "x", "top_k": 51}, 422, "top_k"),
    ("/search/", {"query": "x", "top_k": "ten"}, 422, "top_k"),
    ("/search/", {"query": "x", "where": {"n": {"$gt": "a"}}}, 422, "where"),
    ("/search/", {"query": "x", "where": {"$bad": 1}}, 422, "where"),
    ("/search/", {"query": "x", "where": "n=1"}, 422, "where"),
    ("/search/", {"query": "x", "mode": "fuzzy"}, 422, "mode"),
    ("/search/", {"query": "x", "mode": "keyword", "where": {"$bad": 1}}, 422, "where"),
    ("/search/", {"query": "x", "mode": "hybrid", "hybrid_weight": 1.5}, 422, "hybrid_weight"),
    ("/search/", {"query": "x", "hybrid_weight": 0.3}, 422, "body"),
    ("/delete/", {"ids": []}, 422, "ids"),
    ("/delete/", {"ids": "a"}, 422, "ids"),
    ("/delete/", {"ids": [f"i{n}" for n in range(257)]}, 422, "ids"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(client, path, body, status, field):
    client.post("/embed/", json=docs("existing document", n=1))
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error"] and error["message"]
    assert error["field"].startswith(field), error
    assert client.get("/healthz/").json()["count"] == 1


def test_malformed_json_is_400(client):
    response = client.post("/embed/", content="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("content", "content_type"), [("query=cats", "text/plain"), ("", "application/json"), ("[1]", "application/json")]
)
def test_a_body_that_is_not_a_json_object_is_refused_with_a_hint(client, content, content_type):
    response = client.post("/search/", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert response.json()["field"] == "body"
    assert "application/json" in response.json()["message"]


def test_openapi_documents_every_route_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/embed/",
        "/search/",
        "/delete/",
        "/get/",
        "/documents/{doc_id}",
        "/count/",
        "/healthz/",
        "/search/batch/",
        "/list/",
        "/update/",
        "/snapshot/",
        "/metrics/",
        "/v1/embeddings",
    }
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            assert operation["description"] and "curl" in operation["description"], path
            assert {"401", "422", "503"} <= set(operation["responses"]), path
    for name in (
        "EmbedRequest",
        "SearchRequest",
        "BatchSearchRequest",
        "DeleteRequest",
        "GetRequest",
        "ListRequest",
        "UpdateRequest",
    ):
        assert spec["components"]["schemas"][name]["examples"]
    assert client.get("/docs").status_code == 200


def test_plan_limits_follow_the_plan(make_client):
    client = make_client(plan="pro")
    assert client.post("/search/", json={"query": "x", "top_k": 200}).status_code == 200
    assert client.post("/search/", json={"query": "x", "top_k": 201}).json()["error"] == "plan_limit_exceeded"


def test_metrics_say_503_when_there_is_no_export_to_pass_on(client, monkeypatch):
    monkeypatch.delenv("CHROMEDB_METRICS_EXPORT_PORT", raising=False)
    response = client.get("/metrics/")
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    monkeypatch.setenv("CHROMEDB_METRICS_EXPORT_PORT", "9")  # nothing listens there
    assert client.get("/metrics/").status_code == 503
