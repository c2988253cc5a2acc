"""`guardrail_findings`: one row per finding, keyed (tenant_id, event_id, finding_no, occurred_at); value
hashes, never values. An event id is its tenant's own: another tenant's event with the same id has findings
of its own (migration guardrails/0012). Partitioned by month of `occurred_at` (migration guardrails/0010):
the key includes it, and the insert makes sure the rows' month partitions exist first
(`llmops_shared.partitions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from llmops_guardrails.screening import FindingRow
from llmops_shared.partitions import ensure_month_partitions

# A row's columns that belong to its event (event_id, tenant_id, app_id, occurred_at, policy_version) and those of
# the finding itself, by position in `FindingRow`.
_EVENT_COLUMNS = (0, 2, 3, 4, 15)
_FINDING_COLUMNS = (1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)


def split_rows(rows: Sequence[FindingRow]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The rows as two sets of columns: each run of consecutive rows with the same event columns once (`events`,
    one list per column in `_EVENT_COLUMNS` order), and per row its finding columns plus the 1-based index of its run
    (`findings`, one list per column in `_FINDING_COLUMNS` order, then the index). The event's values are sent once
    instead of once per finding: asyncpg encodes each array element on its own, and a name-dense event has ~17
    findings (a timestamptz costs ~0.5 µs an element)."""
    columns = list(zip(*rows, strict=True))
    events: list[list[Any]] = [[] for _ in _EVENT_COLUMNS]
    index: list[int] = []
    last: tuple[Any, ...] | None = None
    for key in zip(*(columns[i] for i in _EVENT_COLUMNS), strict=True):
        if key != last:
            last = key
            for column, value in zip(events, key, strict=True):
                column.append(value)
        index.append(len(events[0]))
    findings = [list(columns[i]) for i in _FINDING_COLUMNS]
    findings.append(index)
    return events, findings


def array_literal(values: Sequence[Any]) -> str | None:
    """`values` (ints, floats, strings or None) as a Postgres array literal, `{1,NULL,"a b"}`, written by orjson: a JSON
    array of scalars is that literal but for its brackets when orjson escaped nothing (no backslash in its output: no
    quote, backslash or control character in a string). JSON's `null` is the literal's NULL (unquoted, any case);
    a string is double-quoted, its other characters taken as they are; an int is its digits; a float its shortest
    round-trip text (`float8in` reads back the same double). None when the literal could differ: an escape, or a
    value orjson refuses (a lone surrogate, an int past 64 bits)."""
    try:
        document = orjson.dumps(values)
    except orjson.JSONEncodeError:
        return None
    if b"\\" in document:
        return None
    return "{" + document[1:-1].decode() + "}"


_INSERT = """WITH new AS (
     INSERT INTO guardrail_findings
       (event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector,
        entity_type, rule_id, start_offset, end_offset, score, value_hash, policy_version)
     SELECT e.event_id, f.finding_no, e.tenant_id, e.app_id, e.occurred_at, f.message_index, f.part, f.role,
            f.detector, f.entity_type, f.rule_id, f.start_offset, f.end_offset, f.score, f.value_hash,
            e.policy_version
     FROM unnest($1{}::int[], $2{}::int[], $3{}::text[], $4{}::text[], $5{}::text[], $6{}::text[], $7{}::text[],
                 $8{}::int[], $9{}::int[], $10{}::float8[], $11{}::text[], $12{}::int[])
            AS f(finding_no, message_index, part, role, detector, entity_type, rule_id, start_offset,
                 end_offset, score, value_hash, ev)
     JOIN unnest($13::uuid[], $14::text[], $15::text[], $16::timestamptz[], $17::text[]) WITH ORDINALITY
            AS e(event_id, tenant_id, app_id, occurred_at, policy_version, ev) USING (ev)
     ON CONFLICT (tenant_id, event_id, finding_no, occurred_at) DO NOTHING
     RETURNING 1)
   SELECT count(*) FROM new"""
_INSERT_FROM_LITERALS = _INSERT.format(*["::text"] * 12)
_INSERT_FROM_ARRAYS = _INSERT.format(*[""] * 12)
_SCORES = 9  # the score column, by position in `findings`: NOT NULL, so a null in its literal (orjson writes NaN as
# null) sends the arrays


async def insert_findings(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """Insert findings rows, idempotently; returns how many were new. Each run of an event's rows sends the event's
    columns once (`split_rows`), and each finding column goes as one text parameter holding its array literal
    (`array_literal`), cast to its array type in SQL: asyncpg encodes an array parameter element by element (~0.1-0.3
    µs each, ~200 for a name-dense event's 17 findings), orjson writes the literal in a few µs for the whole batch.
    When a column's literal could differ from its values (an escape), the rows go as arrays, as before
    (`insert_findings_arrays`). Values of the wrong type for their column (an offset past 2**31, a number as a
    text: never in a `FindingRow`, whose offsets a text's length bounds) would fail in Postgres, or be read as text,
    where asyncpg refused them."""
    if not rows:
        return 0
    events, findings = split_rows(rows)
    literals = [array_literal(column) for column in findings]
    scores = literals[_SCORES]
    if None in literals or scores is None or "null" in scores:
        return await _insert_arrays(conn, events, findings)
    await ensure_month_partitions(conn, "guardrail_findings", events[3])  # occurred_at
    inserted: int = await conn.fetchval(_INSERT_FROM_LITERALS, *literals, *events)
    return inserted


async def insert_findings_arrays(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """`insert_findings` with one array parameter per column (the statement before the literals; kept for columns whose
    literal could differ, and as the reference the tests compare the literals against)."""
    if not rows:
        return 0
    events, findings = split_rows(rows)
    return await _insert_arrays(conn, events, findings)


async def _insert_arrays(conn: asyncpg.Connection, events: list[list[Any]], findings: list[list[Any]]) -> int:
    await ensure_month_partitions(conn, "guardrail_findings", events[3])  # occurred_at
    inserted: int = await conn.fetchval(_INSERT_FROM_ARRAYS, *findings, *events)
    return inserted
