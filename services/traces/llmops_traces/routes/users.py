"""`GET /v1/users/{user_id}` (a user's summary in a time range), `DELETE /v1/users/{user_id}` (erasure, admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from llmops_shared.deps import Admin, Now, Pool, TracesReader
from llmops_traces import explorer
from llmops_traces.query import invalid, parse_range, plain_text
from llmops_traces.routes.deps import Params, Settings, visible_from
from llmops_traces.schemas import Erasure, UserSummary

router = APIRouter(prefix="/v1", tags=["users"])
UserId = Annotated[str, Path(description="the user id as the app sent it (opaque)", max_length=256)]


@router.get("/users/{user_id:path}", summary="One user's spans in a time range, summed per app",
            response_model=UserSummary)
async def get_user(*, request: Request, principal: TracesReader, pool: Pool, settings: Settings, now: Now,
                   params: Params, user_id: UserId) -> dict[str, Any]:
    user_id = plain_text("user_id", user_id, location="path")
    for name in params:
        if name not in ("from", "to"):
            raise invalid(name, "unknown parameter")
    start, end = parse_range(params, max_span=timedelta(days=settings.query_max_days),
                             visible_from=await visible_from(request, principal.tenant_id, now))
    return await explorer.user_summary(pool, tenant_id=principal.tenant_id, user_id=user_id, start=start, end=end)


@router.delete("/users/{user_id:path}", summary="Erase every span of one user (and keep them from coming back)",
               response_model=Erasure, response_model_exclude_none=True)
async def delete_user(*, principal: Admin, pool: Pool, now: Now, user_id: UserId) -> dict[str, Any]:
    return await explorer.erase(pool, tenant_id=principal.tenant_id, kind="user",
                                subject=plain_text("user_id", user_id, location="path"), now=now)
