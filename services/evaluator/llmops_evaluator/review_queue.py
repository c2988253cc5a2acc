"""The human review queue: hand the most urgent item to a reviewer under a lock, and take their rating.

`next_review_item` locks the next pending item for N minutes from the caller's `now` (the API's clock, which
also decides when a lock has expired; never the database's): an item locked by someone else is skipped,
an expired lock is taken over, and the caller's own locked item comes back first (asking again does not
take a second one). `submit_review` stores the reviewer's feedback and completes the item in one
transaction. The worker fills the queue (`review_store.enqueue_for_review`); the SQL is `review_store`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from llmops_evaluator import review_store
from llmops_evaluator.evaluators import tenant_rubric
from llmops_evaluator.feedback import save_feedback
from llmops_evaluator.schemas import ReviewItemPublic, ReviewItemTaken, ReviewSubmitted, RubricDetail
from llmops_shared.problems import Conflict, Invalid, NotFound


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {key: row[key] for key in ReviewItemPublic.model_fields}


async def next_review_item(*, conn: asyncpg.Connection, tenant_id: str, reviewer: str, lock_minutes: int,
                           now: datetime, rubric: str | None = None,
                           evaluator_id: str | None = None) -> ReviewItemTaken | None:
    """Lock the next item for `reviewer` for `lock_minutes` from `now`, with its rubric; None when nothing is
    available."""
    row = await review_store.lock_next_item(conn=conn, tenant_id=tenant_id, reviewer=reviewer,
                                            lock_minutes=lock_minutes, now=now, rubric=rubric,
                                            evaluator_id=evaluator_id)
    if row is None:
        return None
    try:
        detail: RubricDetail | None = RubricDetail.of(
            await tenant_rubric(conn=conn, tenant_id=tenant_id, ref=row["rubric"], field="rubric"))
    except Invalid:
        detail = None  # an overall item, or a custom rubric since removed
    return ReviewItemTaken(**_item(row), rubric_detail=detail)


async def submit_review(*, conn: asyncpg.Connection, tenant_id: str, item_id: int, reviewer: str,
                        score: int | None, label: str | None, comment: str | None, now: datetime) -> ReviewSubmitted:
    """Store the reviewer's feedback for the item they hold and complete it at `now` (one transaction); a lock
    that expired by `now` is no longer anyone's."""
    async with conn.transaction():
        row = await review_store.item_for_update(conn=conn, tenant_id=tenant_id, item_id=item_id)
        if row is None:
            raise NotFound(f"no review item {item_id}")
        if row["status"] != "pending":
            raise Conflict(f"review item {item_id} is already {row['status']}")
        if row["lock_owner"] != reviewer:
            if row["lock_owner"] is not None and not _expired(row, now):
                raise Conflict(f"review item {item_id} is locked by another reviewer")
            raise Conflict(f"review item {item_id} is not locked by {reviewer!r}; take one with POST /v1/review/next")
        rubric = await tenant_rubric(conn=conn, tenant_id=tenant_id, ref=row["rubric"], field="item_id",
                                     location="path")
        feedback, _ = await save_feedback(conn=conn, tenant_id=tenant_id, event_id=row["event_id"], rubric=rubric,
                                          score=score, label=label, comment=comment, reviewer=reviewer)
        done = await review_store.complete_item(conn=conn, item_id=item_id, reviewer=reviewer, feedback_id=feedback.id,
                                                now=now)
    return ReviewSubmitted(item=ReviewItemPublic(**_item(done)), feedback=feedback)


def _expired(row: asyncpg.Record, now: datetime) -> bool:
    expires: datetime | None = row["lock_expires_at"]
    return expires is None or expires <= now
