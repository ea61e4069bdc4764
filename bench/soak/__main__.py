"""The command line of `make soak`: soak a running instance (--url) or one started for the run."""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.instance import REPO
from bench.soak.config import SoakConfig
from bench.soak.run import run_soak
from bench.targets import own_service

DESCRIPTION = "Soak the service: many clients mixing embed, search and delete; verify nothing was lost."


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=DESCRIPTION)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pool", type=int, default=800, help="ids in play across all clients (under the quota)")
    parser.add_argument("--max-requests", type=int, default=5_000, help="per client")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before memory 'start'")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="soak this running instance instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="with --url (default: $API_KEY)")
    parser.add_argument("--pid", type=int, help="with --url: the launcher's pid, to measure memory")
    parser.add_argument("--keep", action="store_true", help="with --url: leave the soak's documents stored")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="keeps the ONNX export")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    options: dict[str, Any] = {
        "duration_s": args.duration,
        "clients": args.clients,
        "pool": args.pool,
        "max_requests": args.max_requests,
        "warmup_s": args.warmup,
        "sample_every_s": args.sample_every,
        "seed": args.seed,
    }
    if args.url:
        report = run_soak(SoakConfig(url=args.url, api_key=args.api_key, **options), args.pid, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
            quota = max(10_000, 2 * args.pool)
            with own_service(Path(scratch), args.cache_dir, quota, tenant_id="soak") as (service, api_key):
                report = run_soak(SoakConfig(url=service.url, api_key=api_key, **options), service.pid)
    print("\n" + report.render() + "\n")
    failed = [name for name, ok in report.verdicts.items() if not ok]
    print("FAILED: " + ", ".join(failed) if failed else "all verdicts met", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
