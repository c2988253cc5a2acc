"""`/v1/agreement`: the judge vs people on one rubric (scope `eval:write`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from llmops_evaluator.agreement_report import agreement_report
from llmops_evaluator.rubrics import RubricRef
from llmops_evaluator.schemas import AgreementReport
from llmops_shared.deps import Conn, EvalWriter

router = APIRouter(prefix="/v1/agreement", tags=["agreement"])


@router.get("", summary="Judge vs people on one rubric")
async def agreement(principal: EvalWriter, conn: Conn, rubric: Annotated[RubricRef, Query()],
                    evaluator_id: str | None = None) -> AgreementReport:
    return await agreement_report(conn=conn, tenant_id=principal.tenant_id, rubric_ref=rubric,
                                  evaluator_id=evaluator_id)
