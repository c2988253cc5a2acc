"""`trace_spans`: the worker's idempotent batch insert, and the erasure of a trace or a user.

The insert skips rows it already has (keyed by (tenant_id, event_id, occurred_at): an event's time never
changes) and rows an erasure covers (`trace_erasures`), and returns the keys of the rows it inserted: the
rollups count only those. The usual batch (no erasure names any of its traces or users, none of its rows
stored before) is COPYed straight into `trace_spans`, in a savepoint; a batch that fails there on a row
already stored (a redelivery) or that an erasure may cover is COPYed into a staging table of the session
and inserted from it with `ON CONFLICT DO NOTHING` and the erasure check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from llmops_traces.spans import COLUMNS, SpanRow
from llmops_traces.store import summaries

_STAGING = """CREATE TEMP TABLE IF NOT EXISTS trace_spans_incoming (LIKE trace_spans INCLUDING DEFAULTS)
               ON COMMIT DELETE ROWS"""
"""A batch that may hold rows stored before or erased is COPYed here (this session's own table, emptied at
each commit), then inserted from it (`_INSERT`): sending a batch's values as 35 arrays through `unnest`
cost asyncpg an ABC instance check per element, the largest Python cost of the writer after decoding
(cProfile of bench/traces_profile.py)."""

# Built once from the constant column names: no outside input reaches this SQL.
_INSERT = f"""
    INSERT INTO trace_spans ({", ".join(COLUMNS)})
    SELECT {", ".join(f"s.{c}" for c in COLUMNS)}
    FROM trace_spans_incoming s
    WHERE NOT EXISTS (
        SELECT 1 FROM trace_erasures e
        WHERE e.tenant_id = s.tenant_id AND s.occurred_at < e.erased_before
          AND ((e.kind = 'trace' AND e.subject = s.trace_id) OR (e.kind = 'user' AND e.subject = s.user_id)))
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, event_id::text
"""  # noqa: S608


def _records(rows: Sequence[SpanRow]) -> list[tuple[object, ...]]:
    return [(r.tenant_id, r.occurred_at, r.event_id, r.trace_id, r.span_id, r.parent_span_id, r.span_kind, r.name,
             r.app_id, r.environment, r.provider, r.model, r.response_model, r.status, r.error_type, r.error_message,
             r.prompt_name, r.prompt_version, r.prompt_variant, r.user_id, r.session_id, list(r.tags), r.latency_ms,
             r.ttft_ms, r.input_tokens, r.output_tokens, r.cache_read_input_tokens, r.cache_write_input_tokens,
             r.reasoning_tokens, r.finding_count, list(r.finding_types), r.text_stored, r.input, r.output,
             r.metadata) for r in rows]


async def _erasure_may_cover(conn: asyncpg.Connection, rows: Sequence[SpanRow]) -> bool:
    """Whether an erasure names a trace or a user of `rows` (whenever it was: the exact check is `_INSERT`'s)."""
    subjects = sorted({(r.tenant_id, "trace", r.trace_id) for r in rows}
                      | {(r.tenant_id, "user", r.user_id) for r in rows if r.user_id is not None})
    tenants, kinds, names = (list(c) for c in zip(*subjects, strict=True))
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS b(tenant_id, kind, subject)
                          JOIN trace_erasures e USING (tenant_id, kind, subject))""", tenants, kinds, names))


async def insert(conn: asyncpg.Connection, *, rows: Sequence[SpanRow]) -> list[tuple[str, str]]:
    """Insert `rows` (distinct keys), in the caller's transaction; returns (tenant_id, event_id) of those
    inserted now."""
    if not rows:
        return []
    records = _records(rows)
    if not await _erasure_may_cover(conn, rows):
        try:
            async with conn.transaction():  # a savepoint: a row stored before fails the COPY, and only it
                await conn.copy_records_to_table("trace_spans", columns=COLUMNS, records=records)
            return [(r.tenant_id, r.event_id) for r in rows]
        except asyncpg.UniqueViolationError:
            pass
    await conn.execute(_STAGING)
    await conn.copy_records_to_table("trace_spans_incoming", columns=COLUMNS, records=records)
    inserted = await conn.fetch(_INSERT)  # (a second call in one transaction finds the first's rows stored)
    return [(r["tenant_id"], r["event_id"]) for r in inserted]


async def erase(conn: asyncpg.Connection, *, tenant_id: str, kind: str, subject: str,
                erased_before: datetime) -> int:
    """Delete the spans of one trace or one user (`kind`) and record the erasure, so that a redelivered
    span that occurred before `erased_before` is not stored again, and recompute the summaries
    (`trace_summaries`) of the traces it touched. Returns the spans deleted."""
    column = {"trace": "trace_id", "user": "user_id"}[kind]
    await conn.execute(
        """INSERT INTO trace_erasures (tenant_id, kind, subject, erased_before) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id, kind, subject)
           DO UPDATE SET erased_before = greatest(trace_erasures.erased_before, excluded.erased_before),
                         requested_at = now()""",
        tenant_id, kind, subject, erased_before)
    deleted = await conn.fetch(f"DELETE FROM trace_spans WHERE tenant_id = $1 AND {column} = $2 "  # noqa: S608
                               "RETURNING trace_id", tenant_id, subject)
    # The summaries of the traces touched now sum what is left of them (nothing, for a whole trace).
    await summaries.rebuild(conn, tenant_id=tenant_id, trace_ids=sorted({r["trace_id"] for r in deleted}))
    return len(deleted)
