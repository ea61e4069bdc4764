"""The service end to end under a real `serve run`: real model, real chromadb on disk.

Each test removes what it adds, so the shared instance's count is back to zero between tests."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from bench.instance import session_processes
from tests.e2e.conftest import E2E_API_KEY, E2E_QUOTA, E2E_TENANT
from tests.fuzzing import DOCUMENT

pytestmark = pytest.mark.e2e

CORPUS = {
    "pets": "My cat loves to sleep curled up on the warm windowsill in the afternoon sun.",
    "finance": "The central bank raised interest rates by half a percentage point to fight inflation.",
    "space": "The rocket launched the satellite into orbit around the Earth early this morning.",
    "cooking": "Simmer the tomatoes with garlic and basil for twenty minutes to make the sauce.",
    "football": "The striker scored twice in the second half and the team won the championship.",
    "health": "Regular exercise and enough sleep lower the risk of heart disease.",
    "music": "The orchestra performed Beethoven's ninth symphony to a sold-out concert hall.",
    "gardening": "Water the tomato seedlings every morning and keep them out of the frost.",
}
QUERIES = {
    "a kitty napping in the sunshine by the window": "pets",
    "monetary policy tightening to curb rising prices": "finance",
    "spacecraft sent into orbit": "space",
    "how do I make pasta sauce": "cooking",
    "who won the soccer final": "football",
    "ways to keep your heart healthy": "health",
    "classical music performance": "music",
}


def count(api) -> int:
    return api.get("/healthz/").json()["count"]


@pytest.fixture
def corpus(api):
    documents = [
        {
            "id": key,
            "text": text,
            "metadata": {"topic": key, "length": len(text), "science": key in ("space", "health")},
        }
        for key, text in CORPUS.items()
    ]
    response = api.post("/embed/", json={"documents": documents})
    assert response.status_code == 200, response.text
    yield
    api.post("/delete/", json={"ids": list(CORPUS)})


def search(api, query, **options):
    response = api.post("/search/", json={"query": query, **options})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_healthz_reports_config_and_every_deployment(api):
    response = api.get("/healthz/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["tenant_id"], body["plan"], body["model_name"], body["dimension"], body["quota"]) == (
        E2E_TENANT,
        "starter",
        "all-MiniLM-L6-v2",
        384,
        E2E_QUOTA,
    )
    assert {name: state["status"] for name, state in body["deployments"].items()} == {
        "Ingress": "ok",
        "Embedder": "ok",
        "ChromaStore": "ok",
    }
    assert body["deployments"]["Embedder"]["detail"]["dimension"] == 384
    assert body["auth"] == "api_key" and E2E_API_KEY not in response.text


def test_without_the_api_key_every_other_route_is_refused(service):
    for path in ("/embed/", "/search/", "/delete/"):
        response = httpx.post(f"{service.url}{path}", json={"ids": ["x"]}, timeout=30)
        assert response.status_code == 401, path
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(f"{service.url}/search/", json={"query": "x"}, headers={"X-API-Key": "nope"}, timeout=30)
    assert wrong.status_code == 401


def test_every_answer_carries_a_request_id_to_quote_in_support(api, service):
    """Serve's own request ids: the caller's X-Request-ID is echoed (trace across systems); without
    one, each answer gets a fresh id. Refusals carry it too."""
    given = api.post("/search/", json={"query": "x"}, headers={"X-Request-ID": "trace-e2e-1"})
    assert given.status_code == 200 and given.headers["x-request-id"] == "trace-e2e-1"
    refused = httpx.post(f"{service.url}/search/", json={}, headers={"X-Request-ID": "trace-e2e-2"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "trace-e2e-2"
    generated = {api.get("/healthz/").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(len(request_id) >= 16 for request_id in generated)


def test_documents_are_read_back_by_id_and_counted(api, corpus):
    body = api.post("/get/", json={"ids": ["space", "nope", "pets"], "include": ["text", "embedding"]}).json()
    assert [d["id"] for d in body["documents"]] == ["space", "pets"] and body["missing"] == ["nope"]
    assert body["documents"][0]["text"] == CORPUS["space"] and len(body["documents"][0]["embedding"]) == 384
    one = api.get("/documents/finance").json()
    assert one["text"] == CORPUS["finance"] and one["metadata"]["topic"] == "finance"
    assert api.get("/documents/nope").status_code == 404
    assert api.get("/count/").json() == {"count": len(CORPUS), "quota": E2E_QUOTA}


def test_search_finds_the_document_that_means_the_same(api, corpus):
    for query, expected in QUERIES.items():
        results = search(api, query, top_k=3)
        assert results[0]["id"] == expected, (query, results)
        assert results[0]["score"] > results[1]["score"]
        assert -1.0 <= results[-1]["score"] <= results[0]["score"] <= 1.0
    best = search(api, CORPUS["music"], top_k=1)[0]
    assert best["id"] == "music" and best["score"] == pytest.approx(1.0, abs=1e-4)
    assert best["text"] == CORPUS["music"] and best["metadata"]["topic"] == "music"


def test_keyword_and_hybrid_modes(api, corpus):
    """keyword finds words (stemmed) the query shares, not meanings; hybrid finds both kinds."""
    assert [hit["id"] for hit in search(api, "tomato seedlings frost", mode="keyword")][:1] == ["gardening"]
    assert search(api, "kitty napping", mode="keyword") == []  # no word in common with any document
    assert [hit["id"] for hit in search(api, "a kitty napping in the sunshine", mode="hybrid")][:1] == ["pets"]
    scored = search(api, "tomatoes", mode="keyword", where={"science": False})
    assert {hit["id"] for hit in scored} == {"cooking", "gardening"} and all(hit["score"] > 0 for hit in scored)
    fused = search(api, "tomatoes", mode="hybrid", top_k=8)
    assert {hit["id"] for hit in fused[:2]} == {"cooking", "gardening"}
    assert all(0.0 <= hit["score"] <= 1.0 for hit in fused)


def test_the_data_api_lists_updates_deletes_by_filter_and_batches(api, corpus):
    """The routes beyond add/search/delete, under serve run with the real model."""
    pages = [api.post("/list/", json={"limit": 5, "offset": offset}).json() for offset in (0, 5)]
    assert [d["id"] for page in pages for d in page["documents"]] == list(CORPUS)
    assert [page["next_offset"] for page in pages] == [5, None]

    vector = api.post("/get/", json={"ids": ["music"], "include": ["embedding"]}).json()["documents"][0]["embedding"]
    by_vector = api.post("/search/", json={"vector": vector, "top_k": 1}).json()["results"]
    assert by_vector[0]["id"] == "music"

    assert api.post("/update/", json={"documents": [{"id": "music", "metadata": {"topic": "art"}}]}).json() == {
        "updated": 1
    }
    kept = api.post("/get/", json={"ids": ["music"], "include": ["embedding"]}).json()["documents"][0]
    assert kept["embedding"] == vector  # metadata changed, vector kept
    searches = [{"query": "classical music", "where": {"topic": "art"}}, {"query": "tomatoes", "mode": "keyword"}]
    batch = api.post("/search/batch/", json={"searches": searches}).json()["results"]
    assert [hit["id"] for hit in batch[0]["results"]] == ["music"]
    assert {hit["id"] for hit in batch[1]["results"]} == {"cooking", "gardening"}

    contains = search(api, "food", where_document={"$contains": "tomato"}, top_k=8)
    assert {hit["id"] for hit in contains} == {"cooking", "gardening"}
    deleted = api.post("/delete/", json={"where": {"science": True}}).json()
    assert deleted == {"deleted": 2, "count": len(CORPUS) - 2}
    assert search(api, "heart disease exercise", mode="keyword", where={"topic": "health"}) == []


def test_chunking_finds_a_long_document_by_its_end(api):
    """Past the model's window (256 word pieces) a text is invisible to search unless chunked."""
    opening = " ".join(CORPUS["gardening"] for _ in range(20))  # about 300 words on tomatoes and frost
    ending = "Volcanic eruptions release sulphur dioxide that cools the planet for years afterwards."
    long_text = f"{opening} {ending}"
    documents = [{"id": "long-chunked", "text": long_text}, {"id": "long-plain", "text": long_text + " "}]
    chunked = api.post("/embed/", json={"documents": documents[:1], "chunking": True}).json()
    plain = api.post("/embed/", json={"documents": documents[1:]}).json()
    try:
        assert chunked["chunks"]["long-chunked"] >= 2 and plain["truncated"] == ["long-plain"]
        hits = search(api, "volcanoes emit sulfur gases that cool the climate", top_k=2)
        assert hits[0]["id"] == "long-chunked" and hits[0]["text"] == long_text
        start, end = hits[0]["span"]
        assert ending in long_text[start:end]
        assert len(hits) < 2 or hits[1]["score"] < hits[0]["score"] - 0.2
        assert count(api) == 2
    finally:
        api.post("/delete/", json={"ids": ["long-chunked", "long-plain"]})


