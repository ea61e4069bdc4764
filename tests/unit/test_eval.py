"""bench/eval.py's metrics on hand-computed cases, and the STS Benchmark check of the ONNX backend
(the one the service runs on CPU) against the published model's score."""

import math
from pathlib import Path

import httpx
import pytest

from bench.eval import (
    EVAL_DIR,
    PUBLISHED_STS,
    STS_TOLERANCE,
    TIMED_OUT_TRIES,
    ndcg_at,
    overlap_at,
    post,
    recall_at,
    sts_spearman,
)
from deployments.core.config import load_settings
from deployments.embedding.models import load_backend

QRELS = {"q1": {"d1": 1, "d4": 1}, "q2": {"d9": 2}}


def test_ndcg_and_recall_follow_beir_conventions():
    run = {"q1": ["q1", "d4", "d2", "d1"], "q2": ["d9"]}  # q1's own id is skipped, as BEIR does
    ideal_q1 = 1 + 1 / math.log2(3)
    expected_q1 = (1 + 1 / math.log2(4)) / ideal_q1  # d4 at rank 1, d1 at rank 3
    assert ndcg_at(run, QRELS, 10) == pytest.approx(100 * (expected_q1 + 1.0) / 2)
    assert recall_at(run, QRELS, 1) == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert recall_at({}, QRELS, 10) == 0.0


def test_overlap_is_the_share_of_the_exact_top_k_found():
    exact = {"q": ["a", "b", "c", "d"]}
    assert overlap_at({"q": ["b", "a", "x", "y"]}, exact, 2) == 1.0
    assert overlap_at({"q": ["x", "a", "c", "y"]}, exact, 4) == 0.5


def answering(*statuses: int) -> tuple[httpx.Client, list[int]]:
    """A client whose server answers `statuses` in turn, then 200; and the list of what it answered."""
    answered: list[int] = []

    def reply(request: httpx.Request) -> httpx.Response:
        status = statuses[len(answered)] if len(answered) < len(statuses) else 200
        answered.append(status)
        return httpx.Response(status, json={"ok": status == 200}, headers={"Retry-After": "0"})

    return httpx.Client(base_url="http://service", transport=httpx.MockTransport(reply)), answered


def test_a_request_that_timed_out_is_sent_again_a_bounded_number_of_times():
    client, answered = answering(408, 503, 408)
    assert post(client, "/embed/", {}) == {"ok": True}
    assert answered == [408, 503, 408, 200]
    client, answered = answering(*[408] * TIMED_OUT_TRIES)
    with pytest.raises(httpx.HTTPStatusError, match="408"):
        post(client, "/embed/", {})
    assert answered == [408] * TIMED_OUT_TRIES


def test_the_onnx_backend_is_still_the_published_model_on_sts_benchmark(onnx_model_cache: Path):
    folder = EVAL_DIR / "stsbenchmark"
    if not (folder / "sts-test.csv").is_file():
        pytest.skip(f"STS Benchmark not found at {folder} (../shared/eval is absent on this machine)")
    backend = load_backend(load_settings(_env_file=None, embed_backend="onnx", model_cache_dir=onnx_model_cache))
    assert sts_spearman(backend, folder) == pytest.approx(PUBLISHED_STS, abs=STS_TOLERANCE)
