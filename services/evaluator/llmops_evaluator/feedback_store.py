"""Human feedback in Postgres (`human_feedback`), and its pairing with the judge's results: all their SQL.

A rating is stored normalised to [0, 1] (`score`) with its label, one per (tenant, event, rubric,
reviewer): sending it again replaces it.
"""

from __future__ import annotations

import uuid

import asyncpg


async def upsert_feedback(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID, rubric: str,
                          score: float, label: str, comment: str | None, reviewer: str) -> asyncpg.Record:
    """Store or replace the reviewer's rating; the row comes back with `created` (False: replaced)."""
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO human_feedback (tenant_id, event_id, rubric, score, label, comment, reviewer)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, event_id, rubric, reviewer) DO UPDATE SET score = EXCLUDED.score,
               label = EXCLUDED.label, comment = EXCLUDED.comment, updated_at = now()
           RETURNING *, (xmax = 0) AS created""",
        tenant_id, event_id, rubric, score, label, comment, reviewer)
    return row


async def agreement_pairs(*, conn: asyncpg.Connection, tenant_id: str, rubric: str, rubric_name: str,
                          rubric_version: int, evaluator_id: str | None = None) -> list[asyncpg.Record]:
    """One row per person's scored rating on `rubric` (name@version) of an event the judge scored `ok`.

    Columns: `evaluator_id`, `raw_score` (the judge's, on the rubric's scale) and `human_score` (the
    person's, normalised), by evaluator then feedback id.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT r.evaluator_id, r.raw_score, f.score AS human_score
           FROM human_feedback f
           JOIN evaluation_results r ON r.event_id = f.event_id AND r.tenant_id = f.tenant_id
                AND r.rubric = $3 AND r.rubric_version = $4 AND r.status = 'ok'
           WHERE f.tenant_id = $1 AND f.rubric = $2 AND f.score IS NOT NULL
             AND ($5::text IS NULL OR r.evaluator_id = $5)
           ORDER BY r.evaluator_id, f.id""",
        tenant_id, rubric, rubric_name, rubric_version, evaluator_id)
    return rows
