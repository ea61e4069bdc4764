"""An httpx transport that answers with the in-process app, for the Python client and its CLI."""

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient


class AppTransport(httpx.BaseTransport):
    """Each request a `chromedb_client.Client` makes, answered by the app behind a TestClient;
    `sent` keeps (method, path, JSON body or None) of each."""

    def __init__(self, app: TestClient) -> None:
        self.app = app
        self.sent: list[tuple[str, str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        self.sent.append((request.method.lower(), request.url.path, json.loads(content) if content else None))
        headers = {name: value for name, value in request.headers.items() if name in ("authorization", "x-api-key")}
        if content:
            headers["content-type"] = "application/json"
        answer = self.app.request(request.method, request.url.path, content=content, headers=headers)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)
