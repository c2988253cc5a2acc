"""`GET /v1/settings`, `PUT /v1/settings` (admin): the tenant's trace settings (metadata only, retention)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from llmops_shared.deps import Admin, Now, Pool, TracesReader
from llmops_shared.problems import Invalid
from llmops_traces import retention
from llmops_traces.routes.deps import Settings
from llmops_traces.schemas import TraceSettings, TraceSettingsUpdate
from llmops_traces.settings import TracesSettings
from llmops_traces.store import tenant_settings
from llmops_traces.store.tenant_settings import TenantSettings
from llmops_traces.views import iso

router = APIRouter(prefix="/v1", tags=["settings"])


def _view(chosen: TenantSettings, settings: TracesSettings, now: Any) -> dict[str, Any]:
    return {"metadata_only": chosen.metadata_only, "retention_days": chosen.retention_days,
            "effective_retention_days": retention.retention_days(settings, chosen.retention_days),
            "max_retention_days": settings.retention_max_days,
            "visible_from": iso(retention.visible_from(settings, chosen.retention_days, now))}


@router.get("/settings", summary="The tenant's trace settings", response_model=TraceSettings)
async def get_settings(*, principal: TracesReader, pool: Pool, settings: Settings, now: Now) -> dict[str, Any]:
    return _view(await tenant_settings.get(pool, tenant_id=principal.tenant_id), settings, now)


@router.put("/settings", summary="Set the tenant's trace settings (from the next batch the worker stores)",
            response_model=TraceSettings)
async def put_settings(*, principal: Admin, pool: Pool, settings: Settings, now: Now,
                       body: TraceSettingsUpdate) -> dict[str, Any]:
    if body.retention_days is not None and body.retention_days > settings.retention_max_days:
        raise Invalid("retention_days",
                      f"at most {settings.retention_max_days} days (LLMOPS_TRACES_RETENTION_MAX_DAYS)")
    chosen = TenantSettings(body.metadata_only, body.retention_days)
    await tenant_settings.put(pool, tenant_id=principal.tenant_id, settings=chosen)
    return _view(chosen, settings, now)
