"""The alert message: what any service publishes on `llmops.alerts` for the notifier to deliver.

Guardrails publishes policy alerts, billing publishes budget and unpriced-model alerts; the notifier
delivers them all the same way. An alert message never carries raw prompt or completion text: `title`
and `summary` are written by the publisher from rule names, counts and entity types, and `details`
holds ids and numbers only.

Identity: `fingerprint` names the alert *group* (tenant, app, rule, detector): PagerDuty's `dedup_key`,
the notifier's throttle key. `alert_id` names one alert row; `status` says whether this message opens
or updates it (`open`), or closes it (`resolved`). Key on Kafka: the fingerprint.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


class AlertMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    alert_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=64)  # guardrails, billing, ...
    tenant_id: str = Field(min_length=1, max_length=128)
    app_id: str | None = None
    rule: str = Field(min_length=1, max_length=200)
    detector: str = Field(min_length=1, max_length=64)
    severity: Severity
    fingerprint: str = Field(min_length=1, max_length=200)
    status: Literal["open", "acknowledged", "resolved"] = "open"
    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=2000)
    occurred_at: AwareDatetime
    count: int = Field(default=1, ge=1)
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def message_id(self) -> str:
        """One message of an alert: redelivering it must not notify twice; a later update may."""
        return f"{self.alert_id}:{self.status}:{self.count}"

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
