"""chromedb_client against the OpenAPI document the app serves, so that the two cannot drift: every
body the Client sends fits the served request schema (its field names, their JSON types) and uses all
of it; every dataclass it answers with (Document, Hit, EmbedResult, Page) has exactly the fields of the
served response schema, with types that take whatever that schema allows. The Client runs against the
in-process app meanwhile, so a route or field that moved fails there too."""

import dataclasses
import types
from collections.abc import Callable, Iterable
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from fastapi.testclient import TestClient

from chromedb_client import Client, Document, EmbedResult, Hit, Page
from chromedb_client.client import Include, Mode
from tests.contract.app_transport import AppTransport

Schema = dict[str, Any]


Sent = list[tuple[str, str, Any]]


def use_every_route(app: TestClient) -> tuple[Sent, list[str]]:
    """Every Client method, each optional field given once, against the app: the requests it sent,
    and what went wrong (kept, not raised, so that the comparisons below still see every request)."""
    transport = AppTransport(app)
    db = Client("http://testserver", transport=transport, retries=0)
    vector = [1.0] + [0.0] * (app.get("/healthz/").json()["dimension"] - 1)
    documents: list[dict[str, Any]] = [
        {"id": "a", "text": "The cat sat on the mat.", "metadata": {"page": 3}, "embedding": vector},
        {"id": "b", "text": "Quarterly revenue grew by 12 percent."},
    ]
    include: tuple[Include, ...] = ("text", "metadata", "embedding")
    cat: dict[str, Any] = {"where": {"page": 3}, "where_document": {"$contains": "cat"}}

    def ids(found: Iterable[Document | Hit]) -> list[str]:
        return [item.id for item in found]

    # Each call, and whether its answer is the one expected.
    calls: dict[str, Callable[[], bool]] = {
        "embed": lambda: db.embed(documents, chunking=True).ids == ["a", "b"],
        "health": lambda: db.health()["limits"]["max_docs_per_request"] > 0,
        "search": lambda: ids(db.search("cat", **cat, mode="hybrid")) == ["a"],
        "search by vector": lambda: len(db.search(vector=vector, top_k=1)) == 1,
        "search, hybrid_weight": lambda: len(db.search("revenue", mode="hybrid", hybrid_weight=0.3)) == 2,
        "search_batch": lambda: (
            [len(hits) for hits in db.search_batch([{"query": "cat", "top_k": 1}, {"query": "x"}])] == [1, 2]
        ),
        "get": lambda: ids(db.get(["a", "zzz"], include=include)) == ["a"],
        "list": lambda: ids(db.list(1, 0, **cat, include=include).documents) == ["a"],
        "update": lambda: db.update([{"id": "a", "metadata": {"page": 4}}]) == 1,
        "count": lambda: db.count() == (2, 20),
        "delete": lambda: db.delete(["b"]) == 1,
        "delete by filter": lambda: db.delete(where={"page": 4}, where_document={"$contains": "cat"}) == 1,
    }
    failures = []
    with db:
        for name, call in calls.items():
            try:
                if not call():
                    failures.append(f"{name}: not the answer expected")
            except Exception as exc:  # each failure reported by its call, the others still made
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    return transport.sent, failures


@pytest.fixture
def served(client: TestClient) -> tuple[Schema, Sent, list[str]]:
    document: Schema = client.get("/openapi.json").json()
    return document, *use_every_route(client)


def test_the_client_calls_every_route_of_the_app_and_reads_its_answers(served):
    _, _, failures = served
    assert not failures, "\n".join(failures)


def resolve(schema: Schema, document: Schema) -> Schema:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = document["components"]["schemas"][name]
    return schema


def branches(schema: Schema, document: Schema) -> list[Schema]:
    """The alternatives of a schema (anyOf/oneOf), each resolved; the schema alone if it has none."""
    schema = resolve(schema, document)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives is None:
        return [schema]
    return [branch for alternative in alternatives for branch in branches(alternative, document)]


def json_type(value: object) -> str:
    if value is None:
        return "null"
    for python, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, python):
            return name
    return "array" if isinstance(value, list) else "object"


