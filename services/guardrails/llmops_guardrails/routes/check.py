"""`POST /v1/check`: the inline check of a prompt (and optionally a completion). Scope `guardrails:check`;
an inline `policy` override needs `admin`."""

from __future__ import annotations

from fastapi import APIRouter

from llmops_guardrails import inline
from llmops_guardrails.deps import Engine, Policies, Settings
from llmops_guardrails.schemas import CheckRequest, CheckResponse
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Checker, Pool
from llmops_shared.problems import response as problem

router = APIRouter(prefix="/v1/check", tags=["check"])


@router.post("", summary="Check a prompt (and optionally a completion) against the policy",
             response_model=CheckResponse, response_model_exclude_none=True,
             responses={413: problem("more than `check_max_chars` characters"),
                        403: problem("an inline `policy` from a key without `admin`")})
async def check(*, principal: Checker, db: Pool, engine: Engine, policies: Policies, settings: Settings,
                body: CheckRequest) -> CheckResponse:
    return await inline.check(db, engine=engine, policies=policies, tenant_id=principal.tenant_id, request=body,
                              max_chars=settings.check_max_chars, may_override=principal.allows(Scope.ADMIN))