def test_metrics_export_ray_serve_and_the_service_own_on_the_api_port(api, service, corpus):
    """GET /metrics/ passes on Ray's metrics agent's export: Serve's metrics and ours (`ray_cdbi_*`).
    Ray exports every few seconds, so the test waits for our series to appear. `corpus` makes the
    events the series count (a model run, stored documents, a read of a non-empty store), so the
    test does not depend on the tests before it (alone it failed)."""
    assert httpx.get(f"{service.url}/metrics/", timeout=10).status_code == 401  # behind the key, like data
    api.post("/search/", json={"query": ""})  # a refusal to count
    api.post("/search/", json={"query": "anything"})
    wanted = {  # a series: its name, and a label it must carry
        ("ray_cdbi_documents", ""),
        ("ray_cdbi_quota_used_ratio", ""),
        ("ray_cdbi_rejected_requests_total", 'reason="validation_error"'),
        ("ray_cdbi_request_seconds_bucket", 'route="/search/"'),
        ("ray_cdbi_embed_batch_texts_bucket", ""),
        ("ray_cdbi_store_reads_total", 'path="channel"'),  # the store's read channel is in use
    }
    deadline = time.monotonic() + 60
    while True:
        response = api.get("/metrics/")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        lines = response.text.splitlines()
        missing = [
            (name, label)
            for name, label in wanted
            if not any(line.startswith(name + "{") and label in line for line in lines)
        ]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, missing
    assert "ray_serve_" in response.text


