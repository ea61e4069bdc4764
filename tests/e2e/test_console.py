"""The console at /console/ in a real headless Chromium (Debian's, driven by Playwright) against the
shared `serve run` (API key set, quota 60): load, key, add, search, delete, quota refusal, a wrong
key, the keyboard alone and a phone-sized screen. Screenshots go to test-artifacts/console/.

`make browser` (part of `make test`) installs Chromium; where it cannot be installed these tests
skip and say so, except under CI (REQUIRE_BROWSER=1), where a missing browser fails them."""

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.instance import REPO, ServeInstance
from tests.e2e.conftest import E2E_API_KEY, E2E_QUOTA, E2E_TENANT

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS", REPO / "test-artifacts" / "console"))
# As root Chromium needs --no-sandbox (Playwright adds it); the rest keep a closed network quiet.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # the first embedding of a run may wait for a cold replica

NOTES: dict[str, Any] = {
    "id": "console-cat",
    "text": "The cat sat on the mat by the fire.",
    "metadata": {"source": "notes", "page": 3},
}
LINES: list[dict[str, Any]] = [
    {"id": "console-revenue", "text": "Quarterly revenue grew by 12 percent.", "metadata": {"source": "report"}},
    {"id": "console-rain", "text": "Heavy rain is expected over the hills.", "metadata": {"source": "news"}},
    # Stored text that looks like markup must be shown as text, never run.
    {"id": "console-markup", "text": "<img src=x onerror=\"document.title='pwned'\"> markup in a stored text"},
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        reason = "no Chromium on this machine: `make browser` installs Debian's chromium (it needs root or sudo)"
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def console(browser: Browser, url: str, tenant: str, screenshot: str) -> Iterator[Page]:
    """A fresh browser context (nothing remembered) on the console at `url`; a screenshot when the
    test ends, failed or not; no script error allowed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(url)  # the instance's bare URL redirects to the console
    expect(opened.locator("#tenant")).to_have_text(tenant)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=ARTIFACTS / f"{screenshot}.png", full_page=True)
        context.close()
    assert not errors, errors


@pytest.fixture
def page(browser: Browser, service: ServeInstance, request: pytest.FixtureRequest) -> Iterator[Page]:
    with console(browser, service.url, E2E_TENANT, request.node.name) as opened:
        yield opened


@pytest.fixture(autouse=True)
def leave_the_store_empty(api: httpx.Client) -> Iterator[None]:
    yield
    listed = api.post("/list/", json={"limit": 256}).json()["documents"]
    if listed:
        assert api.post("/delete/", json={"ids": [doc["id"] for doc in listed]}).json()["count"] == 0


def give_key(page: Page, key: str = E2E_API_KEY) -> None:
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")


def search(page: Page, query: str, mode: str = "semantic", where: str = "") -> None:
    page.fill("#search-query", query)
    page.select_option("#search-mode", mode)
    page.fill("#search-where", where)
    page.click("#search-form button[type=submit]")


def as_shown(error: dict[str, str | None]) -> str:
    """An API error as the console shows it: its name, its message word for word, its field."""
    return f"{error['error']} {error['message']}" + (f" (field: {error['field']})" if error.get("field") else "")


def result_ids(page: Page) -> list[str]:
    return page.locator("#results > li[data-id]").evaluate_all("items => items.map(item => item.dataset.id)")


def test_the_console_shows_the_instance(page: Page, service: ServeInstance) -> None:
    assert page.url == f"{service.url}/console/"
    health = httpx.get(f"{service.url}/healthz/").json()
    expect(page.locator("#plan")).to_have_text("starter")
    expect(page.locator("#model")).to_have_text(f"{health['model_name']} ({health['dimension']} dimensions)")
    expect(page.locator("#count")).to_have_text("0")
    expect(page.locator("#quota-text")).to_have_text(f"0 of {E2E_QUOTA} documents (0.0 %)")
    expect(page.locator("#auth")).to_have_text("API key required")
    expect(page.locator("#deployments li")).to_have_text(
        [f"{name}: {state['status']}" for name, state in health["deployments"].items()]
    )
    expect(page.locator("#instance-status")).to_have_text("all deployments up")
    expect(page.locator("#key-panel")).to_be_visible()  # the instance has a key: the page asks for it


def test_add_search_and_delete(page: Page, api: httpx.Client) -> None:
    give_key(page)
    expect(page.locator("#key-feedback")).to_have_text("Key accepted; kept in this page's memory only.")

    page.fill("#add-id", NOTES["id"])
    page.fill("#add-text", NOTES["text"])
    page.fill("#add-metadata", json.dumps(NOTES["metadata"]))
    page.click("#add-form button[type=submit]")
    expect(page.locator("#add-feedback")).to_have_text(f"Stored {NOTES['id']}: 1 document in all.", timeout=WAIT_MS)

    page.fill("#import-lines", "\n".join(json.dumps(line) for line in LINES) + "\n\n")
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-feedback")).to_have_text("Stored 3 documents: 4 in all.", timeout=WAIT_MS)
    expect(page.locator("#count")).to_have_text("4")
    expect(page.locator("#quota-text")).to_have_text(f"4 of {E2E_QUOTA} documents ({400 / E2E_QUOTA:.1f} %)")
    assert api.get("/count/").json()["count"] == 4  # really stored, not just shown

    search(page, "a cat sitting on a rug")
    expect(page.locator("#search-feedback")).to_have_text("4 results (semantic).")
    assert result_ids(page)[0] == NOTES["id"]
    best = page.locator("#results > li").first
    expect(best.locator(".metadata li")).to_have_text(["page: 3", 'source: "notes"'])
    expect(best.locator(".score")).to_contain_text("score 0.")

    # The markup stays text: no element was made of it and its script never ran.
    search(page, "markup in a stored text", mode="keyword")
    expect(page.locator("#results > li").first.locator(".text")).to_have_text(LINES[2]["text"])
    assert page.locator("#results img").count() == 0
    assert page.title() != "pwned"

    search(page, "revenue and rain", mode="hybrid", where='{"source": "news"}')
    expect(page.locator("#search-feedback")).to_have_text("1 result (hybrid).")
    assert result_ids(page) == ["console-rain"]

    # Delete takes two presses; the result, the count and the stored document go.
    search(page, "a cat sitting on a rug")
    delete = page.get_by_role("button", name=f"Delete {NOTES['id']}")
    delete.click()
    expect(page.locator("#search-feedback")).to_have_text(f"Press the button again to delete {NOTES['id']}.")
    assert api.get(f"/documents/{NOTES['id']}").status_code == 200
    delete.click()
    expect(page.locator("#search-feedback")).to_have_text(f"Deleted {NOTES['id']}: 3 documents left.")
    assert NOTES["id"] not in result_ids(page)
    expect(page.locator("#count")).to_have_text("3")
    assert api.get(f"/documents/{NOTES['id']}").status_code == 404


def test_api_errors_are_shown_as_the_api_words_them(page: Page, api: httpx.Client) -> None:
    give_key(page)
    expect(page.locator("#key-feedback")).to_contain_text("Key accepted")
    bad_filter = {"page": {"$around": 3}}
    expected = api.post("/search/", json={"query": "anything", "where": bad_filter}).json()
    search(page, "anything", where=json.dumps(bad_filter))
    feedback = page.locator("#search-feedback")
    expect(feedback).to_have_text(as_shown(expected))
    expect(feedback).to_have_attribute("role", "alert")

    # What the page checks itself is said plainly too, and nothing is sent.
    search(page, "anything", where="{not json")
    expect(feedback).to_contain_text("The metadata filter is not valid JSON")
    page.fill("#import-lines", '{"text": "fine"}\n[1, 2]')
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-feedback")).to_have_text('Line 2 must be a JSON object, like {"text": "…"}')

    # A paste is one request: past the plan's documents per request it is refused whole.
    limit = api.get("/healthz/").json()["limits"]["max_docs_per_request"]
    expect(page.locator("#import-limit")).to_have_text(str(limit))
    too_many = [{"text": f"line {n}"} for n in range(limit + 1)]
    expected = api.post("/embed/", json={"documents": too_many}).json()
    page.fill("#import-lines", "\n".join(json.dumps(doc) for doc in too_many))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-feedback")).to_have_text(as_shown(expected))
    assert api.get("/count/").json()["count"] == 0


def test_a_refusal_for_quota_is_shown_and_nothing_is_stored(page: Page, api: httpx.Client) -> None:
    filler = [{"id": f"console-fill-{n}", "text": f"filler document {n}"} for n in range(E2E_QUOTA - 1)]
    assert api.post("/embed/", json={"documents": filler}).json()["count"] == E2E_QUOTA - 1
    over = [{"id": "console-over-1", "text": "one too many"}, {"id": "console-over-2", "text": "two too many"}]
    expected = api.post("/embed/", json={"documents": over}).json()  # the refusal, as the API words it
    assert expected["error"] == "quota_exceeded"

    give_key(page)
    page.click("#refresh")
    expect(page.locator("#quota-text")).to_have_text(f"{E2E_QUOTA - 1} of {E2E_QUOTA} documents (98.3 %)")
    page.fill("#import-lines", "\n".join(json.dumps(doc) for doc in over))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-feedback")).to_have_text(as_shown(expected), timeout=WAIT_MS)
    expect(page.locator("#import-lines")).to_have_value("\n".join(json.dumps(doc) for doc in over))  # kept to fix
    assert api.get("/count/").json()["count"] == E2E_QUOTA - 1
    assert page.locator("#quota-bar").evaluate("bar => bar.value") == pytest.approx((E2E_QUOTA - 1) / E2E_QUOTA)


def test_a_wrong_or_missing_key_is_refused_and_the_key_stays_in_memory(page: Page) -> None:
    # No key yet: the API's own 401 message, and the key form is shown.
    search(page, "anything")
    expect(page.locator("#search-feedback")).to_contain_text("unauthorized missing API key")

    give_key(page, "not-the-key-0123456789")
    expect(page.locator("#key-feedback")).to_have_text(
        "unauthorized the API key is not valid for this instance (field: Authorization)"
    )
    search(page, "anything")
    expect(page.locator("#search-feedback")).to_contain_text("missing API key")  # a refused key is not kept

    give_key(page)
    expect(page.locator("#key-feedback")).to_contain_text("Key accepted")
    search(page, "anything")
    expect(page.locator("#search-feedback")).to_have_text("0 results (semantic).")
    stored = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert E2E_API_KEY not in page.url and page.locator("#api-key").input_value() == ""

    page.reload()  # the key was in the page's memory only
    expect(page.locator("#tenant")).to_have_text(E2E_TENANT)
    search(page, "anything")
    expect(page.locator("#search-feedback")).to_contain_text("missing API key")


def focus_by_tab(page: Page, selector: str, most: int = 40) -> None:
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_keyboard_only_on_a_phone_sized_screen(page: Page, api: httpx.Client) -> None:
    assert api.post("/embed/", json={"documents": [NOTES]}).status_code == 200
    page.set_viewport_size({"width": 375, "height": 740})
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    focus_by_tab(page, "#api-key")
    page.keyboard.type(E2E_API_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#key-feedback")).to_contain_text("Key accepted")

    focus_by_tab(page, "#search-query")
    page.keyboard.type("cat on a mat")
    page.keyboard.press("Enter")
    expect(page.locator("#search-feedback")).to_have_text("1 result (semantic).")
    focus_by_tab(page, f"#results button[aria-label='Delete {NOTES['id']}']")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#search-feedback")).to_have_text(f"Deleted {NOTES['id']}: 0 documents left.")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert api.get("/count/").json()["count"] == 0


# Each sentence on its own subject, so that only the last one answers the query below.
FILLER = [
    "The committee approved the new budget after a long debate about school funding.",
    "Fresh basil and ripe tomatoes make a simple summer pasta sauce.",
    "The train to the coast was delayed by signal failures near the junction.",
    "Her thesis compared medieval trade routes across the northern seas.",
    "A firmware update fixed the printer's habit of jamming on thick paper.",
    "The orchestra rehearsed the second movement until the strings were in time.",
]
LIGHTHOUSE = "Every spring the lighthouse keeper painted the tower in red and white stripes."


def test_an_open_instance_asks_for_no_key_and_marks_the_chunk_that_matched(
    browser: Browser, open_service: ServeInstance
) -> None:
    with console(browser, open_service.url, "open", "open-instance-chunking") as page:
        expect(page.locator("#auth")).to_have_text("open (no API key set)")
        expect(page.locator("#key-panel")).to_be_hidden()

        # Past the model's window (256 word pieces): stored whole, found by its last sentence.
        long_text = " ".join(FILLER * 4 + [LIGHTHOUSE])
        page.fill("#add-id", "long-document")
        page.fill("#add-text", long_text)
        page.check("#add-chunking")
        page.click("#add-form button[type=submit]")
        stored = "Stored long-document: 1 document in all."
        expect(page.locator("#add-feedback")).to_have_text(stored, timeout=WAIT_MS)

        search(page, "who painted the lighthouse tower")
        expect(page.locator("#search-feedback")).to_have_text("1 result (semantic).")
        text = page.locator("#results > li .text")
        expect(text).to_have_text(long_text)  # the whole document, the chunk marked inside it
        marked = page.locator("#results > li .text mark").inner_text()
        assert LIGHTHOUSE in marked and marked in long_text and not long_text.startswith(marked)
        # The marked chunk is scrolled into view within the result's text box.
        assert text.evaluate("box => box.scrollTop > 0 && box.scrollHeight > box.clientHeight")
