"""The soak's outcome: the verdicts it passes or fails, and the markdown tables it prints."""

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bench import measure
from bench.soak.config import ANN_MISS_TOLERANCE, MEMORY_GROWTH_RATIO, MEMORY_GROWTH_SLACK_MB, MIX, ROUTES, SoakConfig
from bench.soak.records import Stats
from bench.soak.verify import Verification


@dataclass
class Report:
    """One soak's results: what the clients saw, what the store held afterwards, and memory."""

    config: SoakConfig
    tenant_id: str  # as /healthz/ said at the start
    elapsed_s: float
    stats: Stats
    verification: Verification
    memory: list[tuple[float, float]]

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(n for (_, status), n in self.stats.statuses.items() if predicate(status))

    @property
    def server_errors(self) -> int:
        """5xx and requests that got no answer at all (timeouts, dropped connections)."""
        return self.count(lambda status: not status.isdigit() or int(status) >= 500)

    @property
    def unexpected_4xx(self) -> int:
        """The soak sends only valid requests within the quota: any 4xx but 429 is a bug."""
        return self.count(lambda status: status.isdigit() and 400 <= int(status) < 500 and status != "429")

    @property
    def throttled(self) -> int:
        return self.count(lambda status: status == "429")

    @property
    def consistent_reads(self) -> bool:
        """No stale text and no wrong delete count, ever. A stored text not in its own top 10 is
        allowed rarely: the index is approximate, and heavy update churn (the soak rewrites each id
        every few seconds) costs chromadb's HNSW graph some recall; the document is still stored,
        as the end check's count shows."""
        s = self.stats
        misses_ok = s.own_read_misses <= ANN_MISS_TOLERANCE * s.own_reads
        return misses_ok and s.stale_texts == 0 and s.delete_count_mismatches == 0

    @property
    def memory_start_mb(self) -> float:
        return self.memory[0][1] if self.memory else float("nan")

    @property
    def memory_end_mb(self) -> float:
        return self.memory[-1][1] if self.memory else float("nan")

    @property
    def memory_flat(self) -> bool | None:
        """None when not measured (a --url instance without --pid)."""
        if len(self.memory) < 2:
            return None
        return self.memory_end_mb <= self.memory_start_mb * MEMORY_GROWTH_RATIO + MEMORY_GROWTH_SLACK_MB

    @property
    def verdicts(self) -> dict[str, bool]:
        verdicts = {
            "zero 5xx": self.server_errors == 0,
            "zero lost documents": self.verification.zero_lost,
            "zero extra documents": self.verification.zero_extra,
            "reads see acknowledged writes": self.consistent_reads,
            "zero unexpected 4xx": self.unexpected_4xx == 0,
        }
        if self.memory_flat is not None:
            verdicts["memory flat"] = self.memory_flat
        return verdicts

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    def render(self) -> str:
        return "\n".join([self._context(), "", *self._route_rows(), "", *self._check_rows()])

    def _context(self) -> str:
        c = self.config
        return (
            f"Soak of {c.url} ({datetime.date.today().isoformat()}): {c.clients} clients for {self.elapsed_s:.0f} s "
            f"(memory start after {c.warmup_s:.0f} s warm-up), id pool {c.per_client * c.clients} "
            f"({c.per_client} per client), at most {c.max_requests:,} requests per client, "
            f"mix embed:search:delete {MIX['embed']}:{MIX['search']}:{MIX['delete']}."
        )

    def _route_rows(self) -> list[str]:
        rows = [
            "| route | requests | per s | 2xx | 429 | other 4xx | 5xx + no answer | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for route in (*ROUTES, "all"):
            statuses: Counter[str] = Counter()
            for (sent_to, status), n in self.stats.statuses.items():
                if route in ("all", sent_to):
                    statuses[status] += n
            times = (
                self.stats.latencies_ms[route]
                if route != "all"
                else [t for ts in self.stats.latencies_ms.values() for t in ts]
            )
            done = sum(statuses.values())
            ok = sum(n for s, n in statuses.items() if s.startswith("2"))
            throttled = statuses.get("429", 0)
            other_4xx = sum(n for s, n in statuses.items() if s.startswith("4") and s != "429")
            rows.append(
                f"| {route} | {done:,} | {done / self.elapsed_s:.1f} | {ok:,} | {throttled:,} | {other_4xx:,} | "
                f"{done - ok - throttled - other_4xx:,} | {_ms(times, 50)} | {_ms(times, 99)} |"
            )
        return rows

    def _check_rows(self) -> list[str]:
        v, s = self.verification, self.stats
        errors = ", ".join(
            f"{route} {status} x{n}" for (route, status), n in sorted(self.stats.statuses.items()) if status[0] != "2"
        )
        flat = self.memory_flat
        rows = [
            "| check | value | target | met |",
            "|---|---|---|---|",
            f"| non-2xx by status (429 included) | {errors or 'none'} | — | — |",
            f"| 5xx and unanswered requests | {self.server_errors} | 0 | {_yes(self.server_errors == 0)} |",
            f"| unexpected 4xx (not 429) | {self.unexpected_4xx} | 0 | {_yes(self.unexpected_4xx == 0)} |",
            f"| throttled (429), waited out | {self.throttled} ({s.throttled_wait_s:.1f} s) | — | — |",
            f"| documents: ledgers / /healthz/ count | {v.expected:,} / {v.counted if v.counted is not None else '—'} "
            f"| equal | {_yes(v.shortfall == 0)} |",
            f"| lost: stored ids their text did not find, of {v.searched} searched (+ stale text) "
            f"| {len(v.search_misses)} (+ {len(v.stale)}) | 0 | {_yes(v.zero_lost)} |",
            f"| extra: deleted ids found again (+ unsettled) | {len(v.resurrected)} (+ {len(v.unsettled)}) | 0 "
            f"| {_yes(v.zero_extra)} |",
            f"| during the load: own text not in its top 10 (of {s.own_reads:,}) / stale / wrong `deleted` | "
            f"{s.own_read_misses} / {s.stale_texts} / {s.delete_count_mismatches} | "
            f"≤ {ANN_MISS_TOLERANCE:.0%} / 0 / 0 | {_yes(self.consistent_reads)} |",
            f"| memory PSS start / end, MB | {_mb(self.memory_start_mb)} / {_mb(self.memory_end_mb)} | end ≤ start x "
            f"{MEMORY_GROWTH_RATIO:.2f} + {MEMORY_GROWTH_SLACK_MB:.0f} | {'—' if flat is None else _yes(flat)} |",
            f"| memory trend, MB every {self.config.sample_every_s:g} s | {self._trend()} | — | — |",
        ]
        return rows

    def _trend(self) -> str:
        if len(self.memory) < 2:
            return "not measured"
        return " → ".join(f"{mb:,.0f}" for _, mb in self.memory)


def _ms(times: list[float], q: float) -> str:
    return f"{measure.percentile(times, q):,.1f}" if times else "—"


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value == value else "—"  # NaN: not measured


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"
