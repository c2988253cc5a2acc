"""`/v1/alerts`: list, get, acknowledge, resolve. Scopes `alerts:read` and `alerts:write`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from llmops_guardrails import alerts_service
from llmops_guardrails.deps import Announcer
from llmops_guardrails.schemas import AlertPublic, AlertsPublic, AlertStatus
from llmops_shared.alerts import Severity
from llmops_shared.deps import AlertsReader, AlertsWriter, Pool
from llmops_shared.problems import response as problem

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.get("", summary="List alerts, newest first (by last_seen)", response_model=AlertsPublic)
async def list_alerts(
    *, principal: AlertsReader, db: Pool,
    status: Annotated[list[AlertStatus], Query(description="open, acknowledged, resolved; repeatable")] = [],  # noqa: B006
    severity: Annotated[list[Severity], Query(description="info, warning, critical; repeatable")] = [],  # noqa: B006
    app_id: str | None = None, rule: str | None = None, detector: str | None = None,
    since: Annotated[AwareDatetime | None, Query(description="last_seen at or after (ISO 8601 with a zone)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="last_seen before (ISO 8601 with a zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> AlertsPublic:
    where = alerts_service.AlertFilter(status=status, severity=severity, app_id=app_id, rule=rule, detector=detector,
                                       since=since, until=until)
    return await alerts_service.list_alerts(db, tenant_id=principal.tenant_id, where=where, limit=limit,
                                            cursor=cursor)


@router.get("/{alert_id}", summary="One alert", response_model=AlertPublic)
async def get_alert(*, principal: AlertsReader, db: Pool, alert_id: str) -> AlertPublic:
    return await alerts_service.get_alert(db, tenant_id=principal.tenant_id, alert_id=alert_id)


@router.post("/{alert_id}/acknowledge", summary="Acknowledge an open alert", response_model=AlertPublic,
             responses={409: problem("the alert is resolved")})
async def acknowledge(*, principal: AlertsWriter, db: Pool, alert_id: str) -> AlertPublic:
    return await alerts_service.acknowledge(db, tenant_id=principal.tenant_id, alert_id=alert_id,
                                            by=principal.key_id)


@router.post("/{alert_id}/resolve", response_model=AlertPublic,
             summary="Resolve an alert (a `resolved` message goes to the notifier: PagerDuty resolves)",
             responses={503: problem("Kafka did not take the `resolved` message: nothing changed, retry")})
async def resolve(*, principal: AlertsWriter, db: Pool, announcer: Announcer, alert_id: str) -> AlertPublic:
    return await alerts_service.resolve(db, tenant_id=principal.tenant_id, alert_id=alert_id, by=principal.key_id,
                                        announce=announcer.announce)
