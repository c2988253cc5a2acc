"""Retention: everything that grows with traffic is kept for a configured time, then removed.

    llmops retention [--dry-run]          (run daily: deploy/ schedules it, docs/operations.md)

- **Partitioned tables** (`PARTITIONED`: the billing ledger's dedupe table `usage_events_seen`,
  `guardrail_findings`, `guardrail_alert_events`, `evaluation_results`, and the ledger itself if a
  retention is set for it) lose whole month partitions: a partition is dropped once its whole month
  ended more than the table's retention ago (so a row is kept for between the retention and a month
  more). Never a DELETE there, with one exception: the default partition, which holds only rows whose
  month had no partition when they came (outside the writers' window: `llmops_shared.partitions`), so
  it is small; its rows past retention are deleted.
- **Per tenant** (`tenant_days`), for the tables a tenant reads back (`TENANT_TABLES`: findings and
  evaluation results): a tenant may keep its rows *longer* than the table's retention (a contract, a
  legal hold). A partition holding rows of such a tenant, still within that tenant's retention, is kept
  whole. A shorter retention per tenant would need a DELETE (or partitions per tenant): not offered.
- **Services with a retention of their own** (`EXTERNAL`, module names resolved when installed): the trace
  store (`llmops_traces.retention`) drops day partitions at the longest retention its tenants chose.
- **Small tables** (`DELETED`: `dead_letters`, and the notifier's final deliveries) lose their rows past
  retention with a DELETE. The billing alert outbox is purged by the billing worker's relay
  (`LLMOPS_BILLING_OUTBOX_KEEP_SENT_H`).

Tables used to recognise a redelivered event (all the partitioned ones) must outlive any redelivery:
an event may be up to 30 days old when the ingest API takes it and comes back from the dead-letter topic
up to 3 days later, so their retention is at least `MIN_DEDUPE_DAYS`. The notifier's delivered rows
stop a redelivered alert message (the alerts topic keeps 7 days) from paging twice: at least 8 days.
One run at a time (an advisory lock); "now" is the caller's clock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import Field, model_validator

from llmops_shared.partitions import Partition, month_partitions
from llmops_shared.settings import CommonSettings, service_config

log = logging.getLogger(__name__)

MIN_DEDUPE_DAYS = 45
"""The shortest retention of a table that recognises redelivered events (30 days of ingest window, 14 of
the dead-letter topic, and a day)."""

PARTITIONED: Mapping[str, str | None] = {
    "usage_events_seen": None, "guardrail_findings": "tenant_id", "guardrail_alert_events": None,
    "evaluation_results": "tenant_id", "usage_ledger": "tenant_id"}
"""Month-partitioned tables (on `occurred_at`) and their tenant column, if any."""
TENANT_TABLES = ("guardrail_findings", "evaluation_results")
"""The tables whose retention a tenant may lengthen (`tenant_days`)."""
FINAL_DELIVERY_STATUSES = ("delivered", "suppressed", "superseded", "cancelled")
"""The notifier's delivery rows that retention deletes: final outcomes (delivered, suppressed, superseded by a later
message of the alert, cancelled with their channel). Pending, sending, parked and failed deliveries
are kept: they are what an operator still has to act on."""
DELETED: Mapping[str, tuple[str, str]] = {
    "dead_letters": ("created_at", "true"),
    "notification_deliveries": ("created_at", "status = ANY(ARRAY['delivered', 'suppressed'])"),
}
"""Small tables: (time column, which rows) deleted past retention."""
EXTERNAL: tuple[str, ...] = ("llmops_traces.retention",)
"""Services whose tables have a retention of their own, as module names resolved when used (the shared
package imports no service): each has `async def apply(pool, *, now, dry_run, lock_timeout_s) -> list[Outcome]`
and is skipped where it is not installed."""
_LOCK_KEY = 0x11_0B_5_7E7E  # one retention run per database at a time
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # our partitions' names; anything else is left alone


class RetentionSettings(CommonSettings):
    """How long what grows with traffic is kept (`llmops retention`): `LLMOPS_RETENTION_*`."""

    model_config = service_config("retention")

    usage_events_seen_days: int = Field(90, ge=MIN_DEDUPE_DAYS)
    """Billing's record of the event ids it has counted (its dedupe table), in days of `occurred_at`."""
    guardrail_findings_days: int = Field(90, ge=MIN_DEDUPE_DAYS)
    """Guardrail findings (value hashes, never values), in days of the scanned event's `occurred_at`."""
    guardrail_alert_events_days: int = Field(90, ge=MIN_DEDUPE_DAYS)
    """Which events were counted into which guardrail alert (the alerts themselves are kept)."""
    evaluation_results_days: int = Field(180, ge=MIN_DEDUPE_DAYS)
    """Judgments of the evaluator, in days of the judged event's `occurred_at`."""
    usage_ledger_days: int | None = Field(None, ge=MIN_DEDUPE_DAYS)
    """The billing ledger (one row per billed event). Unset: kept for good (statements and re-pricing read
    it; the hourly and daily rollups stay either way)."""
    dead_letters_days: int = Field(30, ge=1)
    """Dead-letter rows (the messages themselves leave `llm.dead-letters` after 72 hours, as on the raw
    topic: a replay must come before that)."""
    notification_deliveries_days: int = Field(30, ge=8)
    """The notifier's delivered and suppressed delivery rows (a delivered row stops a redelivered alert
    message from paging twice while the alerts topic keeps it: 7 days)."""
    tenant_days: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Tenants that keep rows longer, as JSON: `{"acme": {"guardrail_findings": 365}}`; tables:
    `guardrail_findings`, `evaluation_results`; never shorter than the table's own retention."""
    lock_timeout_s: float = Field(10.0, gt=0)
    """How long dropping a partition waits for the table's lock before it gives up (and says so)."""

    @model_validator(mode="after")
    def _tenants_only_keep_longer(self) -> RetentionSettings:
        for tenant, tables in self.tenant_days.items():
            for table, days in tables.items():
                if table not in TENANT_TABLES:
                    raise ValueError(f"tenant_days: {tenant}: {table!r} has no per-tenant retention "
                                     f"(only {', '.join(TENANT_TABLES)})")
                own = self.days(table)
                if own is not None and days < own:
                    raise ValueError(f"tenant_days: {tenant}: {table} {days} days is shorter than the table's "
                                     f"{own}: partitions are dropped whole, so a tenant can only keep rows longer")
        return self

    def days(self, table: str) -> int | None:
        value: int | None = getattr(self, f"{table}_days")
        return value


