"""`make eval` / `python -m bench.eval [BEIR folder]`: retrieval quality through the HTTP API.

Ingests a BEIR-format data set (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) into a running
service with /embed/ (a document is `title + " " + text`, as BEIR and MTEB embed it), searches every
judged query of the split in each mode with /search/, and prints nDCG@10, recall@10 and recall@100
per mode (BEIR's conventions: a result whose id is the query's own is skipped; gains are the
judgement scores). Beside them: exact (brute-force) cosine search over the vectors the service
stored, the HNSW index's recall@10 against it, and the STS Benchmark check that each embedding
backend is still the published model. Exits 1 when a target is missed.

Without --url it starts its own service (the shipped launcher and config, plan pro so that top_k
100 is allowed, a temporary folder). Data is read in place (../shared/eval): never copied.
"""

import argparse
import csv
import datetime
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from scipy.stats import spearmanr

from bench.instance import REPO
from bench.readme import replace_section
from bench.targets import own_service
from deployments.core.config import Settings, load_settings
from deployments.embedding.backends import EmbeddingBackend
from deployments.embedding.models import load_backend
from deployments.storage.ranking import DEFAULT_HYBRID_WEIGHT

EVAL_DIR = REPO.parent / "shared" / "eval"
MODES = ("semantic", "keyword", "hybrid")
DEPTH = 100  # results per query: recall@100 needs them
INGEST_BATCH = 64
CLIENTS = 4
# Published figures for all-MiniLM-L6-v2 (MTEB, exact search) and the tolerances the issue sets.
PUBLISHED_NDCG10 = {"scifact": 64.508}
NDCG_TOLERANCE = 0.5
MIN_INDEX_RECALL = 0.98
PUBLISHED_STS = 82.03
STS_TOLERANCE = 0.3

Run = dict[str, list[str]]  # query id -> result ids, best first
Qrels = dict[str, dict[str, int]]  # query id -> {document id: relevance}


@dataclass
class Beir:
    name: str
    corpus: dict[str, str]
    queries: dict[str, str]  # the judged queries of the split only
    qrels: Qrels


def load_beir(folder: Path, split: str) -> Beir:
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        corpus[str(row["_id"])] = f"{row.get('title', '')} {row['text']}".strip()
    qrels: Qrels = {}
    with (folder / "qrels" / f"{split}.tsv").open() as file:
        for row in list(csv.reader(file, delimiter="\t"))[1:]:
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        if str(row["_id"]) in qrels:
            queries[str(row["_id"])] = row["text"]
    return Beir(folder.name, corpus, queries, {q: qrels[q] for q in queries})


# --- metrics -------------------------------------------------------------------------------


def _ranked(run: Run, query: str, k: int) -> list[str]:
    return [doc for doc in run.get(query, []) if doc != query][:k]


def ndcg_at(run: Run, qrels: Qrels, k: int) -> float:
    scores = []
    for query, relevant in qrels.items():
        dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(_ranked(run, query, k)))
        ideal = sorted(relevant.values(), reverse=True)[:k]
        scores.append(dcg / sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal)))
    return 100 * float(np.mean(scores))


def recall_at(run: Run, qrels: Qrels, k: int) -> float:
    return 100 * float(np.mean([len(set(_ranked(run, q, k)) & set(rel)) / len(rel) for q, rel in qrels.items()]))


def overlap_at(found: Run, exact: Run, k: int) -> float:
    """The index's recall@k against exact search: the share of the exact top k it returns."""
    return float(np.mean([len(set(found[q][:k]) & set(exact[q][:k])) / k for q in exact]))


# --- talking to the service --------------------------------------------------------------------


# How often a request that ran past the service's request timeout (408) is sent again. The README's
# contract: a 408 write's outcome is unknown, and one that carries its ids may be sent again. Every
# request here does (searches are reads), so a machine slowed by other work costs time, not the run.
TIMED_OUT_TRIES = 3


