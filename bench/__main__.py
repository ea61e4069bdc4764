"""`make bench` / `python -m bench`: one workload, in one run, against the service, the in-process
limit and Chroma's own server; prints one markdown table of figures and ratios, and (by default)
writes it into the README's Performance section.

Never a test: speed depends on the machine, so figures are only compared within one run.
"""

import argparse
import datetime
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import psutil
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings

from bench import measure
from bench.cpu import DEPLOYMENTS, HAPROXY, RAY, CpuUse, cpu_use
from bench.instance import REPO
from bench.mixed import Mixed, fresh_passages, searches_during_import
from bench.ports import free_port
from bench.readme import replace_section
from bench.targets import TOP_K, ChromaServer, InProcess, Service, Target
from bench.workload import Workload, load_workload
from deployments.core.config import Settings, load_settings
from deployments.embedding.backends import EmbeddingBackend
from deployments.embedding.models import load_backend
from deployments.storage.chroma import HNSW_CONFIGURATION
from deployments.storage.tenant_store import TenantStore

EF_SEARCH_SWEEP = (32, 64, 100, 128, 256)  # 100 is chromadb's default
# The 16 clients' searches/s is the median of this many runs of `--per-client` searches each: one
# run of 640 took 4-5 s, and the same service gave 155-187 searches/s from one run to the next.
THROUGHPUT_WINDOWS = 3
# One client's queries go to the service and the in-process limit in blocks of this many, taking turns.
ONE_CLIENT_BLOCK = 25
# Imported while the 16 clients search, to read the memory under load (memory_under_load).
LOAD_DOCUMENTS = 256


@dataclass
class Figures:
    start_s: float = float("nan")
    idle_mb: float = float("nan")  # after start
    load_mb: float = float("nan")
    idle_after_mb: float = float("nan")  # after all the work, once settled
    ingest_per_s: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)
    found: list[list[str]] = field(default_factory=list)
    per_s_16: float = float("nan")
    searches_16: int = 0
    cpu_1: CpuUse = field(default_factory=CpuUse)  # the service's processes, while one client searches
    cpu_16: CpuUse = field(default_factory=CpuUse)  # the service's processes, while 16 clients search
    mixed: Mixed | None = None  # the service only: searches while an import runs
    cpu_ms_per_search: float = float("nan")  # in-process only: this process's CPU per search, one at a time
    recall: float = float("nan")

    @property
    def p50(self) -> float:
        return measure.percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return measure.percentile(self.latencies_ms, 99)

    @property
    def one_at_a_time_per_s(self) -> float:
        return 1000 * len(self.latencies_ms) / sum(self.latencies_ms)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--docs", type=int, default=100_000, help="collection size searched")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the GPU config and backend")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=40, help="searches each concurrent client sends")
    parser.add_argument("--ingest-batch", type=int, default=64, help="documents per /embed/ request")
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--mixed-docs", type=int, default=1024, help="documents imported in each mixed phase")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="file whose table is replaced")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    return parser.parse_args(argv)


def tenant_settings(persist_dir: Path, cache_dir: Path, quota: int) -> Settings:
    return load_settings(
        tenant_id="bench",
        plan="pro",
        max_docs=quota,
        persist_dir=persist_dir,
        model_cache_dir=cache_dir / "model-cache",
        embed_backend="auto",
    )


def base_folder(workload: Workload, settings: Settings, backend: EmbeddingBackend, cache_dir: Path) -> Path:
    """A chromadb folder holding the filler documents, built once and copied for each target."""
    hnsw = "-".join(f"{k}{v}" for k, v in sorted(HNSW_CONFIGURATION.items()))
    root = cache_dir / f"base-{backend.name.replace('/', '_')}-{len(workload.filler_ids)}-{hnsw}"
    done = root / "complete"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"writing {len(workload.filler_ids)} filler documents into {root} once ...", flush=True)
    store = TenantStore(settings.model_copy(update={"persist_dir": root}))
    for start in range(0, len(workload.filler_ids), 5000):
        end = start + 5000
        texts = workload.filler_texts[start:end]
        store.upsert(workload.filler_ids[start:end], texts, workload.filler_vectors[start:end], [{} for _ in texts])
    del store
    done.touch()
    return root


