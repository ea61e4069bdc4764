"""`make eval` end to end on a slice of SciFact: `python -m bench.eval --url` ingests into a real
service (`integration_service`, emptied first) through /embed/, searches through /search/ in every
mode and reads vectors back with /get/. The full run (all 5,183 documents, the published-score
checks, a service of its own) is `make eval`."""

import json
import random
import re
from pathlib import Path

import pytest

from bench import eval as evaluation
from chromedb_client import Client
from tests.e2e.conftest import INTEGRATION_API_KEY, emptied

pytestmark = pytest.mark.e2e

SCIFACT = evaluation.EVAL_DIR / "scifact"
QUERIES = 30
DISTRACTORS = 300
# A results row of the printed table: its label's start and its nDCG@10.
ROW = re.compile(r"^\| (semantic \(the|semantic, exact|keyword|hybrid)[^|]*\| ([\d.]+) \|", re.MULTILINE)


def slice_of_scifact(folder: Path) -> Path:
    """A BEIR folder (in the test's own temporary folder, never in the project) with QUERIES test
    queries, the documents judged for them, and DISTRACTORS other documents."""
    lines = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    header, judged = lines[0], lines[1:]
    queries = sorted({line.split("\t")[0] for line in judged}, key=int)[:QUERIES]
    kept = [line for line in judged if line.split("\t")[0] in queries]
    relevant = {line.split("\t")[1] for line in kept}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    others = [doc for doc in corpus if doc["_id"] not in relevant]
    chosen = [doc for doc in corpus if doc["_id"] in relevant] + random.Random(0).sample(others, DISTRACTORS)
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("\n".join([header, *kept]) + "\n")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in chosen))
    all_queries = (SCIFACT / "queries.jsonl").read_text().splitlines()
    (folder / "queries.jsonl").write_text("".join(q + "\n" for q in all_queries if json.loads(q)["_id"] in queries))
    return folder


def test_make_eval_runs_through_the_http_api(tmp_path, capsys, onnx_model_cache, integration_service):
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT} (../shared/eval is absent on this machine)")
    data = slice_of_scifact(tmp_path / "scifact-slice")
    # Without the STS check and the int8 backend's exact-search row (each embeds everything again in
    # this process; `make eval` runs both): this is the HTTP path, not the published scores. One import
    # request at a time: four, as `make eval` sends, each wait for the others' model runs (about 20 s
    # each on an idle 2-core machine, past the 60 s request timeout on a busy one: a CI failure).
    options = ["--no-readme", "--sts", str(tmp_path / "none"), "--exact-backends", "", "--clients", "1"]
    with Client(integration_service.url, api_key=INTEGRATION_API_KEY, timeout=60) as client:
        emptied(client)
    options += ["--url", integration_service.url, "--api-key", INTEGRATION_API_KEY]
    code = evaluation.main([str(data), *options, "--cache-dir", str(onnx_model_cache.parent)])
    out = capsys.readouterr().out
    ndcg = {label: float(value) for label, value in ROW.findall(out)}
    assert set(ndcg) == {"semantic (the", "semantic, exact", "keyword", "hybrid"}, out
    assert all(0 < value <= 100 for value in ndcg.values()), out
    assert ndcg["hybrid"] >= ndcg["semantic (the"], out  # fusion does not lose to its own ingredient
    assert re.search(r"HNSW recall@10 vs exact search \| [\d.]+ \| ≥ 0.98 \| yes", out), out
    assert code in (0, 1) and ("| NO |" in out) == (code == 1), out
