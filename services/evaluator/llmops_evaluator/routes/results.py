"""`/v1/results`: judgment results (scope `eval:write`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from llmops_evaluator import results
from llmops_evaluator.results import ResultFilter
from llmops_evaluator.routes import problem
from llmops_evaluator.schemas import ResultList, ResultPage
from llmops_shared.deps import Conn, EvalWriter

router = APIRouter(prefix="/v1/results", tags=["results"])


@router.get("", summary="Judgment results, newest first, paginated")
async def list_results(*, principal: EvalWriter, conn: Conn, event_id: uuid.UUID | None = None,
                       evaluator_id: str | None = None, rubric: str | None = None, status: str | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> ResultPage:
    filters = ResultFilter(event_id=event_id, evaluator_id=evaluator_id, rubric=rubric, status=status, since=since,
                           until=until)
    return await results.list_results(conn=conn, tenant_id=principal.tenant_id, filters=filters, limit=limit,
                                      cursor=cursor)


@router.get("/{event_id}", summary="Every result of one judged interaction",
            responses={404: problem("no judged interaction with this event_id")})
async def event_results(event_id: uuid.UUID, principal: EvalWriter, conn: Conn) -> ResultList:
    return await results.event_results(conn=conn, tenant_id=principal.tenant_id, event_id=event_id)