@dataclass
class RawEncode:
    """The bulk model alone in this process on the passages every target imports: the ingest's
    baseline, its rate over every call of `encode` together."""

    backend: EmbeddingBackend
    texts: int = 0
    seconds: float = 0.0
    vectors: list[np.ndarray] = field(default_factory=list)  # each call's, in order

    def encode(self, texts: list[str]) -> None:
        started = time.perf_counter()
        self.vectors.append(self.backend.encode(texts))
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)

    @property
    def per_s(self) -> float:
        return measure.mean_rate(self.texts, self.seconds)


def ingest_between_raw_encodes(target: Target, workload: Workload, args: argparse.Namespace, raw: RawEncode) -> Figures:
    """The target's start and import between two halves of the raw encode, the first before it
    starts, the second once it has stopped (so that none of its processes runs beside the model):
    the host's drift falls on the import and its baseline alike (the model's own speed moved by up
    to 10 % within minutes here; the baseline used to be read once, minutes before the import)."""
    texts = [passage.text for passage in workload.passages]
    half = len(texts) // 2
    raw.encode(texts[:half])
    figures = start_and_ingest(target, workload, args)
    target.stop()
    raw.encode(texts[half:])
    return figures


def start_and_ingest(target: Target, workload: Workload, args: argparse.Namespace) -> Figures:
    """Start-up, idle memory and the timed import; then a warm-up (connections, lazily loaded index).
    Each timed phase runs with nothing else in this process but its clients: memory under load is
    read in a phase of its own (memory_under_load)."""
    figures = Figures()
    print(f"[{target.name}] starting", flush=True)
    figures.start_s = target.start()
    if target.pid is not None:
        time.sleep(5)  # let start-up settle before calling it idle
        figures.idle_mb = measure.pss_mb(target.pid)
    print(f"[{target.name}] ingesting {len(workload.passages)} passages", flush=True)
    started = time.perf_counter()
    target.ingest(workload.passages, args.ingest_batch, args.ingest_clients)
    figures.ingest_per_s = measure.mean_rate(len(workload.passages), time.perf_counter() - started)
    warm_up(target, workload.queries)
    return figures


def warm_up(target: Target, queries: list[str]) -> None:
    """A few searches before any timed one: connections, the index chromadb loads at its first query."""
    search = target.make_search()
    for query in queries[:20]:
        search(query)


def one_client(targets: list[tuple[Target, Figures]], queries: list[str]) -> None:
    """Each target's searches one at a time, the queries sent in blocks that take turns between the
    targets, so that the host's drift (the same in-process search took 10.1 ms p50 in one run and
    14.6 in the next) falls on each alike: their ratio is what the table compares."""
    print(
        f"[{' / '.join(target.name for target, _ in targets)}] searching: {len(queries)} queries, 1 client, "
        "taking turns",
        flush=True,
    )
    searches = [target.make_search() for target, _ in targets]
    own_cpu_s = [0.0 for _ in targets]  # this process's CPU in each target's turns
    for start in range(0, len(queries), ONE_CLIENT_BLOCK):
        block = queries[start : start + ONE_CLIENT_BLOCK]
        for turn, ((target, figures), search) in enumerate(zip(targets, searches, strict=True)):
            service = target.pid if isinstance(target, Service) else None
            cpu_started = time.process_time()  # every thread of this process
            with cpu_use(service) as use:
                latencies, found = measure.latencies_ms(search, block)
            figures.latencies_ms += latencies
            figures.found += found
            figures.cpu_1 += use
            own_cpu_s[turn] += time.process_time() - cpu_started
    for (target, figures), cpu_s in zip(targets, own_cpu_s, strict=True):
        if isinstance(target, InProcess):  # in-process, this process's CPU is all a search costs
            figures.cpu_ms_per_search = 1000 * cpu_s / len(figures.latencies_ms)