@dataclass(frozen=True)
class Outcome:
    """What retention did (or, in a dry run, would do) to one table or partition."""

    table: str
    action: str  # dropped | kept | deleted | skipped
    target: str  # the partition, or the table
    rows: int = 0  # rows removed (an estimate for a dropped partition)
    note: str = ""

    def line(self, *, dry_run: bool) -> str:
        verb = {"dropped": "would drop", "deleted": "would delete"}.get(self.action, self.action) if dry_run \
            else self.action
        rows = f" ({'~' if self.action == 'dropped' else ''}{self.rows} row(s))" if self.action in (
            "dropped", "deleted") else ""
        return f"{self.table}: {verb} {self.target}{rows}{': ' + self.note if self.note else ''}"


@dataclass
class Report:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def dropped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "dropped"]

    @property
    def rows_deleted(self) -> int:
        return sum(o.rows for o in self.outcomes if o.action == "deleted")

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "skipped"]


def expired(partitions: Sequence[Partition], cutoff: datetime) -> list[Partition]:
    """The month partitions whose whole range is before `cutoff` (never the default partition)."""
    return [p for p in partitions if p.upper is not None and p.upper <= cutoff]


def tenant_cutoffs(settings: RetentionSettings, table: str, now: datetime) -> dict[str, datetime]:
    """Per tenant that keeps `table`'s rows longer: the instant before which its rows may go."""
    return {tenant: now - timedelta(days=tables[table])
            for tenant, tables in settings.tenant_days.items() if table in tables}


STEPS = len(PARTITIONED) + len(EXTERNAL) + len(DELETED)
"""How many steps a run takes (one per table or module): what `on_step` is called that many times for."""


def _no_step(name: str, outcomes: list[Outcome]) -> None:
    return None


async def run_retention(pool: asyncpg.Pool, settings: RetentionSettings, *, now: datetime,
                        dry_run: bool = False,
                        on_step: Callable[[str, list[Outcome]], None] = _no_step) -> Report:
    """Apply every retention (see the module docstring) as of `now`; `dry_run` changes nothing. After
    each of its `STEPS` steps, `on_step(table or module, its outcomes)` (a progress bar's tick)."""
    report = Report(dry_run)
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            raise RuntimeError("another `llmops retention` run holds the lock; try again later")
        try:
            for table, tenant_column in PARTITIONED.items():
                step = await _partitioned(pool, settings, table, tenant_column, now=now, dry_run=dry_run)
                report.outcomes += step
                on_step(table, step)
            for module in EXTERNAL:
                step = await _external(module, pool, now=now, dry_run=dry_run, lock_timeout_s=settings.lock_timeout_s)
                report.outcomes += step
                on_step(module, step)
            for table, (column, which) in DELETED.items():
                days = settings.days(table)
                step = []
                if days is not None and await _exists(pool, table):
                    rows = await _delete(pool, table, f"{column} < $1 AND {which}", [now - timedelta(days=days)],
                                         dry_run=dry_run)
                    step = [Outcome(table, "deleted", f"rows older than {days} days", rows)]
                report.outcomes += step
                on_step(table, step)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return report