def test_the_instance_runs_none_of_rays_unused_head_processes(service):
    """The launcher's Ray starts no autoscaler monitor and no API server (deployments.launch:
    about 135 MB); what the service uses stays: the metrics agent (the test above) and the log
    monitor, which brings the replicas' logs to the container's output (test_logging.py)."""
    commands = [command for _, command in session_processes(service.process.pid)]
    assert any("log_monitor.py" in command for command in commands), commands  # the check sees Ray's processes
    assert not [command for command in commands if "autoscaler/_private/monitor.py" in command]
    assert not [command for command in commands if "dashboard/dashboard.py" in command]


def test_an_idle_instance_gives_back_the_memory_its_model_runs_used(api, service):
    """Each replica trims its heap once it is quiet (deployments.runtime.heap): what the Embedder's
    runs of long texts left free goes back to the OS within a look or two (5 s each), instead of
    staying with the process for its life."""
    embedder = next(
        psutil.Process(pid)
        for pid, command in session_processes(service.process.pid)
        if "ServeReplica:chromedb:Embedder" in command
    )
    sentence = "The committee discussed the budget, the schedule and the risks. "
    texts = [f"Report {n}. {sentence * 40}" for n in range(64)]  # each cut at the model's 256 tokens
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": texts}
    assert api.post("/v1/embeddings", json=body).status_code == 200
    after_work = embedder.memory_full_info().uss
    deadline = time.monotonic() + 60
    while embedder.memory_full_info().uss > after_work - 32 * 2**20 and time.monotonic() < deadline:
        time.sleep(1)
    assert embedder.memory_full_info().uss <= after_work - 32 * 2**20


def test_filters(api, corpus):
    ids = lambda where: {hit["id"] for hit in search(api, "anything at all", top_k=50, where=where)}  # noqa: E731
    assert ids({"topic": "space"}) == {"space"}
    assert ids({"science": True}) == {"space", "health"}
    assert ids({"topic": {"$in": ["pets", "music"]}}) == {"pets", "music"}
    assert ids({"$and": [{"science": False}, {"topic": {"$nin": ["pets", "finance", "music"]}}]}) == {
        "cooking",
        "football",
        "gardening",
    }
    assert ids({"$or": [{"topic": {"$eq": "pets"}}, {"length": {"$gt": 1000}}]}) == {"pets"}
    assert ids({"topic": {"$ne": "pets"}}) == set(CORPUS) - {"pets"}
    assert len(ids({"length": {"$gte": 0}})) == len(CORPUS)