def post(client: httpx.Client, path: str, body: object) -> dict[str, object]:
    """POST as a well-behaved client does: waiting out 429 and 503, and sending a request that
    timed out (408) again, at most TIMED_OUT_TRIES times."""
    timed_out = 0
    for _ in range(60):
        response = client.post(path, json=body)
        if response.status_code == 408 and timed_out < TIMED_OUT_TRIES - 1:
            timed_out += 1
            print(f"  {path}: 408 (ran past the service's request timeout), sending it again", flush=True)
            continue
        if response.status_code not in (429, 503):
            response.raise_for_status()
            result: dict[str, object] = response.json()
            return result
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise RuntimeError(f"{path}: still {response.status_code} after a minute: {response.text}")


def ingest(
    make_client: Callable[[], httpx.Client],
    corpus: dict[str, str],
    chunking: bool = False,
    metadata: dict[str, str] | None = None,
    clients: int = CLIENTS,
) -> float:
    ids = list(corpus)
    batches = [ids[i : i + INGEST_BATCH] for i in range(0, len(ids), INGEST_BATCH)]
    started = time.perf_counter()

    def send(batch: list[str]) -> None:
        documents = [{"id": id_, "text": corpus[id_], "metadata": metadata or {}} for id_ in batch]
        with make_client() as client:
            post(client, "/embed/", {"documents": documents, "chunking": chunking})

    with ThreadPoolExecutor(clients) as pool:
        for done, _ in enumerate(pool.map(send, batches), start=1):
            if done % 10 == 0 or done == len(batches):
                print(f"  ingested {min(done * INGEST_BATCH, len(ids)):,}/{len(ids):,}", flush=True)
    return time.perf_counter() - started


def search_all(
    make_client: Callable[[], httpx.Client],
    queries: dict[str, str],
    mode: str,
    depth: int,
    where: dict[str, str] | None = None,
) -> Run:
    def search(item: tuple[str, str]) -> tuple[str, list[str]]:
        with make_client() as client:
            body = post(client, "/search/", {"query": item[1], "top_k": depth, "mode": mode, "where": where})
        return item[0], [hit["id"] for hit in body["results"]]  # type: ignore[attr-defined]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return dict(pool.map(search, queries.items()))


def stored_vectors(make_client: Callable[[], httpx.Client], ids: list[str]) -> np.ndarray:
    vectors = []
    with make_client() as client:
        for start in range(0, len(ids), 256):
            body = post(client, "/get/", {"ids": ids[start : start + 256], "include": ["embedding"]})
            vectors += [document["embedding"] for document in body["documents"]]  # type: ignore[attr-defined]
    return np.asarray(vectors, dtype=np.float32)


def exact_run(corpus: np.ndarray, ids: list[str], queries: np.ndarray, query_ids: list[str], depth: int) -> Run:
    corpus = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = queries @ corpus.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return {query: [ids[i] for i in row] for query, row in zip(query_ids, top, strict=True)}


# --- long documents ------------------------------------------------------------------------------


def joined(data: Beir, per_document: int, backend: EmbeddingBackend) -> Beir:
    """Every `per_document` consecutive documents joined into one, and only the queries whose every
    relevant document now starts past the model's window: their answer is where an unchunked
    embedding cannot see it."""
    window = backend.max_tokens - 2  # [CLS] and [SEP] take two of its places
    ids = list(data.corpus)
    corpus: dict[str, str] = {}
    home: dict[str, tuple[str, int]] = {}  # original id -> (joined id, the token it starts at)
    for group in range(0, len(ids), per_document):
        members = ids[group : group + per_document]
        lengths = [0, *backend.token_counts([data.corpus[m] for m in members])]
        joined_id = f"joined-{group // per_document}"
        for position, member in enumerate(members):
            home[member] = (joined_id, sum(count - 2 for count in lengths[1 : position + 1]))
        corpus[joined_id] = " ".join(data.corpus[m] for m in members)
    qrels: Qrels = {}
    for query, relevant in data.qrels.items():
        if all(home[doc][1] >= window for doc in relevant if doc in home):
            qrels[query] = {home[doc][0]: gain for doc, gain in relevant.items() if doc in home}
    return Beir(f"{data.name}-joined{per_document}", corpus, {q: data.queries[q] for q in qrels}, qrels)


