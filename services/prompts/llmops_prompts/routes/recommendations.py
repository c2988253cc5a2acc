"""`GET /v1/recommendations`: what to change to spend less (docs/prompts.md). It shows spend, so it needs
`billing:read`; everything is the key's tenant's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from llmops_prompts.savings import model_recommendations
from llmops_prompts.schemas import Recommendations
from llmops_prompts.store import savings as store
from llmops_shared.deps import BillingReader, Now, Pool
from llmops_shared.problems import Invalid

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.get("/recommendations", summary="Cheaper models not judged worse, and what caching would save",
            response_model=Recommendations)
async def recommendations(*, principal: BillingReader, pool: Pool, now: Now,
                          from_: Annotated[datetime | None, Query(alias="from", description="default: 30 days ago")]
                          = None, to: Annotated[datetime | None, Query(description="default: now")] = None,
                          margin: Annotated[float, Query(ge=0, le=0.5, description="how much lower (0..1) a "
                                                         "cheaper model's score may be")] = 0.02) -> dict[str, Any]:
    end = to or now
    start = from_ or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("from" if start.tzinfo is None else "to", "give a time zone (e.g. Z)", location="query")
    if start >= end:
        raise Invalid("from", "must be before `to`", location="query")
    days = (end - start).total_seconds() / 86_400
    tenant = principal.tenant_id
    uses = await store.model_uses(pool, tenant_id=tenant, start=start, end=end)
    caches = await store.prompt_cache(pool, tenant_id=tenant, start=start, end=end)
    repeats = await store.exact_repeats(pool, tenant_id=tenant, start=start, end=end)
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "models": model_recommendations(uses, days=days, margin=margin),
        "prompt_cache": [{"model": r["model"], "input_tokens": r["input_tokens"],
                          "cache_read_ratio": r["cache_read_tokens"] / r["input_tokens"] if r["input_tokens"] else None,
                          "input_cost": r["input_cost"]} for r in caches],
        "exact_repeats": [{"app_id": r["app_id"], "model": r["model"], "calls": r["calls"], "repeats": r["repeats"],
                           "repeat_share": r["repeats"] / r["calls"] if r["calls"] else 0.0,
                           "spend": r["spend"], "repeat_spend": r["repeat_spend"],
                           "monthly_saving_with_a_response_cache": r["repeat_spend"] / days * 30}
                          for r in repeats],
    }