def test_search_of_an_empty_store_is_an_empty_list(api):
    assert count(api) == 0
    assert search(api, "anything") == []


def test_upsert_replaces_and_is_counted_once(api):
    first = api.post(
        "/embed", json={"documents": [{"id": "u1", "text": "A recipe for apple pie.", "metadata": {"v": 1}}]}
    )
    assert first.json()["count"] == 1
    second = api.post(
        "/embed/", json={"documents": [{"id": "u1", "text": "Notes on the history of Rome.", "metadata": {"w": "x"}}]}
    )
    assert second.json() == {"ids": ["u1"], "count": 1, "truncated": [], "chunks": {}}
    best = search(api, "ancient Roman history", top_k=1)[0]
    assert (best["id"], best["text"], best["metadata"]) == ("u1", "Notes on the history of Rome.", {"w": "x"})
    assert api.post("/delete", json={"ids": ["u1"]}).json() == {"deleted": 1, "count": 0}


def test_generated_ids_and_truncated_long_texts(api):
    long_text = "The committee discussed the budget in detail. " * 80
    body = api.post("/embed/", json={"documents": [{"text": "a short note"}, {"id": "long", "text": long_text}]}).json()
    generated, long_id = body["ids"]
    assert generated and long_id == "long" and body["truncated"] == ["long"]
    assert search(api, "committee budget discussion", top_k=1)[0]["text"] == long_text  # stored whole
    assert api.post("/delete/", json={"ids": body["ids"]}).json() == {"deleted": 2, "count": 0}


def test_delete_counts_only_what_existed(api):
    api.post("/embed/", json={"documents": [{"id": "d1", "text": "one"}, {"id": "d2", "text": "two"}]})
    assert api.post("/delete/", json={"ids": ["d1", "unknown"]}).json() == {"deleted": 1, "count": 1}
    assert api.post("/delete/", json={"ids": ["d1", "d2"]}).json() == {"deleted": 1, "count": 0}


def test_concurrent_deletes_by_filter_and_by_id_each_delete_what_was_there_in_its_turn(api):
    """Deletes that arrive while the store writes are applied together in its next write
    (deployments.store): each still deletes, and counts, only what was left when its turn came."""
    notes = [{"id": f"f{n}", "text": f"a note to delete, number {n}", "metadata": {"n": n}} for n in range(24)]
    assert api.post("/embed/", json={"documents": notes}).json()["count"] == 24
    try:
        # The filters take the even numbers; the ids take pairs (4k, 4k + 1): half of them even too.
        bodies: list[dict[str, object]] = [{"where": {"n": n}} for n in range(0, 24, 2)]
        bodies += [{"ids": [f"f{n}", f"f{n + 1}"]} for n in range(0, 24, 4)]
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = [answer.json() for answer in pool.map(lambda body: api.post("/delete/", json=body), bodies)]
        deleting = [answer for answer in answers if answer["deleted"]]
        assert sum(answer["deleted"] for answer in answers) == 18, answers  # each document counted once
        assert len({answer["count"] for answer in deleting}) == len(deleting), answers  # one state after each
        assert min(answer["count"] for answer in answers) == count(api) == 6
        left = api.post("/list/", json={"limit": 50}).json()["documents"]
        assert sorted(d["id"] for d in left) == sorted(f"f{n}" for n in range(3, 24, 4))
    finally:  # the service is shared: the next test starts from an empty store
        api.post("/delete/", json={"ids": [note["id"] for note in notes]}).raise_for_status()
    assert count(api) == 0


def test_quota_refusal_leaves_the_store_unchanged(api):
    fill = [{"id": f"q{n}", "text": f"quota filler document number {n}"} for n in range(E2E_QUOTA - 2)]
    assert api.post("/embed/", json={"documents": fill}).json()["count"] == E2E_QUOTA - 2
    over = [{"id": f"over{n}", "text": f"a document that must not be stored {n}"} for n in range(3)]
    refused = api.post("/embed/", json={"documents": over})
    assert refused.status_code == 403
    error = refused.json()
    assert error["error"] == "quota_exceeded"
    assert str(E2E_QUOTA) in error["message"] and str(E2E_QUOTA - 2) in error["message"]
    assert count(api) == E2E_QUOTA - 2
    assert not any(hit["id"].startswith("over") for hit in search(api, "must not be stored", top_k=50))
    # Replacing stored ids at the quota is allowed; reaching it exactly is allowed.
    assert api.post("/embed/", json={"documents": fill[:5] + over[:2]}).json()["count"] == E2E_QUOTA
    assert api.post("/delete/", json={"ids": [d["id"] for d in fill + over]}).json()["count"] == 0


