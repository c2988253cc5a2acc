"""`/v1/feedback`: a person's rating of a judged interaction (scope `eval:write`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llmops_evaluator import feedback
from llmops_evaluator.routes import problem
from llmops_evaluator.schemas import FeedbackCreate, FeedbackPublic
from llmops_shared.deps import Conn, EvalWriter

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", status_code=201, summary="A person's score or label for a judged interaction on a rubric",
             responses={200: {"model": FeedbackPublic, "description": "replaced this reviewer's earlier feedback"},
                        404: problem("no judged interaction with this event_id")})
async def submit_feedback(body: FeedbackCreate, principal: EvalWriter, conn: Conn,
                          response: Response) -> FeedbackPublic:
    stored, created = await feedback.submit_feedback(
        conn=conn, tenant_id=principal.tenant_id, event_id=body.event_id, rubric_ref=body.rubric, score=body.score,
        label=body.label, comment=body.comment, reviewer=principal.key_id)
    if not created:
        response.status_code = 200
    return stored
