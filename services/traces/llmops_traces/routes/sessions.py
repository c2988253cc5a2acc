"""`GET /v1/sessions` (a row per session), `GET /v1/sessions/{session_id}` (its traces)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from llmops_shared.deps import Now, Pool, TracesReader
from llmops_traces import explorer
from llmops_traces.query import invalid, parameters_doc, parse_list_query, plain_text
from llmops_traces.routes.deps import Params, Settings, visible_from
from llmops_traces.schemas import SessionDetail, SessionPage

router = APIRouter(prefix="/v1", tags=["sessions"])

SORTS = ("time", "cost", "spans")
MAX_TRACES = 1_000


@router.get("/sessions", summary="Sessions with a matching span in a time range, one row each, one page",
            response_model=SessionPage, openapi_extra={"parameters": [
                *parameters_doc(), {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}}]})
async def get_sessions(*, request: Request, principal: TracesReader, pool: Pool, settings: Settings, now: Now,
                       params: Params) -> dict[str, Any]:
    query = parse_list_query("sessions", params, tenant_id=principal.tenant_id, sorts=SORTS,
                             visible_from=await visible_from(request, principal.tenant_id, now),
                             max_days=settings.query_max_days, search_max_hours=settings.search_max_hours,
                             max_limit=settings.api_page_max)
    return await explorer.session_page(pool, query)


@router.get("/sessions/{session_id:path}", summary="One session: its traces, oldest first",
            response_model=SessionDetail)
async def get_session(*, request: Request, principal: TracesReader, pool: Pool, now: Now, params: Params,
                      session_id: Annotated[str, Path(max_length=256)]) -> dict[str, Any]:
    session_id = plain_text("session_id", session_id, location="path")
    for name in params:
        raise invalid(name, "unknown parameter")
    return await explorer.session_detail(pool, tenant_id=principal.tenant_id, session_id=session_id,
                                         since=await visible_from(request, principal.tenant_id, now),
                                         max_traces=MAX_TRACES)