def misfits(value: object, schema: Schema, document: Schema, where: str) -> list[str]:
    """Why a JSON value sent does not fit the schema (a field it does not have, a wrong type); [] when it fits."""
    attempts = [branch_misfits(value, branch, document, where) for branch in branches(schema, document)]
    return [] if not all(attempts) else min(attempts, key=len)


def branch_misfits(value: object, branch: Schema, document: Schema, where: str) -> list[str]:
    expected, sent = branch.get("type"), json_type(value)
    if expected is None:  # any JSON: inside a filter
        return []
    if sent != expected and not (sent == "integer" and expected == "number"):
        return [f"{where}: sent {sent}, the schema takes {expected}"]
    if "enum" in branch and value not in branch["enum"]:
        return [f"{where}: sent {value!r}, the schema takes one of {branch['enum']}"]
    problems = []
    if isinstance(value, dict):
        properties = branch.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += misfits(item, properties[key], document, f"{where}.{key}")
            elif branch.get("additionalProperties", True) is False:
                problems.append(f"{where}.{key}: not a field of the schema (it has {sorted(properties)})")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += misfits(item, branch.get("items", {}), document, f"{where}.{index}")
    return problems


def operation(document: Schema, method: str, path: str) -> Schema:
    assert path in document["paths"] and method in document["paths"][path], f"{method} {path} is not served"
    found: Schema = document["paths"][path][method]
    return found


def request_schema(document: Schema, method: str, path: str) -> Schema:
    schema: Schema = operation(document, method, path)["requestBody"]["content"]["application/json"]["schema"]
    return resolve(schema, document)


def response_schema(document: Schema, method: str, path: str) -> Schema:
    schema: Schema = operation(document, method, path)["responses"]["200"]["content"]["application/json"]["schema"]
    return resolve(schema, document)


# --- what the Client sends ---------------------------------------------------------------------------

CLIENT_ROUTES = {
    ("post", "/embed/"),
    ("post", "/search/"),
    ("post", "/search/batch/"),
    ("post", "/get/"),
    ("post", "/list/"),
    ("post", "/update/"),
    ("post", "/delete/"),
    ("get", "/count/"),
    ("get", "/healthz/"),
}


def test_every_body_the_client_sends_fits_the_served_request_schema(served):
    document, sent, _ = served
    assert {(method, path) for method, path, _ in sent} == CLIENT_ROUTES
    problems = [
        problem
        for method, path, body in sent
        if body is not None
        for problem in misfits(body, request_schema(document, method, path), document, f"{method} {path}")
    ]
    assert not problems, "\n".join(problems)


def test_the_client_sends_every_field_the_routes_take(served):
    """A field the service takes that the Client never sends is an option the Client lacks."""
    document, sent, _ = served
    for method, path in CLIENT_ROUTES:
        bodies = [body for sent_method, sent_path, body in sent if (sent_method, sent_path) == (method, path)]
        if bodies == [None]:  # a GET
            assert "requestBody" not in operation(document, method, path)
            continue
        fields = {key for body in bodies for key in body}
        assert fields == set(request_schema(document, method, path)["properties"]), f"{method} {path}"


def test_the_clients_modes_and_includes_are_the_served_ones(served):
    document, _, _ = served
    modes = resolve(request_schema(document, "post", "/search/")["properties"]["mode"], document)
    assert set(get_args(Mode)) == set(modes["enum"])
    includes = request_schema(document, "post", "/get/")["properties"]["include"]["items"]
    assert set(get_args(Include)) == set(resolve(includes, document)["enum"])


def test_a_jsonl_line_is_a_document_the_embed_route_takes(served):
    """The CLI exports Document's fields and imports each line into POST /embed/ as it is."""
    document, _, _ = served
    item = request_schema(document, "post", "/embed/")["properties"]["documents"]["items"]
    fields = set(resolve(item, document)["properties"])
    assert fields == {field.name for field in dataclasses.fields(Document)}


# --- what the Client reads ---------------------------------------------------------------------------

