"""`/v1/monitors`: the tenant's monitors (read with `alerts:read`, changed with `admin`) and their firings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from llmops_monitors import service
from llmops_monitors.schemas import FiringsPublic, MonitorCreate, MonitorPublic, MonitorsPublic
from llmops_shared.deps import Admin, AlertsReader, Pool
from llmops_shared.problems import response as problem

router = APIRouter(prefix="/v1/monitors", tags=["monitors"])
NAME_TAKEN: dict[int | str, dict[str, Any]] = {409: problem("the tenant has a monitor by that name (or has too many)")}


@router.get("", summary="The tenant's monitors", response_model=MonitorsPublic)
async def list_monitors(*, principal: AlertsReader, db: Pool) -> MonitorsPublic:
    return await service.list_monitors(db, tenant_id=principal.tenant_id)


@router.post("", status_code=201, summary="Define a monitor (in force within a second)", response_model=MonitorPublic,
             responses=NAME_TAKEN)
async def create_monitor(*, principal: Admin, db: Pool, request: Request, body: MonitorCreate) -> MonitorPublic:
    return await service.create(db, tenant_id=principal.tenant_id, body=body,
                                limit=request.app.state.settings.max_monitors_per_tenant)


@router.get("/{monitor_id}", summary="One monitor", response_model=MonitorPublic)
async def get_monitor(*, principal: AlertsReader, db: Pool, monitor_id: int) -> MonitorPublic:
    return await service.get(db, tenant_id=principal.tenant_id, monitor_id=monitor_id)


@router.put("/{monitor_id}", summary="Replace a monitor's definition (in force within a second)",
            response_model=MonitorPublic, responses=NAME_TAKEN)
async def replace_monitor(*, principal: Admin, db: Pool, monitor_id: int, body: MonitorCreate) -> MonitorPublic:
    return await service.replace(db, tenant_id=principal.tenant_id, monitor_id=monitor_id, body=body)


@router.delete("/{monitor_id}", status_code=204, response_class=Response, summary="Delete a monitor")
async def delete_monitor(*, principal: Admin, db: Pool, monitor_id: int) -> Response:
    await service.delete(db, tenant_id=principal.tenant_id, monitor_id=monitor_id)
    return Response(status_code=204)


@router.get("/{monitor_id}/firings", summary="A monitor's firings, newest first", response_model=FiringsPublic)
async def list_firings(*, principal: AlertsReader, db: Pool, monitor_id: int,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> FiringsPublic:
    return await service.list_firings(db, tenant_id=principal.tenant_id, monitor_id=monitor_id, limit=limit)
