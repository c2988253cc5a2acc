"""`usage_ledger`: the batch write, and re-pricing's reads and updates.

`write_batch` is the one database step of the worker, in its per-batch transaction:

1. make sure the monthly partitions of the ledger exist for the batch's months near `now`
   (`llmops_shared.partitions`: rows of other months go to the default partition), and COPY the rows into
   a temporary staging table (per connection; emptied before each batch and at commit);
2. from there, insert the ledger rows with ON CONFLICT DO NOTHING RETURNING on the ledger's key (tenant_id,
   event_id, occurred_at), except those whose (tenant, event id) the ledger holds already with another
   `occurred_at` (the table is partitioned by month, so its key includes the time, and an event sent again
   with another time must still count once; probed `DEDUPE_DAYS` back), so a redelivered event is a no-op.
   The ledger is its own dedupe: `usage_events_seen`, which held the same keys, is no longer written. An
   event id is the tenant's own: another tenant's event with the same id is another event, billed to that
   tenant once (migration billing/0006);
3. add only those inserted rows to `usage_hourly`, `usage_daily`, `usage_daily_users`, `usage_daily_tags`,
   `usage_hourly_totals`, `usage_monthly_users`, `usage_hourly_models` and `usage_trace_costs` (2 and 3 are
   one SQL statement: the rollups are grouped in Postgres from the ledger insert's RETURNING rows, the
   daily and the hourly totals from the hourly groups; `store.rollups`); with `pending_rollups=True` (the
   worker), `usage_daily_users` and `usage_trace_costs` get one `billing_rollup_pending` row instead, which
   the follower adds to them (`store.pending_rollups`);
4. with `usage_outbox=True` (the worker), put the inserted rows' `billing.usage` messages
   (`ledger.usage_record`, made before the COPY and carried in the staging table) into ONE row of
   `billing_usage_outbox_batches` in the same statement (`store.usage_outbox` says who takes and sends them);
5. count unpriced models in `unpriced_models` (`store.unpriced`), returning those not yet alerted on.

Re-pricing reads a tenant's rows in locked keyset chunks (`lock_chunk`) and writes the new pricing
columns back (`update_pricing`).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from llmops_billing.ledger import (
    COLUMNS,
    COST_COLUMNS,
    PRICING_COLUMNS,
    TOKEN_COLUMNS,
    LedgerRow,
    UsageRecord,
    row_from_record,
    usage_record,
)
from llmops_billing.store.pending_rollups import PENDING_FROM_INSERTED
from llmops_billing.store.rollups import (
    MODELS_KEY,
    MONTHLY_USERS_KEY,
    ROLLUP_KEY,
    TAG_KEY,
    TOTALS_KEY,
    TRACES_KEY,
    USER_KEY,
    groups_of_inserted,
    rollup_from_groups,
    rollup_from_inserted,
)
from llmops_billing.store.unpriced import UnpricedModel, count_unpriced
from llmops_shared.clock import utc_now
from llmops_shared.partitions import window_sql


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: tuple[LedgerRow, ...]  # rows written now; the others were already in the ledger
    unalerted_unpriced: tuple[UnpricedModel, ...]  # unpriced models with no alert raised yet
    usage: tuple[UsageRecord, ...] = ()  # with `usage_outbox`: the inserted rows' messages, put in the outbox
    usage_batch: int | None = None  # ... as this row of `billing_usage_outbox_batches` (None: no message)


DEDUPE_DAYS = 120
"""How far before an event's `occurred_at` the ledger is searched for an earlier copy of it sent with another
time (the same time is the ledger key's own conflict, whenever the row was written). An event is at most 30
days old when the ingest API takes it and comes back from the dead-letter topic up to 14 days later
(`llmops_shared.retention.MIN_DEDUPE_DAYS`); 120 days also covers every copy the former dedupe table
`usage_events_seen` recognised at its default retention (90 days, whole months). Only the month partitions
from there on are probed (run-time pruning), not every month the ledger keeps."""

_STAGING_NAME = "billing_ledger_staging"
_STAGING = f"pg_temp.{_STAGING_NAME}"  # the session's own, whatever the search path

_TYPES = {
    "event_id": "uuid", "occurred_at": "timestamptz", "tags": "text[]",
    "input_tokens": "bigint", "output_tokens": "bigint", "cache_read_input_tokens": "bigint",
    "cache_write_input_tokens": "bigint", "reasoning_tokens": "bigint",
    "unpriced": "boolean", "price_tier": "integer", "priced_at": "timestamptz",
}  # the staging table's column types; everything else (money included) is text

# The batch goes to Postgres by binary COPY into a temporary staging table (one per connection, created
# by its first batch; emptied before every batch and at every commit), then one statement moves it on.
# Money travels as exact decimal strings (cheaper to encode than binary NUMERIC) and is cast to NUMERIC
# in that statement. Constant names only.
_OUTBOX_COLUMNS = ("msg_key", "payload")  # a row's usage message, NULL unless the outbox is written
_STAGED = (*COLUMNS, *_OUTBOX_COLUMNS)
_STAGING_COLUMNS = ", ".join(f"{name} {_TYPES.get(name, 'text')}" for name in _STAGED)
_PREPARE_STAGING = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGING_NAME} ({_STAGING_COLUMNS}) ON COMMIT DELETE ROWS;
    DELETE FROM {_STAGING};
"""  # noqa: S608

# A month partition the ledger never analyzed (just created: empty) is analyzed at once, in the batch's
# transaction (cheap when empty; only its creator sees it new). Unanalyzed, the planner takes it for ten pages
# of unknown rows and may probe it for an earlier copy of each event (the statement below) through
# another index on `tenant_id`, which reads every row of the tenant there, those the statement itself
# inserts included: ~0.2 s more for the first 2,000-event batch of a month (bench/RESULTS.md, billing10).
# Without it only that first batch is slow: the next batch's statement was planned again (measured), with
# the partition's real size.
_ANALYZE_NEW_PARTITIONS = """
    DO $$
    DECLARE part regclass;
    BEGIN
        FOR part IN SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'usage_ledger'::regclass AND c.relkind = 'r' AND c.reltuples < 0
                    ORDER BY c.oid
        LOOP
            EXECUTE format('ANALYZE %s', part);
        END LOOP;
    END $$;
"""

_RETURNED = ("event_id", "occurred_at", "tenant_id", "trace_id", "app_id", "environment", "provider", "model",
             "model_key",
             "prompt_name",
             "prompt_version", "prompt_variant", "user_id", "tags", "unpriced", *TOKEN_COLUMNS,
             *COST_COLUMNS)  # what the rollups need
_HOUR_OF = "date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
_DAY_OF = "(occurred_at AT TIME ZONE 'UTC')::date"
_DAY_OF_HOUR = "(bucket AT TIME ZONE 'UTC')::date"  # the UTC day of an hourly group's bucket (UTC hours nest)
_MONTH_OF = "date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date"
# One row per tag of each inserted row ('' when it has none): `ledger.row_tags`.
_INSERTED_TAGS = ("inserted CROSS JOIN LATERAL unnest(CASE WHEN cardinality(inserted.tags) = 0 THEN ARRAY['']::text[] "
                  "ELSE inserted.tags END) AS t(tag)")


def _insert_sql(*, pending_rollups: bool) -> str:
    columns = ", ".join(COLUMNS)
    selected = ", ".join(f"s.{name}::numeric" if name in COST_COLUMNS else f"s.{name}" for name in COLUMNS)
    rollups = {  # the hourly groups once; the daily and the hourly totals regroup them (~200 rows, not 2,000)
        "hour_groups": groups_of_inserted(_HOUR_OF),
        "hourly": rollup_from_groups("usage_hourly", "bucket", key=ROLLUP_KEY, source="hour_groups"),
        "daily": rollup_from_groups("usage_daily", _DAY_OF_HOUR, key=ROLLUP_KEY, source="hour_groups"),
        "daily_users": rollup_from_inserted("usage_daily_users", _DAY_OF, key=USER_KEY,
                                            user_of="coalesce(user_id, '')"),
        "daily_tags": rollup_from_inserted("usage_daily_tags", _DAY_OF, key=TAG_KEY, source=_INSERTED_TAGS),
        "hourly_totals": rollup_from_groups("usage_hourly_totals", "bucket", key=TOTALS_KEY, source="hour_groups"),
        "monthly_users": rollup_from_inserted("usage_monthly_users", _MONTH_OF, key=MONTHLY_USERS_KEY,
                                              user_of="coalesce(user_id, '')"),
        "hourly_models": rollup_from_inserted("usage_hourly_models", _HOUR_OF, key=MODELS_KEY),
        "trace_costs": rollup_from_inserted("usage_trace_costs", _DAY_OF, key=TRACES_KEY),
    }
    if pending_rollups:  # the two per-event rollups: one pending row instead, for the follower
        del rollups["daily_users"], rollups["trace_costs"]
        rollups["pending"] = PENDING_FROM_INSERTED
    ctes = "".join(f"""), {name} AS (
            {sql}
        """ for name, sql in rollups.items())
    # Built once at import from the constant column names above: no outside input reaches this SQL. The
    # ledger is its own dedupe: a (tenant, event id) it already holds with another `occurred_at` (so in
    # another month partition, where the key cannot see it) is looked up row by row (LATERAL ... LIMIT 1:
    # an index probe of the key into each month partition from `DEDUPE_DAYS` before the event on, the
    # others pruned at run time; a plain NOT EXISTS is planned as a hash anti-join that reads the whole
    # table on every batch); the same time is the key's conflict.
    return f"""
        WITH inserted AS (
            INSERT INTO usage_ledger ({columns})
            SELECT {selected} FROM {_STAGING} s
            LEFT JOIN LATERAL (SELECT true AS known FROM usage_ledger e
                               WHERE e.tenant_id = s.tenant_id AND e.event_id = s.event_id
                                 AND e.occurred_at >= s.occurred_at - interval '{DEDUPE_DAYS} days'
                               LIMIT 1) seen ON true
            WHERE seen.known IS NULL
            ON CONFLICT (tenant_id, event_id, occurred_at) DO NOTHING
            RETURNING {", ".join(_RETURNED)}
        {ctes}), usage_messages AS (
            INSERT INTO billing_usage_outbox_batches (msg_keys, payloads)
            SELECT array_agg(s.msg_key), array_agg(s.payload)
            FROM {_STAGING} s JOIN inserted i USING (tenant_id, event_id)
            WHERE s.payload IS NOT NULL
            HAVING count(*) > 0
            RETURNING id
        )
        SELECT count(*) AS inserted, (SELECT id FROM usage_messages) AS usage_batch,
               CASE WHEN count(*) < $1 THEN array_agg(tenant_id) END AS tenants,
               CASE WHEN count(*) < $1 THEN array_agg(event_id) END AS event_ids
        FROM inserted
    """  # noqa: S608


_INSERT_LEDGER = {deferred: _insert_sql(pending_rollups=deferred) for deferred in (False, True)}


_values = operator.attrgetter(*COLUMNS)
_MONEY_INDEXES = tuple(i for i, name in enumerate(COLUMNS) if name in COST_COLUMNS)


def _record(row: LedgerRow, message: UsageRecord | None = None) -> list[Any]:
    """`row` as a staging record: money as exact decimal strings; then its usage message's key and JSON
    (NULL without one)."""
    record = list(_values(row))
    for i in _MONEY_INDEXES:
        if record[i] is not None:
            record[i] = str(record[i])
    if message is None:
        record += (None, None)
    else:
        record += (message.key.decode(), message.value.decode())
    return record


@dataclass(frozen=True, slots=True)
class Staged:
    """A ledger row ready for the staging COPY (`stage`): its record and, for the outbox, its usage message."""

    row: LedgerRow
    message: UsageRecord | None
    record: list[Any]


def stage(row: LedgerRow, *, usage_outbox: bool) -> Staged:
    """Pure: `row`'s staging record (and usage message with `usage_outbox`), built ahead of the transaction
    (the worker's `prepare`) so that the transaction waits on Postgres only."""
    message = usage_record(row) if usage_outbox else None
    return Staged(row, message, _record(row, message))


async def write_batch(conn: asyncpg.Connection, *, rows: Sequence[LedgerRow | Staged],
                      now: datetime | None = None, usage_outbox: bool = False,
                      pending_rollups: bool = False) -> WriteResult:
    """Write `rows` idempotently inside the caller's transaction (see the module docstring); `now` is the
    writer's clock (which months get partitions; default the wall clock); `usage_outbox`: also put the
    inserted rows' usage messages in one `billing_usage_outbox_batches` row (returned in `WriteResult.usage`,
    the row's id in `WriteResult.usage_batch`);
    `pending_rollups` (the worker): leave `usage_daily_users` and `usage_trace_costs` to the follower (one
    `billing_rollup_pending` row: `store.pending_rollups`) instead of upserting them here. Rows may come
    already `stage`d (with the same `usage_outbox`)."""
    if not conn.is_in_transaction():
        raise RuntimeError("write_batch must run inside the batch's transaction")
    staged = [r if isinstance(r, Staged) else stage(r, usage_outbox=usage_outbox) for r in rows]
    if any((s.message is not None) != usage_outbox for s in staged):
        raise ValueError("rows staged with another usage_outbox than this write's")
    unique = list({s.row.event_key: s for s in reversed(staged)}.values())[::-1]  # first of each event
    if not unique:
        return WriteResult((), ())
    # One round trip: the staging table, then the month partitions the batch needs (the literals are our
    # own datetimes: `partitions.window_sql`).
    window = window_sql((s.row.occurred_at for s in unique), now=now or utc_now())
    await conn.execute(f"{_PREPARE_STAGING} SELECT llmops_ensure_month_partitions('usage_ledger', {window}); "
                       f"{_ANALYZE_NEW_PARTITIONS}")
    await conn.copy_records_to_table(_STAGING_NAME, schema_name="pg_temp", columns=_STAGED,
                                     records=[s.record for s in unique])
    # One row back: how many rows went in and, only when some did not (a redelivery), which did.
    returned = await conn.fetchrow(_INSERT_LEDGER[pending_rollups], len(unique))
    if not returned["inserted"]:
        return WriteResult((), ())
    if returned["inserted"] == len(unique):
        written = unique
    else:
        fresh = set(zip(returned["tenants"], returned["event_ids"], strict=True))
        written = [s for s in unique if s.row.event_key in fresh]
    inserted = tuple(s.row for s in written)
    usage = tuple(s.message for s in written if s.message is not None)
    return WriteResult(inserted, tuple(await count_unpriced(conn, rows=inserted)), usage,
                       returned["usage_batch"] if usage else None)


# --------------------------------------------------------------------------------------------------
# Re-pricing

# One tenant at a time, along the (tenant_id, occurred_at) index from the keyset cursor on: each chunk
# reads only its own rows, however large the period.
_LOCK_CHUNK = f"""
    SELECT {", ".join(COLUMNS)} FROM usage_ledger
    WHERE tenant_id = $1
      AND occurred_at >= $3 AND occurred_at < $2
      AND (occurred_at, event_id) > ($3, $4)
      AND ($5::text IS NULL OR model_key = $5)
    ORDER BY occurred_at, event_id
    LIMIT $6
    FOR UPDATE
"""  # noqa: S608  (constant column names)

_CASTS = {"model_key": "text", "unpriced": "boolean", "unpriced_reason": "text", "price_version": "text",
          "price_tier": "integer"}
_UPDATED = ("tenant_id", "event_id", "occurred_at", *PRICING_COLUMNS, "priced_at")  # a row's key first


def _update_sql() -> str:
    types = ("text", "uuid", "timestamptz", *(_CASTS.get(n, "numeric") for n in PRICING_COLUMNS), "timestamptz")
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    sets = ", ".join(f"{n} = u.{n}" for n in (*PRICING_COLUMNS, "priced_at"))
    return f"""
        UPDATE usage_ledger l SET {sets}
        FROM unnest({params}) AS u({", ".join(_UPDATED)})
        WHERE l.tenant_id = u.tenant_id AND l.event_id = u.event_id AND l.occurred_at = u.occurred_at
    """  # noqa: S608  (constant column names)


_UPDATE_PRICING = _update_sql()


async def lock_chunk(conn: asyncpg.Connection, *, tenant_id: str, end: datetime,
                     after: tuple[datetime, uuid.UUID], model_key: str | None, limit: int) -> list[LedgerRow]:
    """The tenant's next `limit` rows after `after` (an `(occurred_at, event_id)` keyset position) and
    before `end`, optionally of one model key, locked `FOR UPDATE` in the caller's transaction."""
    records = await conn.fetch(_LOCK_CHUNK, tenant_id, end, after[0], after[1], model_key, limit)
    return [row_from_record(r) for r in records]


async def count_range(pool: asyncpg.Pool, *, tenant_id: str | None, start: datetime, end: datetime,
                      model_key: str | None) -> int:
    """How many ledger rows `[start, end)` holds (of a tenant, of a model key): a re-pricing run's total."""
    count: int = await pool.fetchval(
        """SELECT count(*) FROM usage_ledger
           WHERE ($1::text IS NULL OR tenant_id = $1) AND occurred_at >= $2 AND occurred_at < $3
             AND ($4::text IS NULL OR model_key = $4)""", tenant_id, start, end, model_key)
    return count


async def update_pricing(conn: asyncpg.Connection, *, rows: Sequence[LedgerRow]) -> None:
    """Write the pricing columns (`ledger.PRICING_COLUMNS`) and `priced_at` of `rows` back to the ledger."""
    if rows:
        await conn.execute(_UPDATE_PRICING, *([getattr(r, n) for r in rows] for n in _UPDATED))
