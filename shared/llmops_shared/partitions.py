"""Monthly partitions of the tables that grow with traffic, and what retention needs to know of them.

Each such table (the billing ledger and `usage_events_seen`, `guardrail_findings`,
`guardrail_alert_events`, `evaluation_results`) is range-partitioned on `occurred_at` by UTC month
(`<table>_YYYY_MM`) and has a DEFAULT partition (`<table>_default`); see migration shared/0004.

A writer calls `ensure_month_partitions` in its transaction before it inserts: the months of its rows
that overlap the window around its clock (`WINDOW_BACK` before, `WINDOW_AHEAD` after) get their
partition; a row of any other month goes to the default partition. So no input creates partitions
without bound, and data from the ingest API (at most 30 days old, a day ahead) always has its month.

`month_partitions` lists a table's partitions with their bounds (retention drops the old ones).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from llmops_shared.clock import utc_now

WINDOW_BACK = timedelta(days=93)
"""Months that end more than this before the writer's clock get no partition of their own."""
WINDOW_AHEAD = timedelta(days=62)
"""Months that start more than this after the writer's clock get no partition of their own."""


def month_start(at: datetime) -> datetime:
    """The first instant of `at`'s UTC month."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _months(instants: Iterable[datetime]) -> list[datetime]:
    """`month_start` of each of `instants`, once each, in order: the UTC (year, month) of each instant first, the
    few distinct months made datetimes after (a `replace` per instant cost a batch writer ~0.6 us an instant)."""
    utc = (at.astimezone(UTC) for at in instants)
    return [datetime(year, month, 1, tzinfo=UTC) for year, month in sorted({(u.year, u.month) for u in utc})]


def window_sql(instants: Iterable[datetime], *, now: datetime) -> str:
    """`llmops_ensure_month_partitions`' arguments other than the table, as SQL literals: for a statement
    that must carry the call along with others in one round trip. Only our own datetimes go in."""
    months = _months(instants)
    array = ", ".join(f"'{m.isoformat()}'::timestamptz" for m in months)
    return (f"ARRAY[{array}]::timestamptz[], '{(now - WINDOW_BACK).isoformat()}'::timestamptz, "
            f"'{(now + WINDOW_AHEAD).isoformat()}'::timestamptz")


async def ensure_month_partitions(conn: asyncpg.Connection, table: str, instants: Iterable[datetime], *,
                                  now: datetime | None = None) -> int:
    """Create the month partitions of `table` that rows at `instants` need, within the window around
    `now` (the caller's clock; default the wall clock), in the caller's transaction. Returns how many
    were created. `table` is one of our constant table names."""
    months = _months(instants)
    if not months:
        return 0
    at = now or utc_now()
    created: int = await conn.fetchval(
        "SELECT llmops_ensure_month_partitions($1::regclass, $2::timestamptz[], $3, $4)",
        table, months, at - WINDOW_BACK, at + WINDOW_AHEAD)
    return created


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None for the default partition
    upper: datetime | None

    @property
    def is_default(self) -> bool:
        return self.lower is None


_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


async def month_partitions(db: asyncpg.Connection | asyncpg.Pool, table: str) -> list[Partition]:
    """`table`'s partitions, oldest first, the default partition last (if any). Partitions whose bounds
    are not single instants (MINVALUE, ...) are left out: none of ours are."""
    async with contextlib.AsyncExitStack() as stack:
        conn = db if isinstance(db, asyncpg.Connection) else await stack.enter_async_context(db.acquire())
        async with conn.transaction():
            await conn.execute("SET LOCAL TimeZone = 'UTC'")  # bounds are shown in the session's time zone
            rows = await conn.fetch(
                """SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = $1::regclass""", table)
    ranges: list[Partition] = []
    defaults: list[Partition] = []
    for row in rows:
        if row["bound"] == "DEFAULT":
            defaults.append(Partition(row["name"], None, None))
        elif (match := _BOUND.fullmatch(row["bound"])) is not None:
            ranges.append(Partition(row["name"], _instant(match.group(1)), _instant(match.group(2))))
    return [*sorted(ranges, key=lambda p: p.lower or datetime.min.replace(tzinfo=UTC)), *defaults]


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace(" ", "T"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
