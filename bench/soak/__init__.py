"""`make soak` / `python -m bench.soak`: many clients mixing /embed/, /search/ and /delete/ for a fixed
time, then proof that nothing was lost, nothing came back, no request failed on the server's side
and memory stayed flat. Prints one markdown table; exits 1 when a verdict fails.

Without --url it starts its own service (the shipped launcher and config, an API key, a temporary
data folder) and stops it at the end; with --url it soaks a running instance and then deletes
what it stored (unless --keep). The short version runs in the e2e suite (tests/e2e/test_soak.py).

Why the checks are sound: every client writes only ids from its own slice of the id pool and has
one request in flight at a time, so its ledger (acknowledged upserts minus acknowledged deletes)
is exactly what the store must hold for those ids. A request whose outcome is unknown (5xx,
timeout) marks its ids uncertain; they are settled by an acknowledged delete before the check.

The modules, in the order a soak uses them: config (SoakConfig, the mix, the limits), texts (what
is stored), connection, health (/healthz/ before and after), records (Stats, Ledger), load (the
clients), memory (the PSS sampler), verify (settle, check, clean up), report, run (run_soak), and
__main__ (the command line, which alone imports what starts a service of its own).
"""

from bench.soak.config import MEMORY_GROWTH_SLACK_MB, SoakConfig
from bench.soak.report import Report
from bench.soak.run import run_soak

__all__ = ["MEMORY_GROWTH_SLACK_MB", "Report", "SoakConfig", "run_soak"]