async def _external(module: str, pool: asyncpg.Pool, *, now: datetime, dry_run: bool,
                    lock_timeout_s: float) -> list[Outcome]:
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec(module) is None:
            return []
    except ModuleNotFoundError:
        return []
    outcomes: list[Outcome] = await importlib.import_module(module).apply(
        pool, now=now, dry_run=dry_run, lock_timeout_s=lock_timeout_s)
    return outcomes


async def _partitioned(pool: asyncpg.Pool, settings: RetentionSettings, table: str, tenant_column: str | None, *,
                       now: datetime, dry_run: bool) -> list[Outcome]:
    days = settings.days(table)
    if days is None or not await _exists(pool, table):
        return []
    cutoff = now - timedelta(days=days)
    holds = tenant_cutoffs(settings, table, now) if tenant_column else {}
    partitions = await month_partitions(pool, table)
    outcomes: list[Outcome] = []
    for part in expired(partitions, cutoff):
        if not _NAME.match(part.name):
            outcomes.append(Outcome(table, "skipped", part.name, note="not a partition name retention knows"))
            continue
        assert part.upper is not None
        holding = [t for t, until in holds.items() if part.upper > until]
        if holding and tenant_column and await pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {part.name} WHERE {tenant_column} = ANY($1::text[]))",  # noqa: S608
                holding):
            outcomes.append(Outcome(table, "kept", part.name,
                                    note=f"tenant(s) {', '.join(sorted(holding))} keep it longer (tenant_days)"))
            continue
        outcomes.append(await drop_partition(pool, table, part, days=days, lock_timeout_s=settings.lock_timeout_s,
                                             dry_run=dry_run))
    for part in partitions:
        if part.is_default and _NAME.match(part.name):
            condition = "occurred_at < $1"
            args: list[Any] = [cutoff]
            if holds and tenant_column:  # a constant column name
                condition += (" AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::timestamptz[]) AS h(t, c) "  # noqa: S608
                              f"WHERE h.t = {tenant_column} AND occurred_at >= h.c)")
                args += [list(holds), list(holds.values())]
            rows = await _delete(pool, part.name, condition, args, dry_run=dry_run)
            outcomes.append(Outcome(table, "deleted", part.name, rows, note=f"rows older than {days} days"))
    return outcomes


async def drop_partition(pool: asyncpg.Pool, table: str, part: Partition, *, days: int, lock_timeout_s: float,
                         dry_run: bool) -> Outcome:
    """Drop one expired partition of `table` (a name `_NAME` accepts), waiting at most `lock_timeout_s` for
    its lock: "dropped" (with an estimate of its rows), or "skipped" when the lock was not granted."""
    if not _NAME.match(part.name):
        return Outcome(table, "skipped", part.name, note="not a partition name retention knows")
    estimate = int(await pool.fetchval("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = $1",
                                       part.name) or 0)
    if not dry_run:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                await conn.execute(f"DROP TABLE IF EXISTS {part.name}")
        except asyncpg.LockNotAvailableError:
            return Outcome(table, "skipped", part.name, note="busy (its lock was not granted in "
                           f"{lock_timeout_s:g} s); the next run drops it")
    return Outcome(table, "dropped", part.name, estimate,
                   note=f"[{part.lower:%Y-%m-%d}, {part.upper:%Y-%m-%d}) is older than {days} days")


async def delete_expired_default(pool: asyncpg.Pool, table: str, part: Partition, *, column: str, cutoff: datetime,
                                 days: int, dry_run: bool) -> Outcome:
    """Delete (or count) the rows of a default partition whose `column` (a constant) is before `cutoff`."""
    rows = await _delete(pool, part.name, f"{column} < $1", [cutoff], dry_run=dry_run)
    return Outcome(table, "deleted", part.name, rows, note=f"rows older than {days} days")


async def _exists(pool: asyncpg.Pool, table: str) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def _delete(pool: asyncpg.Pool, table: str, condition: str, args: list[Any], *, dry_run: bool) -> int:
    """Rows of `table` (a constant or catalogue name) matching `condition` (constant SQL): deleted, or
    counted in a dry run."""
    if dry_run:
        return int(await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {condition}", *args))  # noqa: S608
    status = await pool.execute(f"DELETE FROM {table} WHERE {condition}", *args)  # noqa: S608
    return int(status.split()[-1])
