"""The console's static files as the Ingress serves them: open without the key, strict headers,
nothing but the console's own folder. The page itself is tested in a browser (tests/e2e/test_console.py)."""

import re

import pytest

from deployments.api.console import CONSOLE_DIR, SECURITY_HEADERS

API_KEY = "contract-key-0123456789abcdef"


@pytest.fixture
def keyed(make_client):
    return make_client(api_key=API_KEY)


def test_the_page_and_its_files_need_no_key_and_carry_the_security_headers(keyed):
    page = keyed.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    # Every file the page loads is served, each with the same headers.
    for path in re.findall(r'(?:src|href)="([^":]+)"', page.text):
        asset = keyed.get(f"/console/{path}")
        assert asset.status_code == 200, path
        assert asset.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert keyed.get("/console/console.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/", "/console"])
def test_the_instance_url_redirects_to_the_console(keyed, path):
    response = keyed.get(path, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/console/"


@pytest.mark.parametrize(
    "path", ["/console/nothing.js", "/console/%2e%2e/app.py", "/console/..%2fdeployments/core/config.py", "/console/.."]
)
def test_only_the_console_folder_is_served(keyed, path):
    response = keyed.get(path, follow_redirects=False)
    assert response.status_code in (404, 307), response.text
    if response.status_code == 404:
        assert response.json()["error"] == "not_found"
    else:  # "/console/.." is "/console" to the router: the redirect back to the page
        assert response.headers["location"] == "/console/"


def test_writing_to_the_console_path_still_needs_the_key(keyed):
    response = keyed.post("/console/", json={})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_the_rest_of_the_api_still_needs_the_key(keyed):
    assert keyed.get("/count/").status_code == 401
    assert keyed.get("/consoles/").status_code == 401  # a prefix is not the console


def test_the_console_folder_holds_only_web_page_files():
    # It is served to anyone: nothing else (a config, a key, a note) may land in it.
    files = list(CONSOLE_DIR.rglob("*"))
    assert {"index.html", "console.js", "console.css"} <= {path.name for path in files}
    assert {path.suffix for path in files} <= {".html", ".js", ".css", ".svg", ".png"}
