"""Human feedback: a person's rating of a judged interaction on a rubric, on the rubric's own scale.

A rating is a score on the rubric's scale or one of its labels, or both if they agree (`rating`); it is
stored normalised, one per (event, rubric, reviewer), and sending it again replaces it. The SQL is
`feedback_store`'s; feedback is only taken for an interaction the tenant had judged (else `NotFound`).
"""

from __future__ import annotations

import uuid

import asyncpg

from llmops_evaluator import feedback_store, result_store
from llmops_evaluator.evaluators import tenant_rubric
from llmops_evaluator.rubrics import Rubric
from llmops_evaluator.schemas import FeedbackPublic
from llmops_shared.problems import Invalid, NotFound


def rating(rubric: Rubric, *, score: int | None, label: str | None) -> tuple[int, str]:
    """A person's rating as (score on the rubric's scale, label); either may be given, or both if they agree."""
    if score is None and label is None:
        raise Invalid("score", "give a score or a label")
    if score is not None and not rubric.scale_min <= score <= rubric.scale_max:
        raise Invalid("score", f"must be an integer from {rubric.scale_min} to {rubric.scale_max} for {rubric.ref}")
    if label is not None and label not in rubric.labels:
        raise Invalid("label", f"must be one of {', '.join(rubric.labels)} for {rubric.ref}")
    raw = score if score is not None else rubric.scale_min + rubric.labels.index(label or "")
    if label is not None and rubric.label(raw) != label:
        raise Invalid("label", f"score {raw} is {rubric.label(raw)!r} on {rubric.ref}, not {label!r}")
    return raw, rubric.label(raw)


def scale_score(rubric: Rubric, normalised: float) -> int:
    """A stored normalised score back on the rubric's integer scale."""
    return round(rubric.scale_min + normalised * (rubric.scale_max - rubric.scale_min))


async def save_feedback(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID, rubric: Rubric,
                        score: int | None, label: str | None, comment: str | None,
                        reviewer: str) -> tuple[FeedbackPublic, bool]:
    """Store (or replace) a rating already known to be about a judged interaction. Returns (feedback, created)."""
    raw, label = rating(rubric, score=score, label=label)
    row = await feedback_store.upsert_feedback(conn=conn, tenant_id=tenant_id, event_id=event_id, rubric=rubric.ref,
                                               score=rubric.normalise(raw), label=label, comment=comment,
                                               reviewer=reviewer)
    feedback = FeedbackPublic(
        id=row["id"], event_id=row["event_id"], rubric=row["rubric"], score=scale_score(rubric, row["score"]),
        normalised_score=row["score"], label=row["label"], reviewer=row["reviewer"], comment=row["comment"],
        created_at=row["created_at"], updated_at=row["updated_at"])
    return feedback, bool(row["created"])


async def submit_feedback(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID, rubric_ref: str,
                          score: int | None, label: str | None, comment: str | None,
                          reviewer: str) -> tuple[FeedbackPublic, bool]:
    """Store (or replace) a reviewer's rating of a judged interaction. Returns (feedback, created)."""
    rubric = await tenant_rubric(conn=conn, tenant_id=tenant_id, ref=rubric_ref, field="rubric")
    if not await result_store.is_judged(conn=conn, tenant_id=tenant_id, event_id=event_id):
        raise NotFound(f"no judged interaction {event_id}")
    return await save_feedback(conn=conn, tenant_id=tenant_id, event_id=event_id, rubric=rubric, score=score,
                               label=label, comment=comment, reviewer=reviewer)