def sixteen_clients(targets: list[tuple[Target, Figures]], workload: Workload, args: argparse.Namespace) -> None:
    """`args.clients` clients searching each target, in THROUGHPUT_WINDOWS windows a target that take
    turns between the targets, so that the host's drift falls on each alike (measured one target
    after the other, minutes apart, the service read 183.7 and 136.0 searches/s in two runs of the
    same code, Chroma's server 159.1 and 155.1). Each target runs alone in its windows: started for
    them and stopped after, since an idle service's Ray uses about 0.1 of the 2 cores, which the
    other's searches would lose. A target's figure is the median of its windows."""
    names = " / ".join(target.name for target, _ in targets)
    print(f"[{names}] searching: {args.clients} clients, {THROUGHPUT_WINDOWS} times each, taking turns", flush=True)
    rates: list[list[float]] = [[] for _ in targets]
    for _ in range(THROUGHPUT_WINDOWS):
        for (target, figures), target_rates in zip(targets, rates, strict=True):
            target.start()
            try:
                warm_up(target, workload.queries)
                with cpu_use(target.pid if isinstance(target, Service) else None) as use:
                    target_rates.append(
                        measure.throughput(target.make_search, workload.queries, args.clients, args.per_client)
                    )
            finally:
                target.stop()
            figures.cpu_16 += use
    for (_, figures), target_rates in zip(targets, rates, strict=True):
        figures.per_s_16 = statistics.median(target_rates)
        figures.searches_16 = THROUGHPUT_WINDOWS * args.clients * args.per_client


def searches_while_importing(target: Service, workload: Workload, args: argparse.Namespace) -> Mixed:
    print(f"[{target.name}] searching while {args.ingest_clients} clients import", flush=True)
    return searches_during_import(
        target.url, workload.passages, workload.queries, args.ingest_batch, args.ingest_clients, args.mixed_docs
    )


def memory_under_load(target: Target, workload: Workload, args: argparse.Namespace) -> tuple[float, float]:
    """The peak PSS (MB) while `args.clients` clients search and `args.ingest_clients` clients import
    LOAD_DOCUMENTS new passages, and the PSS once that work has settled (measure.IDLE_SETTLE_S): what
    a tenant's instance holds idle after use, which is what its container is sized for. A phase
    of its own because reading PSS is dear: about 50 CPU ms a reading of the service's processes
    (the kernel walks their page tables), so readings every half second during a timed phase took
    about 6 % from the 16 clients' searches/s, and from the service's alone (Chroma's one process
    costs little to read)."""
    print(f"[{target.name}] memory: {args.clients} clients search, {args.ingest_clients} import", flush=True)
    stop = threading.Event()

    def search_until_stopped(client: int) -> None:
        search = target.make_search()
        for n in itertools.count(client):
            if stop.is_set():
                return
            search(workload.queries[n % len(workload.queries)])

    with measure.peak_pss(target.pid) as peak, ThreadPoolExecutor(args.clients) as pool:
        searching = [pool.submit(search_until_stopped, client) for client in range(args.clients)]
        passages = fresh_passages(workload.passages, LOAD_DOCUMENTS, "load")
        try:
            target.ingest(passages, args.ingest_batch, args.ingest_clients)
        finally:
            stop.set()
        for client in searching:
            client.result()
    if target.pid is None:
        return peak[0], float("nan")
    time.sleep(measure.IDLE_SETTLE_S)
    return peak[0], measure.pss_mb(target.pid)


