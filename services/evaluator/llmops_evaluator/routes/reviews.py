"""`/v1/review`: the human review queue (scope `eval:write`). The reviewer is the calling key: one key per
person, so nobody can take or submit another reviewer's locked item by naming them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from llmops_evaluator import review_queue
from llmops_evaluator.routes import problem
from llmops_evaluator.schemas import Rating, ReviewItemTaken, ReviewNext, ReviewSubmitted
from llmops_shared.deps import Conn, EvalWriter, Now

router = APIRouter(prefix="/v1/review", tags=["review"])


@router.post("/next", response_model=ReviewItemTaken, summary="Take the next review item, locked for you",
             responses={204: {"description": "nothing to review"}})
async def review_next(principal: EvalWriter, conn: Conn, now: Now,
                      body: Annotated[ReviewNext | None, Body()] = None) -> ReviewItemTaken | Response:
    options = body or ReviewNext()
    item = await review_queue.next_review_item(
        conn=conn, tenant_id=principal.tenant_id, reviewer=principal.key_id,
        lock_minutes=options.lock_minutes, now=now, rubric=options.rubric, evaluator_id=options.evaluator_id)
    return Response(status_code=204) if item is None else item


@router.post("/{item_id}/submit", summary="Rate the item you hold; completes it",
             responses={404: problem("no such item"), 409: problem("not locked by you, or already completed")})
async def review_submit(item_id: int, body: Rating, principal: EvalWriter, conn: Conn, now: Now) -> ReviewSubmitted:
    return await review_queue.submit_review(conn=conn, tenant_id=principal.tenant_id, item_id=item_id,
                                            reviewer=principal.key_id, score=body.score,
                                            label=body.label, comment=body.comment, now=now)
