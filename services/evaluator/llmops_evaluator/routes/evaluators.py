"""`/v1/evaluators`: a tenant's evaluators (scope `admin`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from llmops_evaluator import evaluators
from llmops_evaluator.credentials import JudgeAccess
from llmops_evaluator.routes import problem
from llmops_evaluator.schemas import EvaluatorList, EvaluatorPublic
from llmops_shared.deps import Admin, Conn

router = APIRouter(prefix="/v1/evaluators", tags=["evaluators"])

_EXAMPLE = {
    "id": "support-quality", "apps": ["support-bot"], "rubrics": ["relevance@1", "safety@1"], "sample_rate": 0.05,
    "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "credential": "openai-shared"},
    "max_concurrency": 4, "daily_spend_cap_usd": "20.00", "review_sample_rate": 0.1,
}
EvaluatorBody = Annotated[dict[str, Any], Body(
    description="An evaluator config (docs/evaluator.md); `tenant_id` is the key's and may be omitted",
    openapi_examples={"evaluator": {"value": _EXAMPLE}})]


async def _judge_access(request: Request) -> JudgeAccess:
    access: JudgeAccess = request.app.state.judge_access
    return access


Judges = Annotated[JudgeAccess, Depends(_judge_access)]


@router.get("", summary="The tenant's evaluators")
async def list_evaluators(principal: Admin, conn: Conn) -> EvaluatorList:
    return EvaluatorList(items=await evaluators.list_evaluators(conn=conn, tenant_id=principal.tenant_id))


@router.post("", status_code=201, summary="Create an evaluator",
             responses={409: problem("you already have an evaluator with this id"),
                        422: problem("invalid config: `errors` names each field (a credential not granted to you, "
                                     "a base_url the judge may not reach)")})
async def create_evaluator(body: EvaluatorBody, principal: Admin, conn: Conn, judges: Judges) -> EvaluatorPublic:
    return await evaluators.create_evaluator(conn=conn, tenant_id=principal.tenant_id, body=body, judges=judges)


@router.get("/{evaluator_id}", summary="One evaluator")
async def get_evaluator(evaluator_id: str, principal: Admin, conn: Conn) -> EvaluatorPublic:
    return await evaluators.get_evaluator(conn=conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id)


@router.put("/{evaluator_id}", summary="Replace an evaluator's config")
async def replace_evaluator(evaluator_id: str, body: EvaluatorBody, principal: Admin, conn: Conn,
                            judges: Judges) -> EvaluatorPublic:
    return await evaluators.replace_evaluator(conn=conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id,
                                              body=body, judges=judges)


@router.delete("/{evaluator_id}", status_code=204, response_class=Response,
               summary="Disable an evaluator (its results stay; PUT with enabled: true restarts it)")
async def disable_evaluator(evaluator_id: str, principal: Admin, conn: Conn) -> None:
    await evaluators.disable_evaluator(conn=conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id)
