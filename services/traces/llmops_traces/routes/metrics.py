"""`GET /v1/metrics`: request series by minute, hour or day from the rollups."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from llmops_shared.deps import Now, Pool, TracesReader
from llmops_shared.http import JSONBody
from llmops_traces import metrics
from llmops_traces.routes.deps import Params
from llmops_traces.schemas import Metrics

router = APIRouter(prefix="/v1", tags=["metrics"])
_DOC = {"parameters": [
    {"name": "from", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"}},
    {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"},
     "description": "at most 2 days after from by minute, 93 by hour, 400 by day"},
    {"name": "granularity", "in": "query", "schema": {"type": "string", "enum": list(metrics.GRANULARITIES)}},
    {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": list(metrics.GROUPS)}},
    *({"name": name, "in": "query", "schema": {"type": "string"}} for name in metrics.FILTERS)]}


@router.get("/metrics", summary="Requests, errors, latency and TTFT percentiles, tokens, cost over time",
            response_model=Metrics, openapi_extra=_DOC)
async def get_metrics(*, principal: TracesReader, pool: Pool, now: Now, params: Params) -> JSONBody:
    query = metrics.parse_metrics_query(params, tenant_id=principal.tenant_id, far_past=now - timedelta(days=800))
    # Rendered as it is: validating a month's points against `Metrics` again took longer than building them
    # (tests/integration/traces/test_api.py checks that the answers have the model's shape).
    return JSONBody(await metrics.metrics(pool, query))