def evaluate_long_documents(args: argparse.Namespace, data: Beir, backend: EmbeddingBackend, chunk: str) -> str:
    """The joined documents ingested twice, plain and chunked (told apart by a metadata filter),
    and searched alike: what chunking changes for answers past the window."""
    long = joined(data, args.join, backend)
    print(
        f"{long.name}: {len(long.corpus):,} documents, {len(long.queries)} queries answered past the window",
        flush=True,
    )
    rows: list[Row] = []
    with service_for(args, 2 * len(long.corpus)) as (url, api_key):
        make_client = _client_factory(url, api_key)
        depth = min(DEPTH, httpx.get(f"{url}/healthz/", timeout=10).json()["limits"]["max_top_k"])
        seconds = {}
        for variant, chunking in (("plain", False), ("chunked", True)):
            print(f"ingesting {variant} ...", flush=True)
            corpus = {f"{variant}-{id_}": text for id_, text in long.corpus.items()}
            seconds[variant] = ingest(make_client, corpus, chunking, {"variant": variant}, args.clients)
            for mode in ("semantic", "hybrid"):
                run = search_all(make_client, long.queries, mode, depth, {"variant": variant})
                unprefixed = {q: [hit.removeprefix(f"{variant}-") for hit in hits] for q, hits in run.items()}
                rows.append(Row(f"{mode}, {'chunked' if chunking else 'not chunked'}", unprefixed))
    context = (
        f"Latest `make eval ARGS=--join {args.join}` ({datetime.date.today().isoformat()}): every {args.join} "
        f"consecutive {data.name} documents joined into one ({len(long.corpus):,} documents), and only the "
        f"{len(long.queries)} {args.split} queries whose relevant abstracts all start past the model's window "
        f"({backend.max_tokens - 2} word pieces into the joined text). Ingested twice through `/embed/`, without "
        f"and with `chunking` ({seconds['plain']:.0f} s and {seconds['chunked']:.0f} s); chunks of {chunk}."
    )
    lines = [context, "", "| search | nDCG@10 | recall@10 | recall@100 |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.label} | {ndcg_at(row.run, long.qrels, 10):.2f} | {recall_at(row.run, long.qrels, 10):.2f} | "
            f"{recall_at(row.run, long.qrels, 100):.2f} |"
        )
    return "\n".join(lines)


def _client_factory(url: str, api_key: str | None) -> Callable[[], httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return lambda: httpx.Client(base_url=url, headers=headers, timeout=120)


# --- STS Benchmark --------------------------------------------------------------------------------


def sts_spearman(backend: EmbeddingBackend, folder: Path) -> float:
    """Cosine Spearman x 100 on the STS Benchmark test split."""
    with (folder / "sts-test.csv").open(newline="") as file:
        rows = [row for row in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE) if len(row) >= 7]
    gold = np.array([float(row[4]) for row in rows])
    first = backend.encode([row[5] for row in rows])
    second = backend.encode([row[6] for row in rows])
    return 100 * float(spearmanr((first * second).sum(axis=1), gold).statistic)


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    run: Run


def other_backends(settings: Settings, data: Beir, names: str, depth: int) -> list[Row]:
    """Exact search over the corpus embedded by each other backend (e.g. onnx-int8), in this process."""
    rows = []
    ids, query_ids = list(data.corpus), list(data.queries)
    for name in filter(None, names.split(",")):
        print(f"embedding the corpus with the {name} backend for exact search ...", flush=True)
        chosen = settings.model_copy(update={"embed_backend": name})
        backend = load_backend(chosen)
        corpus = backend.encode([data.corpus[i] for i in ids])
        queries = backend.encode([data.queries[q] for q in query_ids])
        rows.append(Row(f"semantic, exact search, backend {name}", exact_run(corpus, ids, queries, query_ids, depth)))
    return rows


