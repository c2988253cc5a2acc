"""An experiment's calls, read from the other services' tables: billing's ledger (every event of a prompt,
with its variant and cost), the trace store's spans (latency, session), guardrails' findings and the
evaluator's results (judge scores per rubric). Read only; every query names the tenant.

`parts` aggregates stretches of time (a list of [start, end) ranges, each usually a UTC hour or the part of
one inside a report's window) into one `rollup.Part` per (range, variant), for every variant of the prompt:
three queries, each reading its table once over the ranges (a branch per range, up to `RANGES_PER_QUERY`
ranges a statement): the ledger (with the range's findings hash-joined; every call's unit as a 64-bit hash,
made distinct here), the spans (latencies, and sessions' hashes when the unit is the session; a span carries
its event's prompt name and variant as the ledger row does, so no join with the ledger), and the judge's
scores joined to the ledger. Sums are exact (`numeric`), so parts merge into the same numbers as one pass
over the window. Statements may run on several connections, in one snapshot.
`costs` reads the costs themselves, for variants small enough for the bootstrap. `variant_data` is the report's
read (the cache where it holds, the rest aggregated); `warm` fills the cache ahead of it (`llmops_prompts.warmer`).

JIT is off for these queries (compiling them cost more than it saved on a million rows), each may hash up to
64 MB (`work_mem`) rather than sort on disk, and plans are always custom (each range's bounds seen)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np

from llmops_prompts.report import VariantData
from llmops_prompts.rollup import Part, Sums, ascending, distinct, floats, merge_all, stretches, unit_hashes
from llmops_prompts.stats import BOOTSTRAP_MAX_VALUES
from llmops_prompts.store import report_hours

_UNIT = {"user": "l.user_id", "trace": "l.trace_id"}
RANGES_PER_QUERY = 3  # hours per statement: a cold report over a busy window stays under the pool's command timeout
log = logging.getLogger("llmops_prompts.report")


def _bounds(k: int) -> tuple[str, str]:
    """The parameters of range k (0-based): $1 is the tenant, $2 the prompt, then each range's start and end."""
    return f"${3 + 2 * k}::timestamptz", f"${4 + 2 * k}::timestamptz"


def _each_range(n: int, branch: Callable[[int, str, str], str]) -> str:
    """One branch per range, its bounds as parameters of their own (so that the planner, with a custom plan,
    sees each range's real size: an index for a small one, a scan for a large one), UNION ALL."""
    return "\nUNION ALL\n".join(f"({branch(k + 1, *_bounds(k))})" for k in range(n))


def _ledger_sql(unit: str, n: int) -> str:
    """Per range and variant, in one pass over the range's ledger rows: calls, errors, calls with a guardrail
    finding (a hash join on the range's findings), the priced calls' cost sums, and (unless the unit is the
    session, which the spans know) every call's unit hash (made distinct by the caller: cheaper than grouping by
    unit in Postgres)."""
    column = _UNIT.get(unit, "NULL::text")  # one of three constants

    def branch(i: int, s: str, e: str) -> str:
        return f"""SELECT {i} AS i, l.prompt_variant AS variant, count(*) AS calls,
                          count(*) FILTER (WHERE l.status <> 'ok') AS errors, count(f.event_id) AS findings,
                          count(l.cost_total) AS cost_n, coalesce(sum(l.cost_total), 0) AS cost_sum,
                          coalesce(sum(l.cost_total * l.cost_total), 0) AS cost_sq,
                          coalesce(string_agg(int8send(hashtextextended({column}, 0)), ''::bytea), ''::bytea)
                            AS units
                   FROM usage_ledger l
                   LEFT JOIN (SELECT DISTINCT f.event_id, f.occurred_at FROM guardrail_findings f
                              WHERE f.tenant_id = $1 AND f.occurred_at >= {s} AND f.occurred_at < {e}) f
                          ON f.event_id = l.event_id AND f.occurred_at = l.occurred_at
                   WHERE l.tenant_id = $1 AND l.occurred_at >= {s} AND l.occurred_at < {e} AND l.prompt_name = $2
                     AND l.prompt_variant <> ''
                   GROUP BY 2"""  # noqa: S608

    return _each_range(n, branch)


