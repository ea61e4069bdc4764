"""Filters on every route that takes them (/search/, /search/batch/, /list/, /delete/): each bad one
is a 422 naming the filter, never a 500, and nothing changes; the plan bounds a filter's size."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

DOCS = [{"id": f"f{n}", "text": f"filter text number {n}", "metadata": {"n": n, "flag": n % 2 == 0}} for n in range(4)]


@pytest.fixture
def filtered(client):
    assert client.post("/embed/", json={"documents": DOCS}).status_code == 200
    return client


def nested(depth: int) -> dict[str, Any]:
    """A `$and` tree `depth` levels of objects deep (1 is {"n": 1})."""
    where: dict[str, Any] = {"n": 1}
    for _ in range(depth - 1):
        where = {"$and": [where, {"n": 2}]}
    return where


def bodies(name: str, value: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """The filter `name` (where or where_document) on every route that takes it, and where the error points."""
    return [
        ("/search/", {"query": "text", name: value}, name),
        ("/search/", {"query": "text", "mode": "keyword", name: value}, name),
        ("/search/", {"query": "text", "mode": "hybrid", name: value}, name),
        ("/search/batch/", {"searches": [{"query": "text"}, {"query": "text", name: value}]}, f"searches.1.{name}"),
        ("/list/", {name: value}, name),
        ("/delete/", {name: value}, name),
    ]


BAD_WHERE: dict[str, dict[str, Any]] = {
    "mixed $in": {"n": {"$in": [1, "x"]}},
    "integers and decimals in $in": {"n": {"$in": [1, 2.5]}},
    "empty $in": {"n": {"$in": []}},
    "$gt on a boolean": {"flag": {"$gt": True}},
    "$gt on a string": {"n": {"$gt": "a"}},
    "unknown operator": {"n": {"$foo": 1}},
    "unknown top-level operator": {"$not": {"n": 1}},
    "two operators in one object": {"n": {"$gt": 1, "$lt": 3}},
    "two fields in one object": {"n": 1, "flag": True},
    "$and of one": {"$and": [{"n": 1}]},
    "$and of a non-list": {"$and": {"n": 1}},
    "null value": {"n": None},
    "list value": {"n": [1, 2]},
    "reserved key": {"_cdbi:vector": "x"},
    "lone surrogate in a value": {"n": "\ud800"},
    "a list, not an object": {"$or": [{"n": 1}, [1]]},
}
BAD_WHERE_DOCUMENT: dict[str, dict[str, Any]] = {
    "regex that does not compile": {"$regex": "(unclosed"},
    "not_regex that does not compile": {"$not_regex": "[z-a]"},
    "look-around (unsupported)": {"$regex": "(?=x)"},
    "regex past the engine's size": {"$regex": "(a{1000}){1000}"},
    "regex too long": {"$regex": "a" * 1_001},
    "lone surrogate": {"$contains": "\ud800"},
    "empty text": {"$contains": ""},
    "a number": {"$contains": 5},
    "unknown operator": {"$startswith": "x"},
    "nested bad regex": {"$and": [{"$contains": "text"}, {"$regex": "("}]},
}
CASES = [
    pytest.param(path, body, field, id=f"{path} {name}")
    for filter_name, bad in (("where", BAD_WHERE), ("where_document", BAD_WHERE_DOCUMENT))
    for name, value in bad.items()
    for path, body, field in bodies(filter_name, value)
]


@pytest.mark.parametrize(("path", "body", "field"), CASES)
def test_a_bad_filter_is_a_422_naming_it_and_changes_nothing(filtered, path, body, field):
    # json.dumps keeps a lone surrogate as the escape "\ud800", as a client's JSON would.
    response = filtered.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] in ("validation_error", "invalid_filter") and error["field"] == field, error
    assert filtered.get("/count/").json()["count"] == len(DOCS)


def test_good_filters_still_work_on_every_route(filtered):
    where = {"$and": [{"n": {"$in": [0, 1, 2]}}, {"$or": [{"flag": True}, {"n": {"$gte": 1}}]}]}
    where_document = {"$or": [{"$regex": "number [0-2]$"}, {"$contains": "nothing"}]}
    for mode in ("semantic", "keyword", "hybrid"):
        body = {"query": "filter text", "mode": mode, "where": where, "where_document": where_document}
        found = filtered.post("/search/", json=body).json()["results"]
        assert {hit["id"] for hit in found} == {"f0", "f1", "f2"}, mode
    listed = filtered.post("/list/", json={"where": where, "where_document": where_document}).json()
    assert [document["id"] for document in listed["documents"]] == ["f0", "f1", "f2"]
    deleted = filtered.post("/delete/", json={"where": {"n": {"$nin": [0, 1, 2]}}}).json()
    assert deleted == {"deleted": 1, "count": 3}


@pytest.mark.parametrize("route", ["/search/", "/list/", "/delete/"])
def test_the_plan_bounds_a_filters_depth_and_values(filtered, route):
    query = {"query": "text"} if route == "/search/" else {}
    deep = filtered.post(route, json={**query, "where": nested(11)})
    assert deep.status_code == 422 and deep.json()["error"] == "plan_limit_exceeded", deep.text
    assert "nests 11 levels deep" in deep.json()["message"] and deep.json()["field"] == "where"
    many = filtered.post(route, json={**query, "where": {"n": {"$in": list(range(100, 1_101))}}})
    assert many.status_code == 422 and "1001 values" in many.json()["message"], many.text
    assert filtered.post(route, json={**query, "where": nested(10)}).status_code == 200
    assert filtered.post(route, json={**query, "where": {"n": {"$in": list(range(100, 1_100))}}}).status_code == 200
    assert filtered.get("/count/").json()["count"] == len(DOCS)  # neither matches a document


def test_a_filter_nested_hundreds_deep_is_refused_without_a_crash(filtered):
    response = filtered.post("/list/", json={"where": nested(300)})
    assert response.status_code == 422 and "nests more than 32 levels" in response.json()["message"]
    text = '{"where": ' + '{"$and": [' * 2_000 + "{}" + "]}" * 2_000 + "}"
    too_deep = filtered.post("/list/", content=text, headers={"Content-Type": "application/json"})
    assert too_deep.status_code == 400 and "nests too deeply" in too_deep.json()["message"], too_deep.text


def test_an_unexpected_fault_is_a_json_500(filtered, monkeypatch):
    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(filtered.app.state.store.store, "count", broken)
    response = TestClient(filtered.app, raise_server_exceptions=False).get("/count/")
    assert response.status_code == 500 and response.json()["error"] == "internal_error", response.text
