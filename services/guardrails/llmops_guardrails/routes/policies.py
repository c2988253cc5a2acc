"""`/v1/policies`, `/v1/policy`: stored policy overrides, versioned, and the effective policy. Scope `admin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from llmops_guardrails import policies_service
from llmops_guardrails.deps import Policies
from llmops_guardrails.schemas import PoliciesPublic, PolicyPublic, PolicyPut, PolicyVersionsPublic, PolicyView
from llmops_shared.contract import Identifier
from llmops_shared.deps import Admin, Pool

router = APIRouter(tags=["policies"])

AppQuery = Annotated[Identifier | None, Query(description="an app's policy; absent: the tenant-wide one")]


@router.get("/v1/policies", summary="The latest version of each stored override", response_model=PoliciesPublic)
async def list_policies(*, principal: Admin, db: Pool) -> PoliciesPublic:
    return await policies_service.list_latest(db, tenant_id=principal.tenant_id)


@router.get("/v1/policy", summary="A stored override (latest or a version) and the effective policy",
            response_model=PolicyView)
async def get_policy(*, principal: Admin, db: Pool, app_id: AppQuery = None,
                     version: Annotated[int | None, Query(ge=1)] = None) -> PolicyView:
    return await policies_service.policy_view(db, tenant_id=principal.tenant_id, app_id=app_id or "",
                                              version=version)


@router.get("/v1/policy/versions", summary="Stored versions of an override, newest first",
            response_model=PolicyVersionsPublic)
async def policy_versions(*, principal: Admin, db: Pool, app_id: AppQuery = None) -> PolicyVersionsPublic:
    return await policies_service.list_versions(db, tenant_id=principal.tenant_id, app_id=app_id or "")


async def _submitted(request: Request) -> str | dict[str, object] | None:
    return policies_service.read_submitted(await request.body(), request.headers.get("content-type", ""))


@router.put(
    "/v1/policy", status_code=201, response_model=PolicyPublic,
    summary="Store a new version of the tenant's (or an app's) override",
    description="Body: `{\"document\": \"<YAML>\"}` or `{\"document\": {...}}`, or the YAML itself with "
    "Content-Type application/yaml. The merged policy (default <- tenant <- app) is validated; "
    "422 lists every error with its path. A tenant-wide change also re-validates each app override.",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": PolicyPut.model_json_schema()},
        "application/yaml": {"schema": {"type": "string"}}}}},
)
async def put_policy(*, principal: Admin, db: Pool, policies: Policies, request: Request,
                     app_id: AppQuery = None) -> PolicyPublic:
    document = await _submitted(request)
    stored = await policies_service.put_policy(db, tenant_id=principal.tenant_id, app_id=app_id or "",
                                               document=document, created_by=principal.key_id)
    policies.invalidate(principal.tenant_id)
    return stored.public()