def ef_search_sweep(
    settings: Settings, query_vectors: np.ndarray, exact: list[list[str]]
) -> list[tuple[int, float, float]]:
    """Recall@10 and store-only query time for several HNSW search breadths, on the same index."""
    rows = []
    for ef in EF_SEARCH_SWEEP:
        collection = _open(settings)
        collection.modify(configuration={"hnsw": {"ef_search": ef}})
        # chromadb keeps one system per folder per process, with the index as first loaded:
        # drop it so the index is loaded again under the new search breadth.
        SharedSystemClient.clear_system_cache()
        collection = _open(settings)
        assert collection.configuration["hnsw"]["ef_search"] == ef
        times, found = [], []
        for vector in query_vectors:
            started = time.perf_counter()
            found.append(collection.query(query_embeddings=vector[None, :], n_results=TOP_K, include=[])["ids"][0])
            times.append((time.perf_counter() - started) * 1000)
        rows.append((ef, measure.recall_at(found, exact, TOP_K), measure.percentile(times, 50)))
    return rows


def _open(settings: Settings) -> Any:
    client = chromadb.PersistentClient(path=str(settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False))
    return client.get_collection(settings.collection_name, embedding_function=None)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline and np.isfinite(baseline) and np.isfinite(value) else "—"


def against(value: float, target: float) -> str:
    """A ratio beside its target: 2 decimals, or 3 where 2 would round it onto the target and hide
    which side it is on (0.847x is not 0.85x)."""
    return f"{value:.3f}x" if round(value, 2) == target != value else f"{value:.2f}x"


