"""`GET /v1/traces` (a row per trace), `GET /v1/traces/{trace_id}` (the span tree with costs, findings,
scores and feedback), `DELETE /v1/traces/{trace_id}` (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from llmops_shared.deps import Admin, Now, Pool, TracesReader
from llmops_traces import explorer
from llmops_traces.query import DEFAULT_FIELDS, FIELD_GROUPS, invalid, parameters_doc, parse_list_query, plain_text
from llmops_traces.routes.deps import Params, Settings, visible_from
from llmops_traces.schemas import Erasure, TraceDetail, TracePage

router = APIRouter(prefix="/v1", tags=["traces"])

SORTS = ("time", "latency", "cost")
TraceId = Annotated[str, Path(description="the trace id", max_length=128)]


@router.get("/traces", summary="Traces with a matching span in a time range, one row each, one page",
            response_model=TracePage, openapi_extra={"parameters": [
                *parameters_doc(), {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}}]})
async def get_traces(*, request: Request, principal: TracesReader, pool: Pool, settings: Settings, now: Now,
                     params: Params) -> dict[str, Any]:
    query = parse_list_query("traces", params, tenant_id=principal.tenant_id, sorts=SORTS,
                             visible_from=await visible_from(request, principal.tenant_id, now),
                             max_days=settings.query_max_days, search_max_hours=settings.search_max_hours,
                             max_limit=settings.api_page_max)
    return await explorer.trace_page(pool, query)


@router.get("/traces/{trace_id:path}", summary="One trace as a span tree, with costs, findings, scores, feedback",
            response_model=TraceDetail)
async def get_trace(*, request: Request, principal: TracesReader, pool: Pool, settings: Settings, now: Now,
                    params: Params, trace_id: TraceId) -> dict[str, Any]:
    trace_id = plain_text("trace_id", trace_id, location="path")
    for name in params:
        if name != "fields":
            raise invalid(name, "unknown parameter")
    groups = DEFAULT_FIELDS
    if params.get("fields"):
        groups = frozenset({g.strip() for g in params["fields"][0].split(",") if g.strip()} | {"core"})
        unknown = sorted(groups - set(FIELD_GROUPS))
        if unknown:
            raise invalid("fields", f"{unknown[0]!r} is not one of {', '.join(FIELD_GROUPS)}")
    return await explorer.trace_detail(pool, tenant_id=principal.tenant_id, trace_id=trace_id,
                                       since=await visible_from(request, principal.tenant_id, now),
                                       max_spans=settings.trace_max_spans, groups=groups | {"usage"})


@router.delete("/traces/{trace_id:path}", summary="Delete one trace's spans (and keep them from coming back)",
               response_model=Erasure, response_model_exclude_none=True)
async def delete_trace(*, principal: Admin, pool: Pool, now: Now, trace_id: TraceId) -> dict[str, Any]:
    return await explorer.erase(pool, tenant_id=principal.tenant_id, kind="trace",
                                subject=plain_text("trace_id", trace_id, location="path"), now=now)
