"""The human review queue in Postgres (`review_queue`): every SQL statement about it.

The worker enqueues (`enqueue_for_review`, one item per tenant, event and rubric); the API locks the next
item for a reviewer (`lock_next_item`) and completes it (`item_for_update`, then `complete_item`, in one
transaction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ReviewEntry:
    tenant_id: str
    event_id: uuid.UUID
    evaluator_id: str
    rubric: str  # name@version
    reason: str
    priority: int


async def enqueue_for_review(conn: asyncpg.Connection | asyncpg.Pool, entries: list[ReviewEntry]) -> int:
    """Add items to the human review queue; one per (tenant, event, rubric): a second is ignored."""
    if not entries:
        return 0
    rows = await conn.fetch(
        """INSERT INTO review_queue (tenant_id, event_id, evaluator_id, rubric, reason, priority)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[])
           ON CONFLICT (tenant_id, event_id, rubric) DO NOTHING RETURNING item_id""",
        [e.tenant_id for e in entries], [e.event_id for e in entries], [e.evaluator_id for e in entries],
        [e.rubric for e in entries], [e.reason for e in entries], [e.priority for e in entries],
    )
    return len(rows)


_LOCK_NEXT = """
WITH candidate AS (
    SELECT item_id FROM review_queue
    WHERE tenant_id = $1 AND status = 'pending'
      AND (lock_owner IS NULL OR lock_expires_at <= $6 OR lock_owner = $2)
      AND ($3::text IS NULL OR rubric = $3) AND ($4::text IS NULL OR evaluator_id = $4)
    ORDER BY lock_owner IS NOT DISTINCT FROM $2 DESC, priority DESC, created_at, item_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE review_queue q SET lock_owner = $2, lock_expires_at = $6 + make_interval(mins => $5)
FROM candidate WHERE q.item_id = candidate.item_id
RETURNING q.*
"""


async def lock_next_item(*, conn: asyncpg.Connection, tenant_id: str, reviewer: str, lock_minutes: int,
                         now: datetime, rubric: str | None = None,
                         evaluator_id: str | None = None) -> asyncpg.Record | None:
    """Lock the next pending item for `reviewer` for `lock_minutes` from `now` and return it; None when there is
    none.

    The item the reviewer already holds comes first; then items nobody holds or whose lock expired, highest
    priority, then oldest, first. `SKIP LOCKED` keeps two callers from taking the same item at once.
    """
    row: asyncpg.Record | None = await conn.fetchrow(_LOCK_NEXT, tenant_id, reviewer, rubric, evaluator_id,
                                                     lock_minutes, now)
    return row


async def item_for_update(*, conn: asyncpg.Connection, tenant_id: str, item_id: int) -> asyncpg.Record | None:
    """The tenant's item, row-locked until the transaction ends; None when it has no such item."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM review_queue WHERE item_id = $1 AND tenant_id = $2 FOR UPDATE", item_id, tenant_id)
    return row


async def complete_item(*, conn: asyncpg.Connection, item_id: int, reviewer: str, feedback_id: int,
                        now: datetime) -> asyncpg.Record:
    """Mark the item done by `reviewer` at `now` with their feedback, and release its lock."""
    row: asyncpg.Record = await conn.fetchrow(
        """UPDATE review_queue SET status = 'done', completed_at = $4, completed_by = $2, feedback_id = $3,
               lock_owner = NULL, lock_expires_at = NULL
           WHERE item_id = $1 RETURNING *""", item_id, reviewer, feedback_id, now)
    return row
