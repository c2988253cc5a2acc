"""`/v1/channels`: the tenant's notification channels (webhook, Slack, PagerDuty) and their deliveries.
Scope `admin`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from llmops_guardrails import channels_service
from llmops_guardrails.deps import Guards
from llmops_guardrails.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    ChannelsPublic,
    ChannelUpdate,
    DeliveriesPublic,
    DeliveryStatus,
)
from llmops_shared.deps import Admin, Pool
from llmops_shared.problems import response as problem

router = APIRouter(prefix="/v1/channels", tags=["channels"])
NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: problem("the tenant has a channel by that name"),
    503: problem("no channel encryption key is configured: channels cannot be stored")}


@router.get("", summary="The tenant's notification channels", response_model=ChannelsPublic)
async def list_channels(*, principal: Admin, db: Pool) -> ChannelsPublic:
    return await channels_service.list_channels(db, tenant_id=principal.tenant_id)


@router.post("", status_code=201, summary="Add a channel (a generated webhook secret is shown once, here)",
             response_model=ChannelCreated, response_model_exclude_unset=True, responses=NAME_TAKEN)
async def create_channel(*, principal: Admin, db: Pool, guards: Guards, body: ChannelCreate) -> ChannelCreated:
    return await channels_service.create(db, tenant_id=principal.tenant_id, body=body, guards=guards)


@router.get("/{channel_id}", summary="One channel", response_model=ChannelPublic)
async def get_channel(*, principal: Admin, db: Pool, channel_id: int) -> ChannelPublic:
    return await channels_service.get(db, tenant_id=principal.tenant_id, channel_id=channel_id)


@router.patch("/{channel_id}", summary="Change a channel", response_model=ChannelPublic, responses=NAME_TAKEN)
async def update_channel(*, principal: Admin, db: Pool, guards: Guards, channel_id: int,
                         body: ChannelUpdate) -> ChannelPublic:
    return await channels_service.update(db, tenant_id=principal.tenant_id, channel_id=channel_id, body=body,
                                         guards=guards)


@router.delete("/{channel_id}", status_code=204, response_class=Response,
               summary="Delete a channel (its delivery log stays)")
async def delete_channel(*, principal: Admin, db: Pool, channel_id: int) -> Response:
    await channels_service.delete(db, tenant_id=principal.tenant_id, channel_id=channel_id)
    return Response(status_code=204)


@router.get("/{channel_id}/deliveries", summary="A channel's deliveries, newest first (e.g. `?status=parked`)",
            response_model=DeliveriesPublic)
async def list_deliveries(
    *, principal: Admin, db: Pool, channel_id: int,
    status: Annotated[DeliveryStatus | None, Query(description="only this status; `parked`: still to be "
                                                               "delivered, retried in the background")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> DeliveriesPublic:
    return await channels_service.list_deliveries(db, tenant_id=principal.tenant_id, channel_id=channel_id,
                                                  status=status, limit=limit, cursor=cursor)
