"""`guardrail_findings`: one row per finding, keyed (tenant_id, event_id, finding_no, occurred_at); value
hashes, never values. An event id is its tenant's own: another tenant's event with the same id has findings
of its own (migration guardrails/0012). Partitioned by month of `occurred_at` (migration guardrails/0010):
the key includes it, and the insert makes sure the rows' month partitions exist first
(`llmops_shared.partitions`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from llmops_guardrails.screening import FindingRow
from llmops_shared.partitions import ensure_month_partitions


async def insert_findings(conn: asyncpg.Connection, *, rows: Sequence[FindingRow]) -> int:
    """Insert findings rows, idempotently; returns how many were new."""
    if not rows:
        return 0
    columns = list(zip(*rows, strict=True))
    await ensure_month_partitions(conn, "guardrail_findings", columns[4])  # occurred_at
    inserted = await conn.fetch(
        """INSERT INTO guardrail_findings
             (event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector,
              entity_type, rule_id, start_offset, end_offset, score, value_hash, policy_version)
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::int[],
                                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[],
                                $14::float8[], $15::text[], $16::text[])
           ON CONFLICT (tenant_id, event_id, finding_no, occurred_at) DO NOTHING
           RETURNING 1""",
        *[list(c) for c in columns])
    return len(inserted)
