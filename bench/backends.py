"""`make bench-backends` / `python -m bench.backends`: the embedding backends' speed on this machine.

Each backend (default: onnx, onnx-int8) embeds the same SciFact passages as the Embedder embeds an
import (runs on every core), the same test queries one at a time as a lone search does, and
16 at a time as a busy Ingress's search batch does, in one run, so the figures are ratios against
the first row rather than readings of a noisy machine. Each backend runs as the service loads it
(`onnx`: runs of at most 256 tokens; `onnx-int8`: one text a run) and under each `--token-budgets`
(tokens per model run; 8,192 by default, about runs of 32 passages as the service ran them until
2026-12-05). Quality is `make eval`'s business.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from bench import measure
from bench.instance import REPO
from bench.workload import read_scifact
from deployments.core.config import load_settings
from deployments.embedding.backends import EmbeddingBackend, OnnxBackend
from deployments.embedding.models import load_backend

QUERY_BATCH = 16


def cpu_s() -> float:
    """CPU seconds of this process, all threads."""
    times = os.times()
    return times.user + times.system


def measure_backend(
    backend: EmbeddingBackend, texts: list[str], queries: list[str]
) -> tuple[float, float, float, float]:
    """Passages/s in bulk; a lone query's p50 ms and CPU ms; CPU ms per query, QUERY_BATCH at a time."""
    backend.encode(texts[:64])  # warm-up: first runs allocate
    started = time.perf_counter()
    backend.encode(texts)
    per_s = len(texts) / (time.perf_counter() - started)
    latencies, cpu_started = [], cpu_s()
    for text in queries:
        started = time.perf_counter()
        backend.encode([text])
        latencies.append(1000 * (time.perf_counter() - started))
    cpu_ms = 1000 * (cpu_s() - cpu_started) / len(queries)
    cpu_started = cpu_s()
    for first in range(0, len(queries), QUERY_BATCH):
        backend.encode(queries[first : first + QUERY_BATCH])
    batched_cpu_ms = 1000 * (cpu_s() - cpu_started) / len(queries)
    return per_s, measure.percentile(latencies, 50), cpu_ms, batched_cpu_ms


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--backends", default="onnx,onnx-int8", help="comma-separated; the first is the baseline")
    parser.add_argument("--passages", type=int, default=1024)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="keeps the ONNX exports")
    parser.add_argument(
        "--token-budgets",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[8_192],
        help="comma-separated tokens per model run, measured besides each backend's own (load_backend's)",
    )
    args = parser.parse_args(argv)
    if not (args.eval_dir / "scifact" / "corpus.jsonl").is_file():
        print(f"no SciFact corpus under {args.eval_dir} (pass --eval-dir)", file=sys.stderr)
        return 2
    passages, queries = read_scifact(args.eval_dir / "scifact")
    texts = [passage.text for passage in passages[: args.passages]]
    rows = []
    for name in args.backends.split(","):
        settings = load_settings(
            persist_dir=args.cache_dir / "unused", model_cache_dir=args.cache_dir / "model-cache", embed_backend=name
        )
        backend = load_backend(settings)
        assert isinstance(backend, OnnxBackend), f"{name} is not an ONNX backend"
        for budget in [backend.token_budget, *args.token_budgets]:
            backend.token_budget = budget
            runs = f"{budget} tokens a run" if budget else "one text a run"
            rows.append((f"{name}, {runs}", *measure_backend(backend, texts, queries)))
            print(f"{rows[-1][0]}: " + ", ".join(f"{value:.2f}" for value in rows[-1][1:]), flush=True)
    base = rows[0]
    print(
        f"\n{len(texts)} SciFact passages (bulk, every core), {len(queries)} test queries one at a time and "
        f"{QUERY_BATCH} at a time\n\n| backend | passages/s | query p50, ms | CPU ms per query | CPU ms per query, "
        f"{QUERY_BATCH} at a time | vs {base[0]} |\n|---|---|---|---|---|---|"
    )
    for label, per_s, p50, cpu_ms, batched_cpu_ms in rows:
        print(
            f"| {label} | {per_s:.1f} | {p50:.2f} | {cpu_ms:.2f} | {batched_cpu_ms:.2f} | "
            f"{per_s / base[1]:.2f}x passages/s, {base[3] / cpu_ms:.2f}x lone queries and "
            f"{base[4] / batched_cpu_ms:.2f}x batched queries per CPU second |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