# The answers whose fields the Client reads as dict keys rather than into a dataclass.
READ_KEYS = {
    ("post", "/update/"): {"updated"},
    ("post", "/delete/"): {"deleted"},
    ("get", "/count/"): {"count", "quota"},
    ("get", "/healthz/"): {"limits", "dimension"},  # the CLI sizes its batches by limits.max_docs_per_request
}


def union_members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (X | None), or the annotation alone."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


JSON_TYPES = {str: {"string"}, int: {"integer"}, float: {"number", "integer"}, bool: {"boolean"}, type(None): {"null"}}


def unreadable(annotation: Any, schema: Schema, document: Schema, where: str) -> list[str]:
    """Why a value the schema lets the service send might not read into `annotation`; [] when every one does."""
    problems: list[str] = []
    for branch in branches(schema, document):
        attempts = [member_misfits(member, branch, document, where) for member in union_members(annotation)]
        if all(attempts):  # no member of the annotation takes this branch
            fewest = min(attempts, key=len)
            problems += fewest
    return problems


def member_misfits(member: Any, branch: Schema, document: Schema, where: str) -> list[str]:
    sent, origin = branch.get("type"), get_origin(member) or member
    if member is Any:
        return []
    if dataclasses.is_dataclass(member) and sent == "object":
        return shape_mismatch(member, branch, document, where)
    if origin is list and sent == "array":
        (item,) = get_args(member) or (Any,)
        return unreadable(item, branch.get("items", {}), document, f"{where}[]")
    if origin is dict and sent == "object":
        _, value = get_args(member) or (str, Any)
        extra = branch.get("additionalProperties", {})
        return unreadable(value, extra if isinstance(extra, dict) else {}, document, f"{where}{{}}")
    if sent in JSON_TYPES.get(member, set()):
        return []
    return [
        f"{where}: the service may send {sent or 'any JSON'}, the client reads {getattr(member, '__name__', member)}"
    ]


def shape_mismatch(cls: Any, schema: Schema, document: Schema, where: str) -> list[str]:
    """A dataclass against an object schema: the same field names (the Client builds it with
    `cls(**answer)`, so an unknown field breaks it as surely as a missing one), each one's type."""
    fields = {field.name for field in dataclasses.fields(cls)}
    properties = schema.get("properties", {})
    problems = []
    if fields != set(properties):
        problems.append(f"{where}: {cls.__name__} has {sorted(fields)}, the served schema {sorted(properties)}")
    hints = get_type_hints(cls)
    for name in sorted(fields & set(properties)):
        problems += unreadable(hints[name], properties[name], document, f"{where}.{name}")
    return problems


def item_schema(document: Schema, schema: Schema, *path: str) -> Schema:
    """Follow properties (by name) and array items ("[]") down from a response schema."""
    for step in path:
        schema = resolve(schema, document)
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return resolve(schema, document)


def test_each_dataclass_has_the_fields_and_types_of_its_served_schema(served):
    document, _, _ = served
    search = response_schema(document, "post", "/search/")
    batch = response_schema(document, "post", "/search/batch/")
    answers = {
        "EmbedResult from POST /embed/": (EmbedResult, response_schema(document, "post", "/embed/")),
        "Hit from POST /search/": (Hit, item_schema(document, search, "results", "[]")),
        "Hit from POST /search/batch/": (Hit, item_schema(document, batch, "results", "[]", "results", "[]")),
        "Document from POST /get/": (
            Document,
            item_schema(document, response_schema(document, "post", "/get/"), "documents", "[]"),
        ),
        "Page from POST /list/": (Page, response_schema(document, "post", "/list/")),
    }
    problems = [
        problem for where, (cls, schema) in answers.items() for problem in shape_mismatch(cls, schema, document, where)
    ]
    assert not problems, "\n".join(problems)


def test_the_keys_the_client_reads_are_in_the_served_answers(served):
    document, _, _ = served
    for (method, path), keys in READ_KEYS.items():
        properties = response_schema(document, method, path)["properties"]
        assert keys <= set(properties), f"{method} {path}: {sorted(keys - set(properties))} not served"
    limits = item_schema(document, response_schema(document, "get", "/healthz/"), "limits")
    assert limits["properties"]["max_docs_per_request"]["type"] == "integer"