def cell(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if np.isfinite(value) else "—"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(
    service: Figures,
    inproc: Figures,
    chroma: Figures,
    encode_per_s: float,
    sweep: list[tuple[int, float, float]],
    context: str,
) -> str:
    ingest_ratio = service.ingest_per_s / encode_per_s
    p50_ratio = service.p50 / inproc.p50
    vs_chroma = service.per_s_16 / chroma.per_s_16
    vs_inproc = service.per_s_16 / inproc.one_at_a_time_per_s
    rows = [
        "| figure | service | in-process limit | Chroma server + client embedding | service vs baseline "
        "| target | met |",
        "|---|---|---|---|---|---|---|",
        f"| ingest, documents/s | {cell(service.ingest_per_s)} | {cell(inproc.ingest_per_s)} | "
        f"{cell(chroma.ingest_per_s)} | {against(ingest_ratio, 0.85)} raw encode ({cell(encode_per_s)}/s) | ≥ 0.85x | "
        f"{verdict(ingest_ratio >= 0.85)} |",
        f"| search p50, 1 client, ms | {cell(service.p50)} | {cell(inproc.p50)} | {cell(chroma.p50)} | "
        f"{against(p50_ratio, 1.5)} in-process | ≤ 1.5x | {verdict(p50_ratio <= 1.5)} |",
        f"| search p99, 1 client, ms | {cell(service.p99)} | {cell(inproc.p99)} | {cell(chroma.p99)} | "
        f"{ratio(service.p99, inproc.p99)} in-process | — | — |",
        f"| searches/s, 16 clients | {cell(service.per_s_16)} | {cell(inproc.one_at_a_time_per_s)} (one at a time) | "
        f"{cell(chroma.per_s_16)} | {against(vs_chroma, 1.0)} Chroma, {against(vs_inproc, 1.0)} in-process | "
        "≥ 1.0x (aim 2.0x), ≥ 1.0x | "
        f"{verdict(vs_chroma >= 1.0 and vs_inproc >= 1.0)} |",
        *cpu_rows(service, inproc),
        *mixed_rows(service.mixed),
        f"| start to first 200, s | {cell(service.start_s)} | — | {cell(chroma.start_s)} | — | ≤ 20 s | "
        f"{verdict(service.start_s <= 20)} |",
        f"| memory idle after start, MB (PSS, all processes) | {cell(service.idle_mb, 0)} | — | "
        f"{cell(chroma.idle_mb, 0)} (server only) | — | ≤ 1,500 | {verdict(service.idle_mb <= 1500)} |",
        f"| memory under load, MB (PSS) | {cell(service.load_mb, 0)} | — | {cell(chroma.load_mb, 0)} (server only) | "
        f"— | ≤ 2,500 | {verdict(service.load_mb <= 2500)} |",
        f"| memory idle after the run, MB (PSS) | {cell(service.idle_after_mb, 0)} | — | "
        f"{cell(chroma.idle_after_mb, 0)} (server only) | — | ≤ 1,500 | {verdict(service.idle_after_mb <= 1500)} |",
        f"| recall@10 vs exact search | {service.recall:.3f} | {inproc.recall:.3f} | {chroma.recall:.3f} | — | "
        f"≥ 0.98 | {verdict(service.recall >= 0.98)} |",
    ]
    sweep_rows = [
        "| HNSW ef_search | recall@10 | store query p50, ms |",
        "|---|---|---|",
        *[
            f"| {ef}{' (shipped)' if ef == HNSW_CONFIGURATION['ef_search'] else ''}"
            f"{' (chromadb default)' if ef == 100 else ''} | {recall:.3f} | {ms:.2f} |"
            for ef, recall, ms in sweep
        ],
    ]
    return "\n".join([context, "", *rows, "", *sweep_rows])


def cpu_rows(service: Figures, inproc: Figures) -> list[str]:
    """Cores the service used while 16 clients searched, and the CPU each search cost, by process,
    with one client and with 16, against the CPU of one search in-process measured in the same run
    (CPU seconds per unit of work vary from day to day on a shared host: the ratio is what compares
    across runs). One client's searches share no model run and no store call: what the service adds
    to a search shows there whole."""
    if not service.cpu_16.seconds:
        return []
    return [
        f"| cores used, 16 clients (of {os.cpu_count()}) | {service.cpu_16.cores:.2f} | — | — | — | — | — |",
        *(
            cpu_per_search_row(label, use, searches, inproc.cpu_ms_per_search)
            for label, use, searches in (
                ("1 client", service.cpu_1, len(service.latencies_ms)),
                ("16 clients", service.cpu_16, service.searches_16),
            )
            if use.seconds
        ),
    ]


def cpu_per_search_row(label: str, use: CpuUse, searches: int, inproc_ms: float) -> str:
    per_search = use.ms_per(searches)
    total = sum(per_search.values())
    parts = ", ".join(f"{name} {per_search[name]:.1f}" for name in (*DEPLOYMENTS, HAPROXY, RAY))
    return (
        f"| CPU ms per search, {label} | {total:.1f}: {parts} | {cell(inproc_ms)} (one at a time) "
        f"| — | {ratio(total, inproc_ms)} in-process | — | — |"
    )


def mixed_rows(found: Mixed | None) -> list[str]:
    """One client searching back to back while the import clients post batches of passages."""
    if found is None:
        return []
    p50, p99 = (measure.percentile(found.latencies_ms, q) if found.latencies_ms else float("nan") for q in (50, 99))
    searches_ok = not found.errors and p50 <= 100 and p99 <= 300
    imports_ok = found.import_ratio >= 0.8 and not found.import_errors
    refused = (
        f" ({len(found.import_errors)} requests failed: {sorted(set(found.import_errors))})"
        if found.import_errors
        else ""
    )
    searched = len(found.errors) + len(found.latencies_ms)
    return [
        f"| search under import, p50 / p99 ms (errors) | {cell(p50)} / {cell(p99)} ({len(found.errors)} of "
        f"{searched}) | — | — | — | 0 errors, ≤ 100 / ≤ 300 | {verdict(searches_ok)} |",
        f"| import under search, documents/s | {cell(found.mixed_per_s)} | — | — | "
        f"{against(found.import_ratio, 0.8)} import alone ({cell(found.alone_per_s)}/s){refused} | ≥ 0.8x | "
        f"{verdict(imports_ok)} |",
    ]


def machine() -> str:
    cpu = "unknown CPU"  # psutil does not name the CPU
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = psutil.virtual_memory().total
    return f"{cpu}, {os.cpu_count()} cores, {memory / 2**30:.0f} GiB, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.eval_dir / "scifact" / "corpus.jsonl").is_file():
        print(f"no SciFact corpus under {args.eval_dir} (pass --eval-dir)", file=sys.stderr)
        return 2
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    # Room for the collection, both imports of the mixed scenario and the import under load.
    settings = tenant_settings(
        args.cache_dir / "unused", args.cache_dir, args.docs + 2 * args.mixed_docs + LOAD_DOCUMENTS
    )
    # As the service runs them: a model session for queries, another for documents.
    backend = load_backend(settings, gpu=args.device == "cuda")
    bulk = load_backend(settings, gpu=args.device == "cuda")
    workload = load_workload(args.eval_dir, args.docs, bulk, args.cache_dir)
    base = base_folder(workload, settings, backend, args.cache_dir)

    raw = RawEncode(bulk)
    config = "serve_config.gpu.yaml" if args.device == "cuda" else "serve_config.yaml"
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)

        def copy_for(name: str) -> Settings:
            shutil.copytree(base, work / name)
            return settings.model_copy(update={"persist_dir": work / name})

        inproc_target = InProcess(copy_for("in-process"), backend, bulk)
        service_target = Service(copy_for("service"), config, work, {})
        chroma_target = ChromaServer(copy_for("chroma"), backend, bulk, free_port(), work)
        # Each server is up only while it is measured (and stopped when it is not), so that no phase
        # runs beside the other's idle processes; the in-process limit costs nothing idle.
        try:
            service = ingest_between_raw_encodes(service_target, workload, args, raw)
            print(f"raw encode: {raw.per_s:.1f} passages/s", flush=True)
            inproc = start_and_ingest(inproc_target, workload, args)
            service_target.start()
            warm_up(service_target, workload.queries)
            one_client([(inproc_target, inproc), (service_target, service)], workload.queries)
            service_target.stop()
            chroma = start_and_ingest(chroma_target, workload, args)
            one_client([(chroma_target, chroma)], workload.queries)
            chroma_target.stop()
            # Before the phases that import more, so both collections hold the same documents.
            sixteen_clients([(service_target, service), (chroma_target, chroma)], workload, args)
            service_target.start()
            warm_up(service_target, workload.queries)
            service.mixed = searches_while_importing(service_target, workload, args)
            service.load_mb, service.idle_after_mb = memory_under_load(service_target, workload, args)
            service_target.stop()
            chroma_target.start()
            chroma.load_mb, chroma.idle_after_mb = memory_under_load(chroma_target, workload, args)
        finally:
            service_target.stop()
            chroma_target.stop()
        query_vectors = backend.encode(workload.queries)
        stored = workload.filler_ids + [p.id for p in workload.passages]
        exact = measure.exact_top_ids(
            np.concatenate([workload.filler_vectors, *raw.vectors]), stored, query_vectors, TOP_K
        )
        sweep = ef_search_sweep(inproc_target.settings, query_vectors, exact)
        inproc_target.stop()

    for figures in (service, inproc, chroma):
        figures.recall = measure.recall_at(figures.found, exact, TOP_K)
    context = (
        f"Latest `make bench` ({datetime.date.today().isoformat()}, device {args.device}): {machine()}; "
        f"{100 * service.cpu_16.steal:.0f} % of the machine's CPU time stolen by its host while 16 clients searched. "
        f"Collection of {args.docs:,} documents ({len(workload.passages):,} SciFact passages ingested through "
        f"each target, the rest filler), {len(workload.queries)} SciFact test queries, top_k {TOP_K}, "
        f"embedding backend `{backend.name}`."
    )
    table = render(service, inproc, chroma, raw.per_s, sweep, context)
    print("\n" + table + "\n")
    (args.cache_dir / "latest.md").write_text(table + "\n")
    if not args.no_readme:
        replace_section(args.readme, "bench", table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
