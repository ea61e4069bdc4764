"""`make bench-backends` / `python -m bench.backends`: the embedding backends' speed on this machine.

Each backend (default: onnx, onnx-int8) embeds the same SciFact passages as the Embedder embeds an
import (`bulk`: a sub-batch per core) and the same test queries one at a time as a search does, in
one run, so the figures are ratios against the first backend rather than readings of a noisy
machine. Quality is `make eval`'s business (STS-B and SciFact per backend).
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
from deployments.embedding.models import load_backend


def cpu_s() -> float:
    """CPU seconds of this process, all threads."""
    times = os.times()
    return times.user + times.system


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--backends", default="onnx,onnx-int8", help="comma-separated; the first is the baseline")
    parser.add_argument("--passages", type=int, default=1024)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="keeps the ONNX exports")
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
        bulk, query = load_backend(settings, bulk=True), load_backend(settings)
        bulk.encode(texts[:64])  # warm-up: first runs allocate
        started = time.perf_counter()
        bulk.encode(texts)
        per_s = len(texts) / (time.perf_counter() - started)
        latencies, cpu_started = [], cpu_s()
        for text in queries:
            started = time.perf_counter()
            query.encode([text])
            latencies.append(1000 * (time.perf_counter() - started))
        cpu_ms = 1000 * (cpu_s() - cpu_started) / len(queries)
        rows.append((name, per_s, measure.percentile(latencies, 50), cpu_ms))
        print(f"{name}: {per_s:.1f} passages/s, query p50 {rows[-1][2]:.2f} ms, {cpu_ms:.2f} CPU ms", flush=True)
    base = rows[0]
    print(
        f"\n{len(texts)} SciFact passages (bulk, every core), {len(queries)} test queries one at a time\n\n"
        "| backend | passages/s | query p50, ms | CPU ms per query | vs " + base[0] + " |\n|---|---|---|---|---|"
    )
    for name, per_s, p50, cpu_ms in rows:
        print(
            f"| {name} | {per_s:.1f} | {p50:.2f} | {cpu_ms:.2f} | "
            f"{per_s / base[1]:.2f}x passages/s, {base[3] / cpu_ms:.2f}x queries per CPU second |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
