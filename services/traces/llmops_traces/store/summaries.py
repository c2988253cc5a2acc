"""`trace_summaries`: a row per trace and UTC day (migration traces/0004), upserted by the writer.

`add` upserts the summaries of the span rows inserted now (`spans.summaries`), in key order, in the batch
transaction; on a row that exists, counts add up and the root-first span, the instants, user, session and
tags combine exactly as `spans.TraceSummary.merge` does, so the table always equals the view
`trace_summaries_of_spans` (the same aggregation over the spans). `rebuild` recomputes the rows of some
traces from their spans (after an erasure).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from llmops_traces.spans import TraceSummary

COLUMNS = ("tenant_id", "day", "trace_id", "first_at", "last_at", "ended_at", "span_count", "error_count",
           "finding_count", "input_tokens", "output_tokens", "root_is_root", "root_at", "root_span_id", "root_name",
           "app_id", "environment", "user_id", "session_id", "tags")
_TYPES = {"day": "timestamptz", "first_at": "timestamptz", "last_at": "timestamptz", "ended_at": "timestamptz",
          "span_count": "int4", "error_count": "int4", "finding_count": "int4", "input_tokens": "int8",
          "output_tokens": "int8", "root_is_root": "bool", "root_at": "timestamptz", "tags": "jsonb"}
_ROOT = ("root_is_root", "root_at", "root_span_id", "root_name", "app_id", "environment")
_NEWER_ROOT = ('(NOT excluded.root_is_root, excluded.root_at, excluded.root_span_id COLLATE "C") < '
               '(NOT t.root_is_root, t.root_at, t.root_span_id COLLATE "C")')

# Built once from constant names: no outside input reaches this SQL.
_UPSERT = f"""
    INSERT INTO trace_summaries AS t ({", ".join(COLUMNS)})
    SELECT {", ".join("ARRAY(SELECT jsonb_array_elements_text(s.tags))" if c == "tags" else f"s.{c}"
                      for c in COLUMNS)}
    FROM unnest({", ".join(f"${i + 1}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS))})
         AS s({", ".join(COLUMNS)})
    ON CONFLICT (tenant_id, trace_id, day) DO UPDATE SET
        {", ".join(f"{c} = CASE WHEN {_NEWER_ROOT} THEN excluded.{c} ELSE t.{c} END" for c in _ROOT)},
        first_at = least(t.first_at, excluded.first_at), last_at = greatest(t.last_at, excluded.last_at),
        ended_at = greatest(t.ended_at, excluded.ended_at),
        span_count = t.span_count + excluded.span_count, error_count = t.error_count + excluded.error_count,
        finding_count = t.finding_count + excluded.finding_count,
        input_tokens = t.input_tokens + excluded.input_tokens,
        output_tokens = t.output_tokens + excluded.output_tokens,
        user_id = greatest(t.user_id COLLATE "C", excluded.user_id COLLATE "C"),
        session_id = greatest(t.session_id COLLATE "C", excluded.session_id COLLATE "C"),
        tags = CASE WHEN excluded.tags <@ t.tags THEN t.tags ELSE
            ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(t.tags || excluded.tags) AS x ORDER BY 1) END
"""  # noqa: S608


async def add(conn: asyncpg.Connection, *, pieces: Sequence[TraceSummary]) -> None:
    """Add `pieces` (distinct keys, in key order) to `trace_summaries`, in the caller's transaction."""
    if not pieces:
        return
    columns: list[list[object]] = [
        [orjson.dumps(list(p.tags)).decode() for p in pieces] if c == "tags" else [getattr(p, c) for p in pieces]
        for c in COLUMNS]
    await conn.execute(_UPSERT, *columns)


async def rebuild(conn: asyncpg.Connection, *, tenant_id: str, trace_ids: Sequence[str]) -> int:
    """Recompute the rows of `trace_ids` from their spans; returns the rows written."""
    if not trace_ids:
        return 0
    return int(await conn.fetchval("SELECT traces_rebuild_summaries($1, $2::text[])", tenant_id, list(trace_ids)))
