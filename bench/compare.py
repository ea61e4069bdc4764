"""`make bench-compare REVS="A B"` / `python -m bench.compare A B`: did a change make searching
dearer? Revisions side by side, each started as in production (`serve run`, the real model, real
chromadb), alternated round by round in one run so the host's drift over the run falls on all alike.

Figures of two `make bench` runs on different days do not compare: on a shared host the same work
costs up to a third more CPU seconds when other guests are busy (the steal column says how busy).
Each revision is checked out in a temporary git worktree and run with this checkout's environment;
`.` is this checkout as it is, uncommitted changes included. A revision may carry settings for its
service after a colon (`.:QUERY_BACKEND=onnx-int8`, several joined by commas), so one revision's
settings compare too. In each round, for each revision: a
new tenant, `--passages` SciFact passages imported, one client's search p50, then `--clients`
clients searching, with the CPU each process used. Prints medians and ratios to the first revision.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import measure
from bench.cpu import DEPLOYMENTS, HAPROXY, RAY, cpu_use
from bench.instance import REPO, ServeInstance
from bench.targets import batches, http_search
from bench.workload import Passage, read_scifact

WARM_UP_QUERIES = 20
TIMED_QUERIES = 100
CURRENT = "."


@dataclass
class Run:
    p50_ms: float
    per_s: float
    cpu_ms: dict[str, float]  # per search, by role
    steal: float


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument(
        "revisions",
        nargs="+",
        help=f"git revisions; {CURRENT!r}: this checkout as it is; REV:NAME=VALUE,...: with those settings",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--passages", type=int, default=128, help="SciFact passages imported into each tenant")
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache" / "compare")
    return parser.parse_args(argv)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def settings_of(spec: str) -> tuple[str, dict[str, str]]:
    """`REV:NAME=VALUE,...` as the revision and the settings its service starts with."""
    revision, _, pairs = spec.partition(":")
    return revision, dict(pair.split("=", 1) for pair in pairs.split(",") if pair)


@contextmanager
def checkouts(revisions: list[str], scratch: Path) -> Iterator[dict[str, Path]]:
    """A folder of code for each revision: a detached worktree (one per revision, whatever its
    settings), removed afterwards."""
    trees: dict[str, Path] = {}
    try:
        for revision in dict.fromkeys(revisions):
            if revision == CURRENT:
                trees[revision] = REPO
                continue
            tree = scratch / git("rev-parse", "--short", revision)
            git("worktree", "add", "--detach", str(tree), revision)
            trees[revision] = tree
        yield trees
    finally:
        for tree in trees.values():
            if tree != REPO:
                git("worktree", "remove", "--force", str(tree))


def measure_once(
    tree: Path,
    cache: Path,
    settings: dict[str, str],
    args: argparse.Namespace,
    passages: list[Passage],
    queries: list[str],
) -> Run:
    with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
        work = Path(scratch)
        env = {"TENANT_ID": "compare", "PLAN": "pro", "PERSIST_DIR": str(work / "data"), "MODEL_CACHE_DIR": str(cache)}
        env |= settings
        instance = ServeInstance(work, env, repo=tree)
        instance.start()
        try:
            assert instance.process is not None
            with httpx.Client(base_url=instance.url, timeout=600) as client:
                for batch in batches(passages, 64):
                    documents = [{"id": passage.id, "text": passage.text} for passage in batch]
                    client.post("/embed/", json={"documents": documents}).raise_for_status()

            def make_search() -> measure.SearchFn:
                return http_search(instance.url)

            search = make_search()
            for query in queries[:WARM_UP_QUERIES]:
                search(query)
            latencies, _ = measure.latencies_ms(search, queries[:TIMED_QUERIES])
            with cpu_use(instance.process.pid) as use:
                per_s = measure.throughput(make_search, queries, args.clients, args.per_client)
            return Run(measure.percentile(latencies, 50), per_s, use.ms_per(args.clients * args.per_client), use.steal)
        finally:
            instance.stop()


def render(revisions: list[str], runs: dict[str, list[Run]]) -> str:
    roles = (*DEPLOYMENTS, HAPROXY, RAY)
    header = " | ".join(roles)
    rows = [
        f"| revision | search p50, 1 client, ms | searches/s | CPU ms per search | {header} | steal % | CPU vs first |",
        "|---|---|---|---|" + "---|" * len(roles) + "---|---|",
    ]
    first_cpu = 0.0
    for revision in revisions:
        found = runs[revision]
        cpu = statistics.median(sum(run.cpu_ms.values()) for run in found)
        first_cpu = first_cpu or cpu
        by_role = " | ".join(f"{statistics.median(run.cpu_ms[role] for run in found):.1f}" for role in roles)
        rows.append(
            f"| {revision} | {statistics.median(run.p50_ms for run in found):.1f} "
            f"| {statistics.median(run.per_s for run in found):.1f} | {cpu:.1f} | {by_role} "
            f"| {100 * statistics.median(run.steal for run in found):.1f} | {cpu / first_cpu:.2f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.eval_dir / "scifact" / "corpus.jsonl").is_file():
        print(f"no SciFact corpus under {args.eval_dir} (pass --eval-dir)", file=sys.stderr)
        return 2
    corpus, queries = read_scifact(args.eval_dir / "scifact")
    passages = corpus[: args.passages]
    runs: dict[str, list[Run]] = {revision: [] for revision in args.revisions}
    scratch = tempfile.TemporaryDirectory(prefix="compare-trees-")
    specs = {spec: settings_of(spec) for spec in args.revisions}
    with scratch, checkouts([revision for revision, _ in specs.values()], Path(scratch.name)) as trees:
        for round_ in range(1, args.rounds + 1):
            for spec, (revision, settings) in specs.items():
                tree = trees[revision]
                # Each revision's own ONNX export (the export's code may differ), kept for the next run.
                cache = args.cache_dir / (git("rev-parse", "HEAD") if tree == REPO else tree.name) / "model-cache"
                run = measure_once(tree, cache, settings, args, passages, queries)
                runs[spec].append(run)
                print(
                    f"round {round_} {spec}: p50 {run.p50_ms:.1f} ms, {run.per_s:.1f}/s, "
                    f"CPU {sum(run.cpu_ms.values()):.1f} ms per search, steal {100 * run.steal:.1f} %",
                    flush=True,
                )
    print("\n" + render(args.revisions, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
