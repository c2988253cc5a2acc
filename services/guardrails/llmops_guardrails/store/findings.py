"""`guardrail_findings`: one row per finding, keyed (tenant_id, event_id, finding_no, occurred_at); value
hashes, never values. An event id is its tenant's own: another tenant's event with the same id has findings
of its own (migration guardrails/0012). Partitioned by month of `occurred_at` (migration guardrails/0010):
the key includes it, and the insert makes sure the rows' month partitions exist first
(`llmops_shared.partitions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

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


async def insert_findings(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """Insert findings rows, idempotently; returns how many were new."""
    if not rows:
        return 0
    events, findings = split_rows(rows)
    await ensure_month_partitions(conn, "guardrail_findings", events[3])  # occurred_at
    inserted: int = await conn.fetchval(
        """WITH new AS (
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
           SELECT count(*) FROM new""",
        *findings, *events)
    return inserted
