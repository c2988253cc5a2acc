"""`GET /v1/spans`: a page of spans, filtered, sorted by time, latency or cost."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from llmops_shared.deps import Now, Pool, TracesReader
from llmops_traces import explorer
from llmops_traces.query import parameters_doc, parse_list_query
from llmops_traces.routes.deps import Params, Settings, visible_from
from llmops_traces.schemas import SpanPage

router = APIRouter(prefix="/v1", tags=["spans"])

SORTS = ("time", "latency", "cost")
_DOC = {"parameters": [*parameters_doc(),
                       {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
                       {"name": "fields", "in": "query", "schema": {"type": "string"},
                        "description": "comma-separated groups: core, model, usage, prompt, trace, findings, error, "
                        "io (text; not by default)"}]}


@router.get("/spans", summary="Spans in a time range, filtered and sorted, one page", response_model=SpanPage,
            response_model_exclude_none=False, openapi_extra=_DOC)
async def get_spans(*, request: Request, principal: TracesReader, pool: Pool, settings: Settings, now: Now,
                    params: Params) -> dict[str, Any]:
    query = parse_list_query("spans", params, tenant_id=principal.tenant_id, sorts=SORTS,
                             visible_from=await visible_from(request, principal.tenant_id, now),
                             max_days=settings.query_max_days, search_max_hours=settings.search_max_hours,
                             max_limit=settings.api_page_max)
    return await explorer.span_page(pool, query)
