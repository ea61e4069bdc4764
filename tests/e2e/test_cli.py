"""`python -m chromedb_client import|export|count` against the running service: batches, a resumed
import, an export that imports back as it was, with and without the vectors."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.instance import REPO
from tests.e2e.conftest import E2E_API_KEY

pytestmark = pytest.mark.e2e

DOCUMENTS: list[dict[str, Any]] = [
    {"id": f"cli-{n}", "text": f"Imported note number {n} about {'rivers' if n % 2 else 'mountains'}."}
    | ({"metadata": {"n": n, "odd": bool(n % 2)}} if n % 3 else {})
    for n in range(30)
] + [{"text": f"A line without an id, number {n}."} for n in range(10)]


def cli(service, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chromedb_client", "--url", service.url, "--api-key", E2E_API_KEY, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def count(api) -> int:
    return api.get("/count/").json()["count"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_import_resume_export_and_round_trip(service, api, tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(doc) + "\n" for doc in DOCUMENTS) + "\n")  # a trailing blank line
    try:
        # An import interrupted after 12 lines: the progress file says so, and a run goes on from there.
        (tmp_path / "docs.jsonl.progress").write_text("12\n")
        resumed = cli(service, "import", str(source))
        assert resumed.returncode == 0, resumed.stderr
        assert "imported 28 documents" in resumed.stdout and "resumed after line 12" in resumed.stdout
        assert count(api) == 28 and not (tmp_path / "docs.jsonl.progress").exists()
        again = cli(service, "import", str(source))  # all of it: lines without ids get the same ids again
        assert again.returncode == 0 and count(api) == 40, again.stdout + again.stderr

        exported = tmp_path / "export.jsonl"
        assert cli(service, "export", str(exported)).returncode == 0
        lines = read_jsonl(exported)
        assert len(lines) == 40 and {line["id"] for line in lines} >= {f"cli-{n}" for n in range(30)}
        by_id = {line["id"]: line for line in lines}
        for doc in DOCUMENTS[:30]:
            assert by_id[doc["id"]]["text"] == doc["text"]
            assert by_id[doc["id"]]["metadata"] == doc.get("metadata", {})

        with_vectors = tmp_path / "vectors.jsonl"
        assert cli(service, "export", str(with_vectors), "--embeddings", "--where", '{"odd": true}').returncode == 0
        odd = read_jsonl(with_vectors)
        assert len(odd) == len([d for d in DOCUMENTS if d.get("metadata", {}).get("odd")])
        assert all(len(line["embedding"]) == 384 for line in odd)

        # Leave and come back: delete everything, import the export, get the same documents.
        api.post("/delete/", json={"ids": list(by_id)})
        assert count(api) == 0
        assert cli(service, "import", str(exported)).returncode == 0
        back = api.post("/get/", json={"ids": list(by_id)}).json()
        assert {d["id"]: (d["text"], d["metadata"]) for d in back["documents"]} == {
            id_: (line["text"], line["metadata"]) for id_, line in by_id.items()
        }
        counted = cli(service, "count")
        assert counted.returncode == 0 and counted.stdout.startswith("40 documents")
    finally:
        api.post("/delete/", json={"where_document": {"$contains": "number"}})
    assert count(api) == 0


def test_a_bad_line_stops_the_import_naming_it(service, tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{"id": "x"}\n')
    run = cli(service, "import", str(source))
    assert run.returncode != 0 and "bad.jsonl:2" in run.stderr