BAD_REQUESTS = [
    ("/embed/", {"documents": []}, 422),
    ("/embed/", {"documents": [{"text": "   "}]}, 422),
    ("/embed/", {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, 422),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": [1]}}]}, 422),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": {"a": 1}}}]}, 422),
    ("/embed/", {"documents": [{"text": "x", "metadata": {"k": None}}]}, 422),
    ("/embed/", {"documents": [{"text": 42}]}, 422),
    ("/embed/", {"documents": [{"text": f"t{n}"} for n in range(257)]}, 422),
    ("/embed/", {"documents": [{"text": "x" * 10_001}]}, 422),
    ("/search/", {"query": ""}, 422),
    ("/search/", {"query": "x", "top_k": 0}, 422),
    ("/search/", {"query": "x", "top_k": -1}, 422),
    ("/search/", {"query": "x", "top_k": 51}, 422),
    ("/search/", {"query": "x", "where": {"topic": {"$gt": "a"}}}, 422),
    ("/search/", {"query": "x", "where": {"$nope": []}}, 422),
    ("/delete/", {"ids": []}, 422),
    ("/delete/", {"ids": [1, 2]}, 422),
]


@pytest.mark.parametrize(("path", "body", "status"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_and_never_a_partial_write(api, path, body, status):
    api.post(
        "/embed/", json={"documents": [{"id": "keep", "text": "a document that stays", "metadata": {"topic": "x"}}]}
    )
    response = api.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error"] and error["message"] and error["field"]
    assert count(api) == 1
    api.post("/delete/", json={"ids": ["keep"]})


def test_malformed_json_is_400(api):
    response = api.post("/embed/", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"


def test_routes_answer_without_redirect(api):
    for path in ("/healthz", "/healthz/"):
        assert api.get(path, follow_redirects=False).status_code == 200
    for path in ("/search", "/search/"):
        assert api.post(path, json={"query": "x"}, follow_redirects=False).status_code == 200


def test_docs_describe_every_route(api):
    assert api.get("/docs").status_code == 200
    # The contract tests pin the route list; the running service must serve that same document.
    assert api.get("/openapi.json").json() == DOCUMENT


def test_concurrent_searches_are_batched_without_mixing_results(api, corpus):
    queries = list(QUERIES) * 3
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda q: search(api, q, top_k=1)[0]["id"], queries))
    assert results == [QUERIES[q] for q in queries]


def test_a_bad_search_among_concurrent_ones_fails_alone(api, corpus):
    """Concurrent searches share one store call (the Ingress batches them): a regex chromadb
    cannot compile is that search's 422, and every other search still gets its answer."""
    bad = {"query": "anything", "where_document": {"$regex": "(unclosed"}}
    bodies = [bad if n % 4 == 0 else {"query": query, "top_k": 1} for n, query in enumerate(list(QUERIES) * 4)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda body: api.post("/search/", json=body), bodies))
    for body, response in zip(bodies, responses, strict=True):
        if body is bad:
            assert response.status_code == 422 and response.json()["field"] == "where_document", response.text
        else:
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["id"] == QUERIES[str(body["query"])]


def test_concurrent_writes_respect_the_quota(api):
    batches = [[{"id": f"c{b}-{n}", "text": f"concurrent write {b} {n}"} for n in range(10)] for b in range(8)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda docs: api.post("/embed/", json={"documents": docs}).status_code, batches))
    assert sorted(set(statuses)) == [200, 403]
    assert count(api) == 10 * statuses.count(200) <= E2E_QUOTA
    api.post("/delete/", json={"ids": [d["id"] for batch in batches for d in batch]})
    assert count(api) == 0


def test_data_survives_a_restart(service, api):
    """Last in this module: it restarts the shared instance."""
    api.post(
        "/embed/",
        json={"documents": [{"id": "durable", "text": "Lighthouses guide ships at night.", "metadata": {"k": 1}}]},
    )
    service.restart()
    assert count(api) == 1
    best = search(api, "a tower with a light that helps sailors", top_k=1)[0]
    assert (best["id"], best["metadata"]) == ("durable", {"k": 1})
    api.post("/delete/", json={"ids": ["durable"]})