def _spans_sql(unit: str, n: int) -> str:
    """Per range and variant: every latency and (when the unit is the session) every session's hash, unsorted
    (the caller sorts and makes distinct)."""
    sessions = ("coalesce(string_agg(int8send(hashtextextended(s.session_id, 0)), ''::bytea), ''::bytea)"
                if unit == "session" else "''::bytea")

    def branch(i: int, s: str, e: str) -> str:
        return f"""SELECT {i} AS i, s.prompt_variant AS variant,
                          coalesce(string_agg(float8send(s.latency_ms), ''::bytea), ''::bytea) AS latencies,
                          {sessions} AS sessions
                   FROM trace_spans s
                   WHERE s.tenant_id = $1 AND s.occurred_at >= {s} AND s.occurred_at < {e} AND s.prompt_name = $2
                     AND s.prompt_variant <> ''
                   GROUP BY 2"""  # noqa: S608

    return _each_range(n, branch)


def _scores_sql(n: int) -> str:
    """Per range, variant and rubric: the judge's scores' exact sums; each range's results joined to the same
    range's ledger rows (the range repeated on the ledger, so that only that range of it is read)."""

    def branch(i: int, s: str, e: str) -> str:
        return f"""SELECT {i} AS i, l.prompt_variant AS variant, x.rubric, count(*) AS n,
                          sum(x.score::numeric) AS total, sum(x.score::numeric * x.score::numeric) AS squares
                   FROM evaluation_results x
                   JOIN usage_ledger l ON l.event_id = x.event_id AND l.occurred_at = x.occurred_at
                   WHERE x.tenant_id = $1 AND x.occurred_at >= {s} AND x.occurred_at < {e} AND x.status = 'ok'
                     AND x.score IS NOT NULL AND l.tenant_id = $1 AND l.occurred_at >= {s} AND l.occurred_at < {e}
                     AND l.prompt_name = $2 AND l.prompt_variant <> ''
                   GROUP BY 2, 3"""  # noqa: S608

    return _each_range(n, branch)


_COSTS = """SELECT l.prompt_variant AS variant, array_agg(l.cost_total::float8 ORDER BY l.event_id) AS costs
            FROM usage_ledger l
            WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
              AND l.prompt_variant <> '' AND l.occurred_at >= $4 AND l.occurred_at < $5 AND l.cost_total IS NOT NULL
            GROUP BY 1"""  # (`<> ''`: the condition of the index of experiment calls, billing/0013)


async def prepare(conn: asyncpg.Connection) -> None:
    """The session settings of the report's queries, for the current transaction."""
    await conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; "
                       "SET LOCAL plan_cache_mode = force_custom_plan")  # each range's size, seen by the planner


