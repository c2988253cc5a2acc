"""Which channels take an alert: the tenant's, at or above their minimum severity, and, when the alert names
channels (a monitor's), only those."""

from __future__ import annotations

from datetime import UTC, datetime

from llmops_guardrails.notifier.channels import wants
from llmops_shared.alerts import AlertMessage


def alert(**details: object) -> AlertMessage:
    return AlertMessage(alert_id="a", source="monitors", tenant_id="acme", rule="r", detector="d", severity="warning",
                        fingerprint="f", title="t", occurred_at=datetime(2026, 1, 1, tzinfo=UTC), details=details)


def channel(channel_id: int, tenant: str = "acme", min_severity: str = "warning") -> tuple[int, str, str]:
    return channel_id, tenant, min_severity


def test_an_alert_naming_channels_goes_to_those_only() -> None:
    assert wants(*channel(1), alert()) and wants(*channel(2), alert(channel_ids=[]))
    assert wants(*channel(1), alert(channel_ids=[1, 3])) and not wants(*channel(2), alert(channel_ids=[1, 3]))
    assert not wants(*channel(1, tenant="other"), alert(channel_ids=[1]))
    assert not wants(*channel(1, min_severity="critical"), alert(channel_ids=[1]))
