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
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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


def count_lines(path: Path) -> int:
    """The file's documents (its lines that are not blank), for the progress bar; the first line that
    is not UTF-8 stops the import before anything is sent."""
    total = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                total += bool(raw.decode("utf-8").strip())
            except UnicodeDecodeError:
                raise SystemExit(f"{path}:{number}: not UTF-8 text") from None
    return total


def resume_line(progress_file: Path, restart: bool) -> int:
    """The last line a previous run stored (FILE.progress), 0 to start from the top."""
    if restart or not progress_file.exists():
        return 0
    try:
        return int(progress_file.read_text().split()[0])
    except (ValueError, IndexError):
        raise SystemExit(f"{progress_file}: not a line number; pass --restart to import from line 1") from None


# A refused document's place in the batch, as the service names it: documents.3.metadata.k.
BATCH_FIELD = re.compile(r"^documents\.(\d+)\b")


def import_file(client: Client, path: Path, chunking: bool, restart: bool) -> int:
    progress_file = path.with_name(path.name + ".progress")
    done = resume_line(progress_file, restart)
    total = count_lines(path)
    batch_size = min(MAX_BATCH, client.health()["limits"]["max_docs_per_request"])
    client.count()  # a wrong key fails here, in one line, before the progress bar is drawn
    started, imported, last_line = time.perf_counter(), 0, done
    batch: list[dict[str, Any]] = []
    lines: list[int] = []  # the file's line number of each document in the batch
    with tqdm(total=total, initial=min(done, total), unit="doc", desc="import") as bar:

        def send() -> None:
            nonlocal imported
            try:
                client.embed(batch, chunking=chunking)
            except ApiError as exc:
                # The service counts within the batch (documents.3); the user needs the file's line.
                if (at := BATCH_FIELD.match(exc.field or "")) and int(at[1]) < len(lines):
                    raise SystemExit(f"{path}:{lines[int(at[1])]}: refused: {exc}") from None
                raise
            imported += len(batch)
            progress_file.write_text(f"{last_line}\n")  # every line up to here is stored
            bar.update(len(batch))
            batch.clear()
            lines.clear()

        for number, document in read_lines(path, done):
            batch.append(document)
            lines.append(number)
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
    # The service counts the whole collection only: a filtered export's total is not known before
    # its last page, so its bar counts up without one rather than stop short of a wrong total.
    total = count if where is None else None
    include: list[Any] = ["text", "metadata", *(["embedding"] if embeddings else [])]
    page_size = min(MAX_BATCH, client.health()["limits"]["max_docs_per_request"])
    started, written = time.perf_counter(), 0
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as file, tqdm(total=total, unit="doc", desc="export") as bar:
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


# Argument types: a bad argument is argparse's error (its usage line, then one line saying what is
# wrong; exit 2) before anything is sent, rather than a traceback halfway through.


def service_url(value: str) -> str:
    if not re.match(r"^https?://[^/]", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL")
    return value


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    return path


def output_file(value: str) -> Path:
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: a folder, not a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no such folder {str(path.parent)!r}")
    return path


def filter_object(value: str) -> dict[str, Any]:
    try:
        where = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at character {exc.pos}): {value}") from None
    if not isinstance(where, dict):
        raise argparse.ArgumentTypeError(f"a filter is a JSON object, e.g. '{{\"k\": 1}}', not {value}")
    return where


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chromedb_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", type=service_url, default=os.environ.get("CHROMEDB_URL", "http://localhost:8000"))
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="default: $API_KEY")
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("import", help="add or replace the documents of a JSONL file")
    imports.add_argument("file", type=existing_file)
    imports.add_argument("--chunking", action="store_true", help="chunk long texts (README: Long documents)")
    imports.add_argument("--restart", action="store_true", help="ignore FILE.progress and start from line 1")
    exports = commands.add_parser("export", help="write every document to a JSONL file")
    exports.add_argument("file", type=output_file)
    exports.add_argument("--embeddings", action="store_true", help="include each stored vector")
    exports.add_argument("--where", type=filter_object, help="only documents matching this filter, e.g. '{\"k\": 1}'")
    commands.add_parser("count", help="print the document count and the quota")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    with Client(args.url, args.api_key) as client:
        if args.command == "import":
            return import_file(client, args.file, args.chunking, args.restart)
        if args.command == "export":
            return export_file(client, args.file, args.embeddings, args.where)
        count, quota = client.count()
        print(f"{count} documents (quota {quota})")
        return 0


def main(argv: list[str]) -> int:
    """Exit 0 done, 1 failed (one line on stderr: what the service said, or why it could not be
    reached), 2 a bad argument (argparse's), 130 interrupted."""
    args = parse_args(argv)
    try:
        return run(args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except httpx.HTTPError as exc:  # after the client's own retries: no service there, or it stopped answering
        print(f"error: no answer from {args.url} ({type(exc).__name__}: {exc})", file=sys.stderr)
    except OSError as exc:  # a file that cannot be read or written after all (permissions, a full disk)
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        resume = " (the same command goes on from the last stored batch)" if args.command == "import" else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
