"""`python -m chromedb_client import|export|count`: moving a tenant's documents in and out over HTTP.

    python -m chromedb_client --url http://tenant:8000 --api-key $KEY import docs.jsonl
    python -m chromedb_client --url http://tenant:8000 --api-key $KEY export backup.jsonl --embeddings
    python -m chromedb_client --url http://tenant:8000 --api-key $KEY count

A JSONL line is one document: {"id": ..., "text": ..., "metadata": {...}, "embedding": [...]}, only
`text` required; export writes the same shape, so an export imports into another instance as is.
Import sends batches sized to the instance's plan and records its progress beside the file
(`FILE.progress`): run it again after an interruption and it goes on where it stopped. A line
without an id gets one derived from the file's name and the line's number, so a resumed or repeated
import replaces instead of duplicating.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from chromedb_client.client import ApiError, Client

MAX_BATCH = 256  # documents per /embed/ at most, whatever the plan allows: smaller retries, steady progress


def read_lines(path: Path, skip: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, document) from `skip` on; blank lines are skipped, a bad one stops the import."""
    prefix = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if number <= skip or not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(document, dict) or not isinstance(document.get("text"), str):
                raise SystemExit(f'{path}:{number}: each line must be an object with a "text" string')
            document.setdefault("id", f"{prefix}-{number}")
            yield number, document


def import_file(client: Client, path: Path, chunking: bool, restart: bool) -> int:
    progress_file = path.with_name(path.name + ".progress")
    done = 0 if restart or not progress_file.exists() else int(progress_file.read_text().split()[0])
    total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    batch_size = min(MAX_BATCH, client.health()["limits"]["max_docs_per_request"])
    started, imported, last_line = time.perf_counter(), 0, done
    batch: list[dict[str, Any]] = []
    with tqdm(total=total, initial=min(done, total), unit="doc", desc="import") as bar:

        def send() -> None:
            nonlocal imported
            client.embed(batch, chunking=chunking)
            imported += len(batch)
            progress_file.write_text(f"{last_line}\n")  # every line up to here is stored
            bar.update(len(batch))
            batch.clear()

        for number, document in read_lines(path, done):
            batch.append(document)
            last_line = number
            if len(batch) == batch_size:
                send()
        if batch:
            send()
    count, quota = client.count()
    seconds = time.perf_counter() - started
    print(
        f"imported {imported:,} documents from {path} in {seconds:.1f} s ({imported / max(seconds, 1e-9):.0f}/s), "
        f"{'resumed after line ' + str(done) + ', ' if done else ''}{client.retried} requests retried; "
        f"the instance holds {count:,} of its quota {quota:,}"
    )
    progress_file.unlink(missing_ok=True)
    return 0


def export_file(client: Client, path: Path, embeddings: bool, where: dict[str, Any] | None) -> int:
    count, _ = client.count()
    include: list[Any] = ["text", "metadata", *(["embedding"] if embeddings else [])]
    page_size = min(MAX_BATCH, client.health()["limits"]["max_docs_per_request"])
    started, written = time.perf_counter(), 0
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as file, tqdm(total=count, unit="doc", desc="export") as bar:
        for document in client.iter_documents(page_size, where, include):
            line: dict[str, Any] = {"id": document.id, "text": document.text, "metadata": document.metadata or {}}
            if embeddings:
                line["embedding"] = document.embedding
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
            bar.update(1)
    os.replace(partial, path)  # the file appears whole, or not at all
    print(f"exported {written:,} documents to {path} in {time.perf_counter() - started:.1f} s")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chromedb_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CHROMEDB_URL", "http://localhost:8000"))
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="default: $API_KEY")
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("import", help="add or replace the documents of a JSONL file")
    imports.add_argument("file", type=Path)
    imports.add_argument("--chunking", action="store_true", help="chunk long texts (README: Long documents)")
    imports.add_argument("--restart", action="store_true", help="ignore FILE.progress and start from line 1")
    exports = commands.add_parser("export", help="write every document to a JSONL file")
    exports.add_argument("file", type=Path)
    exports.add_argument("--embeddings", action="store_true", help="include each stored vector")
    exports.add_argument("--where", type=json.loads, help="only documents matching this filter, e.g. '{\"k\": 1}'")
    commands.add_parser("count", help="print the document count and the quota")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with Client(args.url, args.api_key) as client:
        try:
            if args.command == "import":
                return import_file(client, args.file, args.chunking, args.restart)
            if args.command == "export":
                return export_file(client, args.file, args.embeddings, args.where)
            count, quota = client.count()
            print(f"{count} documents (quota {quota})")
            return 0
        except ApiError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
