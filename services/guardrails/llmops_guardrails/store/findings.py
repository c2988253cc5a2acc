"""`guardrail_findings`: one row per finding, keyed (tenant_id, event_id, finding_no, occurred_at); value
hashes, never values. An event id is its tenant's own: another tenant's event with the same id has findings
of its own (migration guardrails/0012). Partitioned by month of `occurred_at` (migration guardrails/0010):
the key includes it, and the insert makes sure the rows' month partitions exist first
(`llmops_shared.partitions`)."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
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


def rows_document(rows: Sequence[FindingRow]) -> bytes:
    """The rows as one JSON document, for `insert_findings`' one parameter: an array of events, each run of consecutive
    rows with the same event columns once, `[event_id, tenant_id, app_id, occurred_at, policy_version, findings]`,
    `findings` an array of each row's own columns, `[finding_no, message_index, part, role, detector, entity_type,
    rule_id, start_offset, end_offset, score, value_hash]`. orjson writes a uuid in its canonical form, a datetime in
    RFC 3339 with its offset and microseconds, a float as the shortest text that reads back as the same double: each
    reads back in Postgres as the value asyncpg would have sent. Raises `orjson.JSONEncodeError` for what JSON cannot
    hold exactly (a lone surrogate, an integer past 64 bits; never in a finding), which `insert_findings` then sends
    as arrays, as before."""
    events: list[list[Any]] = []
    last: tuple[Any, ...] | None = None
    current: list[tuple[Any, ...]] = []
    for row in rows:
        key = _event_of(row)
        if key != last:
            last = key
            current = []
            events.append([*key, current])
        current.append(_finding_of(row))
    return orjson.dumps(events)


_event_of = itemgetter(*_EVENT_COLUMNS)
_finding_of = itemgetter(*_FINDING_COLUMNS)

_INSERT_FROM_JSON = """WITH new AS (
     INSERT INTO guardrail_findings
       (event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector,
        entity_type, rule_id, start_offset, end_offset, score, value_hash, policy_version)
     SELECT (e->>0)::uuid, (f->>0)::int, e->>1, e->>2, (e->>3)::timestamptz, (f->>1)::int, f->>2, f->>3, f->>4,
            f->>5, f->>6, (f->>7)::int, (f->>8)::int, (f->>9)::float8, f->>10, e->>4
     FROM jsonb_array_elements($1::text::jsonb) AS e, jsonb_array_elements(e->5) AS f
     ON CONFLICT (tenant_id, event_id, finding_no, occurred_at) DO NOTHING
     RETURNING 1)
   SELECT count(*) FROM new"""

_INSERT_FROM_ARRAYS = """WITH new AS (
     INSERT INTO guardrail_findings
       (event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector,
        entity_type, rule_id, start_offset, end_offset, score, value_hash, policy_version)
     SELECT e.event_id, f.finding_no, e.tenant_id, e.app_id, e.occurred_at, f.message_index, f.part, f.role,
            f.detector, f.entity_type, f.rule_id, f.start_offset, f.end_offset, f.score, f.value_hash,
            e.policy_version
     FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::int[], $9::int[], $10::float8[], $11::text[], $12::int[])
            AS f(finding_no, message_index, part, role, detector, entity_type, rule_id, start_offset,
                 end_offset, score, value_hash, ev)
     JOIN unnest($13::uuid[], $14::text[], $15::text[], $16::timestamptz[], $17::text[]) WITH ORDINALITY
            AS e(event_id, tenant_id, app_id, occurred_at, policy_version, ev) USING (ev)
     ON CONFLICT (tenant_id, event_id, finding_no, occurred_at) DO NOTHING
     RETURNING 1)
   SELECT count(*) FROM new"""


async def insert_findings(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """Insert findings rows, idempotently; returns how many were new. The rows go as one JSON parameter
    (`rows_document`): asyncpg encodes array parameters element by element (~200 elements, ~40 µs of the worker's
    CPU, for a name-dense event's 17 findings), orjson writes the document in a few. Rows JSON cannot hold go as
    arrays (`insert_findings_arrays`), as before."""
    if not rows:
        return 0
    try:
        document = rows_document(rows)
    except orjson.JSONEncodeError:
        return await insert_findings_arrays(conn, rows=rows)
    await ensure_month_partitions(conn, "guardrail_findings", list({row[4] for row in rows}))  # occurred_at
    inserted: int = await conn.fetchval(_INSERT_FROM_JSON, document.decode())
    return inserted


async def insert_findings_arrays(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """`insert_findings` with one array parameter per column (the statement before the JSON document; kept for rows
    JSON cannot hold, and as the reference the tests compare the JSON path against)."""
    if not rows:
        return 0
    events, findings = split_rows(rows)
    await ensure_month_partitions(conn, "guardrail_findings", events[3])  # occurred_at
    inserted: int = await conn.fetchval(_INSERT_FROM_ARRAYS, *findings, *events)
    return inserted
