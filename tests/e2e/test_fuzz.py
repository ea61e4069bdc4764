"""Hostile input against the real service (real model, real store, API key on): schemathesis generates
valid and invalid requests from the API's OpenAPI document and checks every answer, as the contract
fuzzing does in-process. Every document it manages to store is deleted again afterwards."""

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings

from bench.instance import ServeInstance
from tests.e2e.conftest import E2E_API_KEY, patient_client
from tests.fuzzing import CHECKS, DOCUMENT, schema

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {E2E_API_KEY}"}


def count(client: httpx.Client) -> int:
    body = client.get("/healthz/").json()
    assert isinstance(body["count"], int), body
    return body["count"]


@pytest.fixture(scope="module")
def stored_ids(service: ServeInstance) -> Iterator[set[str]]:
    """The ids of every document the fuzzing stored; deleted again when the module ends, which must
    leave the shared instance with the count it had before."""
    ids: set[str] = set()
    with patient_client(service.url, timeout=60, headers=AUTH) as client:
        assert client.get("/openapi.json").json() == DOCUMENT
        before = count(client)
        yield ids
        remaining = sorted(ids)
        while remaining:
            chunk, remaining = remaining[:100], remaining[100:]
            assert client.post("/delete/", json={"ids": chunk}).status_code == 200
        assert count(client) == before


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_real_service_answers_any_request_as_documented(case, service, stored_ids):
    """Through HTTP, Ray Serve and the real model: whatever the body, each route answers with a
    documented status, content type and body; never a 5xx; a schema-invalid request gets a 4xx."""
    response = case.call(base_url=service.url, headers=AUTH, timeout=60)
    if case.path == "/embed/" and response.status_code == 200:
        stored_ids.update(response.json()["ids"])
    case.validate_response(response, checks=CHECKS, headers=AUTH)
