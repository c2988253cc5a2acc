"""The traces API's own dependencies, beside the shared ones (`llmops_shared.deps`): settings, the raw
query string (list routes refuse parameters they do not know), the calling tenant's cutoff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from llmops_traces import retention
from llmops_traces.settings import TracesSettings
from llmops_traces.store import tenant_settings


async def _settings(request: Request) -> TracesSettings:
    settings: TracesSettings = request.app.state.settings
    return settings



async def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        out.setdefault(name, []).append(value)
    return out


Settings = Annotated[TracesSettings, Depends(_settings)]
Params = Annotated[dict[str, list[str]], Depends(_params)]
"""The query string, every value of every name."""


async def visible_from(request: Request, tenant_id: str, now: datetime) -> datetime:
    """The earliest instant of the tenant's spans a read may return (its retention)."""
    chosen = await tenant_settings.get(request.app.state.pool, tenant_id=tenant_id)
    return retention.visible_from(request.app.state.settings, chosen.retention_days, now)
