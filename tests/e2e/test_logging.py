"""Structured logs: with `logging_config` set to JSON and access logs switched on (both off by
default, see serve_config.yaml), every replica log line is a JSON object, and a request's access
line carries the request id the caller sent and got back in `X-Request-ID`."""

import json
import time

import httpx
import pytest

from bench.instance import ServeInstance
from tests.e2e.conftest import service_logs

pytestmark = pytest.mark.e2e

REQUEST_ID = "trace-7f3a-logging-test"


def test_json_logs_carry_the_request_id_the_caller_sent(open_service: ServeInstance):
    response = httpx.post(
        f"{open_service.url}/search/", json={"query": "anything"}, headers={"X-Request-ID": REQUEST_ID}, timeout=60
    )
    assert response.status_code == 200 and response.headers["X-Request-ID"] == REQUEST_ID
    found: list[str] = []
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        time.sleep(1)
        replica_logs = [p for p in service_logs(open_service.launcher_pids) if "replica_" in p.name]
        lines = [line for path in replica_logs for line in path.read_text(errors="replace").splitlines()]
        found = [line for line in lines if REQUEST_ID in line]
    assert found, "no replica log line carries the request id"
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    assert any(record.get("request_id") == REQUEST_ID for record in records), found[:3]