def query_backends(settings: Settings, data: Beir, names: str, corpus: np.ndarray, depth: int) -> list[Row]:
    """Exact search over the service's vectors with the queries embedded by each QUERY_BACKEND value."""
    rows = []
    ids, query_ids = list(data.corpus), list(data.queries)
    for name in filter(None, names.split(",")):
        chosen = settings.model_copy(update={"query_backend": name}).for_queries()  # as the service loads it
        queries = load_backend(chosen).encode([data.queries[q] for q in query_ids])
        label = f"semantic, exact search, backend {name} for the queries alone (QUERY_BACKEND)"
        rows.append(Row(label, exact_run(corpus, ids, queries, query_ids, depth)))
    return rows


def render(data: Beir, rows: list[Row], index_recall: float, sts: dict[str, float], context: str) -> str:
    published = PUBLISHED_NDCG10.get(data.name)
    semantic = ndcg_at(rows[0].run, data.qrels, 10)
    lines = [
        context,
        "",
        "| search | nDCG@10 | recall@10 | recall@100 | nDCG@10 vs semantic |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ndcg = ndcg_at(row.run, data.qrels, 10)
        lines.append(
            f"| {row.label} | {ndcg:.2f} | {recall_at(row.run, data.qrels, 10):.2f} | "
            f"{recall_at(row.run, data.qrels, 100):.2f} | {ndcg - semantic:+.2f} |"
        )
    lines += ["", "| check | measured | target | met |", "|---|---|---|---|"]
    if published is not None:
        for row in rows:
            if row is rows[0] or ", backend " in row.label:  # the service's model, and each other backend
                ndcg = ndcg_at(row.run, data.qrels, 10)
                lines.append(
                    f"| {row.label}: nDCG@10 vs published {published} | {ndcg:.2f} | ±{NDCG_TOLERANCE} | "
                    f"{'yes' if abs(ndcg - published) <= NDCG_TOLERANCE else 'NO'} |"
                )
    lines.append(
        f"| HNSW recall@10 vs exact search | {index_recall:.3f} | ≥ {MIN_INDEX_RECALL} | "
        f"{'yes' if index_recall >= MIN_INDEX_RECALL else 'NO'} |"
    )
    hybrid = ndcg_at(rows[-1].run, data.qrels, 10)
    lines.append(
        f"| hybrid nDCG@10 gain over semantic | {hybrid - semantic:+.2f} | ≥ +3 | "
        f"{'yes' if hybrid - semantic >= 3 else 'NO'} |"
    )
    for name, score in sts.items():
        lines.append(
            f"| STS-B test cosine Spearman, backend {name} | {score:.2f} | {PUBLISHED_STS} ±{STS_TOLERANCE} | "
            f"{'yes' if abs(score - PUBLISHED_STS) <= STS_TOLERANCE else 'NO'} |"
        )
    return "\n".join(lines)


@contextmanager
def service_for(args: argparse.Namespace, documents: int) -> Iterator[tuple[str, str | None]]:
    if args.url:
        yield args.url, args.api_key
        return
    with (
        tempfile.TemporaryDirectory(prefix="eval-") as scratch,
        own_service(Path(scratch), args.cache_dir, documents + 1_000, tenant_id="eval", plan="pro") as (service, key),
    ):
        yield service.url, key


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, nargs="?", default=EVAL_DIR / "scifact", help="a BEIR-format folder")
    parser.add_argument("--split", default="test", help="qrels/<split>.tsv (tune on train, report test)")
    parser.add_argument("--sts", type=Path, default=EVAL_DIR / "stsbenchmark", help="STS Benchmark folder")
    parser.add_argument("--backends", default="onnx,onnx-int8,torch", help="embedding backends the STS check runs")
    parser.add_argument(
        "--exact-backends",
        default="onnx-int8",
        help="other backends whose exact-search nDCG@10 is measured in this process (the corpus embedded again)",
    )
    parser.add_argument(
        "--query-backends",
        default="onnx-int8",
        help="QUERY_BACKEND values whose exact-search nDCG@10 is measured over the service's own vectors "
        "(only the queries embedded again)",
    )
    parser.add_argument("--url", help="evaluate this running (empty) instance instead of starting one")
    parser.add_argument(
        "--clients", type=int, default=CLIENTS, help=f"concurrent import requests of {INGEST_BATCH} documents"
    )
    parser.add_argument("--api-key", help="with --url")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="keeps the ONNX export")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="file whose table is replaced")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    parser.add_argument(
        "--join",
        type=int,
        default=0,
        help="evaluate chunking instead: join every N documents into one, keep the queries answered past "
        "the model's window, compare plain and chunked ingestion",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.data / "corpus.jsonl").is_file():
        print(f"no BEIR corpus in {args.data}: pass the folder (../shared/eval/scifact here)", file=sys.stderr)
        return 2
    data = load_beir(args.data, args.split)
    print(f"{data.name}: {len(data.corpus):,} documents, {len(data.queries)} judged {args.split} queries", flush=True)
    settings = load_settings(_env_file=None, model_cache_dir=args.cache_dir / "model-cache")
    backend = load_backend(settings)

    if args.join:
        chunk = f"{settings.chunk_size} word pieces, overlap {settings.chunk_overlap} (the defaults)"
        table = evaluate_long_documents(args, data, backend, chunk)
        print("\n" + table + "\n")
        if not args.no_readme and args.url is None:
            replace_section(args.readme, "chunking", table)
        return 0

    with service_for(args, len(data.corpus)) as (url, api_key):
        make_client = _client_factory(url, api_key)
        limits = httpx.get(f"{url}/healthz/", timeout=10).json()["limits"]
        depth = min(DEPTH, limits["max_top_k"])
        print(f"ingesting through {url}/embed/ ...", flush=True)
        ingest_s = ingest(make_client, data.corpus, clients=args.clients)
        runs = {}
        for mode in MODES:
            print(f"searching: {mode} ...", flush=True)
            runs[mode] = search_all(make_client, data.queries, mode, depth)
        print("reading the stored vectors back for exact search ...", flush=True)
        ids = list(data.corpus)
        vectors = stored_vectors(make_client, ids)

    query_ids = list(data.queries)
    exact = exact_run(vectors, ids, backend.encode([data.queries[q] for q in query_ids]), query_ids, depth)
    rows = [
        Row("semantic (the service: HNSW)", runs["semantic"]),
        Row("semantic, exact search (same vectors)", exact),
        *other_backends(settings, data, args.exact_backends, depth),
        *query_backends(settings, data, args.query_backends, vectors, depth),
        Row("keyword (BM25, tantivy)", runs["keyword"]),
        Row(f"hybrid (weight {DEFAULT_HYBRID_WEIGHT})", runs["hybrid"]),
    ]
    sts = {}
    if (args.sts / "sts-test.csv").is_file():
        for name in args.backends.split(","):
            scored = load_backend(settings.model_copy(update={"embed_backend": name}))
            sts[scored.name] = sts_spearman(scored, args.sts)
    else:
        print(f"no STS Benchmark in {args.sts}: its check is skipped", file=sys.stderr)
    context = (
        f"Latest `make eval` ({datetime.date.today().isoformat()}): {data.name} {args.split} split, "
        f"{len(data.corpus):,} documents ingested through `/embed/` in {ingest_s:.0f} s, {len(data.queries)} "
        f"queries through `/search/` (top_k {depth}) in each mode; exact search over the vectors read back "
        f"with `/get/`; embedding backend `{backend.name}`."
    )
    table = render(data, rows, overlap_at(runs["semantic"], exact, 10), sts, context)
    print("\n" + table + "\n")
    if not args.no_readme and args.url is None:
        replace_section(args.readme, "eval", table)
    return 0 if "| NO |" not in table else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
