"""`trace_spans`: the worker's idempotent batch insert, and the erasure of a trace or a user.

The insert takes the batch as arrays (`unnest`), skips rows it already has (`ON CONFLICT DO NOTHING` on
(tenant_id, event_id, occurred_at): an event's time never changes) and rows an erasure covers
(`trace_erasures`), and returns the keys of the rows it inserted: the rollups count only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from llmops_traces.spans import COLUMNS, SpanRow
from llmops_traces.store import summaries

_TYPES = {
    "occurred_at": "timestamptz", "event_id": "uuid", "latency_ms": "float8", "ttft_ms": "float8",
    "input_tokens": "int8", "output_tokens": "int8", "cache_read_input_tokens": "int8",
    "cache_write_input_tokens": "int8", "reasoning_tokens": "int8", "finding_count": "int4",
    "text_stored": "bool", "input": "jsonb", "output": "jsonb", "metadata": "jsonb",
    "tags": "jsonb", "finding_types": "jsonb",  # arrays of arrays cannot be unnested: sent as JSON arrays
}
_JSON_ARRAYS = ("tags", "finding_types")


def _select(name: str) -> str:
    if name in _JSON_ARRAYS:
        return f"ARRAY(SELECT jsonb_array_elements_text(s.{name}))"
    return f"s.{name}"


# Built once from the constant column names: no outside input reaches this SQL.
_INSERT = f"""
    INSERT INTO trace_spans ({", ".join(COLUMNS)})
    SELECT {", ".join(_select(c) for c in COLUMNS)}
    FROM unnest({", ".join(f"${i + 1}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS))})
         AS s({", ".join(COLUMNS)})
    WHERE NOT EXISTS (
        SELECT 1 FROM trace_erasures e
        WHERE e.tenant_id = s.tenant_id AND s.occurred_at < e.erased_before
          AND ((e.kind = 'trace' AND e.subject = s.trace_id) OR (e.kind = 'user' AND e.subject = s.user_id)))
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, event_id::text
"""  # noqa: S608


def _value(row: SpanRow, name: str) -> object:
    value = getattr(row, name)
    if name in _JSON_ARRAYS:
        import orjson

        return orjson.dumps(list(value)).decode()
    return value


async def insert(conn: asyncpg.Connection, *, rows: Sequence[SpanRow]) -> list[tuple[str, str]]:
    """Insert `rows` (distinct keys); returns (tenant_id, event_id) of those inserted now."""
    if not rows:
        return []
    columns = [[_value(r, name) for r in rows] for name in COLUMNS]
    records = await conn.fetch(_INSERT, *columns)
    return [(r["tenant_id"], r["event_id"]) for r in records]


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