async def parts(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                ranges: Sequence[tuple[datetime, datetime]], pool: asyncpg.Pool | None = None,
                parallel: int = 1) -> dict[int, dict[str, Part]]:
    """Per range (its index in `ranges`) and variant, the `Part` of the prompt's calls in that range (variants with
    calls only). Run in a `REPEATABLE READ` transaction (one snapshot for every query); `RANGES_PER_QUERY` ranges a
    statement. With `pool` and `parallel` > 1, up to `parallel - 1` more connections of `pool` (idle ones, or new
    ones while it is below its size: a full pool never waits on itself) take statements too, in `conn`'s snapshot
    (exported to them)."""
    size = max(1, min(RANGES_PER_QUERY, -(-len(ranges) // max(1, parallel))))
    todo = [(first, ranges[first:first + size]) for first in range(0, len(ranges), size)]
    out: dict[int, dict[str, Part]] = {}

    async def work(c: asyncpg.Connection) -> None:
        while todo:
            first, chunk = todo.pop(0)
            got = await _parts(c, tenant_id=tenant_id, prompt=prompt, unit=unit, ranges=chunk)
            out.update({first + i: by_variant for i, by_variant in got.items()})

    if pool is None or parallel <= 1 or len(todo) <= 1:
        await work(conn)
        return out
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
    if not _SNAPSHOT.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")

    async def helper() -> None:
        if pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size():
            return  # the pool is busy: the others do this one's share
        try:
            c = await pool.acquire(timeout=HELPER_WAIT_S)  # a free one, or a new one connected
        except TimeoutError:  # taken by someone else meanwhile
            return
        try:
            async with c.transaction(isolation="repeatable_read", readonly=True):
                await c.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                await prepare(c)
                await work(c)
        finally:
            await pool.release(c)

    async with asyncio.TaskGroup() as group:  # one failing cancels the others
        for _ in range(min(parallel, len(todo)) - 1):
            group.create_task(helper())
        group.create_task(work(conn))
    return out


HELPER_WAIT_S = 1.0  # at most this long for another connection (opening one), then without it
_SNAPSHOT = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


async def _parts(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                 ranges: Sequence[tuple[datetime, datetime]]) -> dict[int, dict[str, Part]]:
    args: tuple[Any, ...] = (tenant_id, prompt, *(bound for pair in ranges for bound in pair))
    out: dict[int, dict[str, Part]] = {}
    for r in await conn.fetch(_ledger_sql(unit, len(ranges)), *args):
        out.setdefault(r["i"] - 1, {})[r["variant"]] = Part(
            calls=r["calls"], errors=r["errors"], findings=r["findings"],
            cost=Sums(r["cost_n"], r["cost_sum"], r["cost_sq"]), units=distinct(unit_hashes(r["units"])))
    for r in await conn.fetch(_spans_sql(unit, len(ranges)), *args):
        # a span without a ledger row in this range (billing not there yet, an event it does not bill) still
        # counts in the latencies of a variant that has calls in the window, as in one pass over the window
        part = out.setdefault(r["i"] - 1, {}).setdefault(r["variant"], Part())
        part.latencies = ascending(floats(r["latencies"]))
        if unit == "session":
            part.units = distinct(unit_hashes(r["sessions"]))
    for r in await conn.fetch(_scores_sql(len(ranges)), *args):  # a score's call is in the range's ledger rows
        out[r["i"] - 1][r["variant"]].scores[r["rubric"]] = Sums(r["n"], Decimal(r["total"]), Decimal(r["squares"]))
    return out


async def costs(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, variants: list[str], start: datetime,
                end: datetime) -> dict[str, np.ndarray]:
    """The priced calls' costs of `variants` between `start` and `end` (for the bootstrap: small variants only)."""
    if not variants:
        return {}
    rows = await conn.fetch(_COSTS, tenant_id, prompt, variants, start, end)
    return {r["variant"]: np.asarray(r["costs"], dtype=float) for r in rows}


async def variant_data(pool: asyncpg.Pool, *, tenant_id: str, prompt: str, variants: list[str], unit: str,
                       start: datetime, end: datetime, now: datetime, cache: bool = True,
                       parallel: int = 1) -> dict[str, VariantData]:
    """Per variant name among `variants`: its calls between `start` and `end` (`VariantData`, variants with calls
    only). The window is cut at UTC hours; a stretch that has ended by `now` is read from the cache while its
    hour's stamp matches, and aggregated (and then cached) otherwise; the stretch under way is aggregated from
    the raw rows each time. Stamps, cached stretches and raw rows are read in one snapshot. `cache=False`
    aggregates the whole window from the raw rows in one range (what the cache must equal). What is aggregated
    may use up to `parallel` connections of `pool` at once, in the same snapshot (`parts`)."""
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await prepare(conn)
            if not cache:
                live = await parts(conn, tenant_id=tenant_id, prompt=prompt, unit=unit, ranges=[(start, end)],
                                   pool=pool, parallel=parallel)
                found = [(v, p) for by_variant in live.values() for v, p in by_variant.items()]
                values = await costs(conn, tenant_id=tenant_id, prompt=prompt, variants=_small(found, variants),
                                     start=start, end=end)
                return _data(found, variants, values)
            cut = stretches(start, end, now)
            closed = [s for s in cut if s.closed]
            current = await report_hours.stamps(conn, tenant_id=tenant_id, prompt=prompt,
                                                hours=sorted({s.hour for s in closed}))
            kept = await report_hours.cached(conn, tenant_id=tenant_id, prompt=prompt, unit=unit, wanted=closed,
                                             current=current)
            todo = [s for s in cut if s not in kept]
            live = await parts(conn, tenant_id=tenant_id, prompt=prompt, unit=unit,
                               ranges=[(s.start, s.end) for s in todo], pool=pool, parallel=parallel)
            found = [(v, p) for by_variant in [*kept.values(), *live.values()] for v, p in by_variant.items()]
            values = await costs(conn, tenant_id=tenant_id, prompt=prompt, variants=_small(found, variants),
                                 start=start, end=end)
        fresh = {s: (current[s.hour], live.get(i, {})) for i, s in enumerate(todo) if s.closed}
        if fresh:
            try:
                await report_hours.store(conn, tenant_id=tenant_id, prompt=prompt, unit=unit, stretches=fresh)
            except (asyncpg.PostgresError, TimeoutError) as exc:  # the report is made; keeping it is best effort
                log.warning("the report's stretches were not kept; the next report aggregates them again",
                            extra={"tenant_id": tenant_id, "stretches": len(fresh), "error_type": type(exc).__name__})
    return _data(found, variants, values)


WARM_BATCH = 6  # hours aggregated per snapshot by the warmer (then kept: bounded memory for a long experiment)


async def warm(pool: asyncpg.Pool, *, tenant_id: str, prompt: str, unit: str, start: datetime, end: datetime,
               now: datetime) -> int | None:
    """Aggregate and keep the stretches of [start, end) that have ended by `now` and are not cached with their
    hour's stamp now (never cached, or their sources changed since: late data); how many, or None when another
    process holds this (tenant, prompt, unit)'s warming lock (`report_hours.warming`). Which stretches are stale
    is read in one snapshot; each batch of `WARM_BATCH` of them is aggregated with its stamps in a snapshot of
    its own and kept (replacing: idempotent, whoever else writes the same stretch)."""
    closed = [s for s in stretches(start, end, now) if s.closed]
    if not closed:
        return 0
    done = 0
    async with pool.acquire() as conn, report_hours.warming(conn, tenant_id=tenant_id, prompt=prompt,
                                                            unit=unit) as mine:
        if not mine:
            return None
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            current = await report_hours.stamps(conn, tenant_id=tenant_id, prompt=prompt,
                                                hours=sorted({s.hour for s in closed}))
            kept = await report_hours.kept(conn, tenant_id=tenant_id, prompt=prompt, unit=unit, wanted=closed,
                                           current=current)
        todo = [s for s in closed if s not in kept]
        for first in range(0, len(todo), WARM_BATCH):
            batch = todo[first:first + WARM_BATCH]
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await prepare(conn)
                current = await report_hours.stamps(conn, tenant_id=tenant_id, prompt=prompt,
                                                    hours=sorted({s.hour for s in batch}))
                live = await parts(conn, tenant_id=tenant_id, prompt=prompt, unit=unit,
                                   ranges=[(s.start, s.end) for s in batch])
            await report_hours.store(conn, tenant_id=tenant_id, prompt=prompt, unit=unit,
                                     stretches={s: (current[s.hour], live.get(i, {})) for i, s in enumerate(batch)})
            done += len(batch)
    return done


def _small(found: list[tuple[str, Part]], variants: list[str]) -> list[str]:
    """The variants whose priced calls are few enough for the bootstrap (their costs are read)."""
    n: dict[str, int] = {}
    for variant, part in found:
        n[variant] = n.get(variant, 0) + part.cost.n
    return [v for v in variants if 0 < n.get(v, 0) <= BOOTSTRAP_MAX_VALUES]


def _data(found: list[tuple[str, Part]], variants: list[str], values: dict[str, np.ndarray]
          ) -> dict[str, VariantData]:
    """The variants asked for, with calls; the costs' values of the small ones (else None: Welch's interval)."""
    wanted = set(variants)
    merged = merge_all((v, p) for v, p in found if v in wanted)
    for variant, data in merged.items():
        data.costs = values.get(variant, np.empty(0)) if data.cost.n <= BOOTSTRAP_MAX_VALUES else None
    return {v: d for v, d in merged.items() if d.calls}
