"""The report's warmer: in the background, every running experiment's ended hours are aggregated into the
report's cache (`prompt_report_hours`) soon after they end, and again after late data changed their stamps, so
that a report reads raw only the hour under way.

It runs in each prompts API process (`api.create_app`'s lifespan, `LLMOPS_PROMPTS_REPORT_WARMER`, every
`LLMOPS_PROMPTS_REPORT_WARMER_INTERVAL_S`). Several processes share the work safely: one takes a (tenant,
prompt, unit) at a time under a Postgres advisory lock (`store.report_hours.warming`; the others skip it that
round), and what it writes replaces a stretch whole (a report aggregating the same hour at the same time leaves
one copy). `targets` is pure; `ReportWarmer` loops on its clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from llmops_prompts.experiments import MAX_WINDOW
from llmops_prompts.rollup import SETTLE
from llmops_prompts.store import calls
from llmops_prompts.store import experiments as experiment_store
from llmops_shared.clock import Clock

log = logging.getLogger("llmops_prompts.warmer")


@dataclass(frozen=True)
class Target:
    """[start, end) of one tenant's prompt and unit to keep warm: from its running experiments' earliest start to
    the last whole hour that has settled."""

    tenant_id: str
    prompt: str
    unit: str
    start: datetime
    end: datetime


def targets(running: Iterable[Mapping[str, Any]], now: datetime) -> list[Target]:
    """The windows to warm for these running experiments (rows of `store.experiments.all_running`) at `now`: per
    (tenant, prompt, unit), the earliest start (the cache is per prompt and unit, not per experiment; another
    experiment's first part of an hour is aggregated by its first report) to the start of the hour under way
    (settled: `rollup.SETTLE`), at most `MAX_WINDOW` back (a report covers no more)."""
    end = (now - SETTLE).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    earliest: dict[tuple[str, str, str], datetime] = {}
    for e in running:
        if e["started_at"] is None:
            continue
        key = (e["tenant_id"], e["prompt_name"], e["unit"])
        earliest[key] = min(earliest.get(key, e["started_at"]), e["started_at"])
    return [Target(tenant, prompt, unit, max(start, end - MAX_WINDOW), end)
            for (tenant, prompt, unit), start in sorted(earliest.items()) if start < end]


@dataclass
class Pass:
    """What one pass did: stretches aggregated, targets skipped (another process held them) and failed."""

    aggregated: int = 0
    skipped: int = 0
    failed: int = 0


class ReportWarmer:
    """Warms every running experiment (of every tenant, or of `tenants`) each `interval_s`, "now" from `clock`."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, interval_s: float,
                 tenants: list[str] | None = None) -> None:
        self.pool, self.clock, self.interval_s, self.tenants = pool, clock, interval_s, tenants

    async def warm_once(self) -> Pass:
        """One pass over the running experiments; a target that fails is logged and left to the next pass."""
        now = self.clock()
        done = Pass()
        for t in targets(await experiment_store.all_running(self.pool, tenants=self.tenants), now):
            try:
                n = await calls.warm(self.pool, tenant_id=t.tenant_id, prompt=t.prompt, unit=t.unit, start=t.start,
                                     end=t.end, now=now)
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                done.failed += 1
                log.warning("the report's warmer failed on a prompt; the next pass tries again",
                            extra={"tenant_id": t.tenant_id, "error_type": type(exc).__name__})
                continue
            if n is None:
                done.skipped += 1
            else:
                done.aggregated += n
        return done

    async def run(self) -> None:
        """Pass, sleep, until cancelled (the app stopping)."""
        while True:
            try:
                done = await self.warm_once()
                if done.aggregated or done.failed:
                    log.info("report warmer pass", extra={"aggregated": done.aggregated, "skipped": done.skipped,
                                                          "failed": done.failed})
            except Exception:  # Postgres away, or a bug: the reports still work (they aggregate); the next pass
                log.exception("a pass of the report's warmer failed")
            await asyncio.sleep(self.interval_s)
