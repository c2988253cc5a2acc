"""The guardrails API's request and response models, in families: `<Thing>Create` / `<Thing>Update` what a
client sends, `<Thing>Public` what the API shows, `<Things>Public` a list of them.

Times are ISO 8601 with their offset as Python writes them (`2026-03-01T12:00:00+00:00`). Nothing here
carries a detected value or its hash; an alert or a finding says where and what, never the text.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from llmops_shared.alerts import Severity
from llmops_shared.contract import ChatMessage, Identifier
from llmops_shared.timestamps import Timestamp

# -- alerts -------------------------------------------------------------------------------------------------

AlertStatus = Literal["open", "acknowledged", "resolved"]
PolicySeverity = Literal["low", "medium", "high", "critical"]


class AlertPublic(BaseModel):
    """An alert: one episode of a rule firing for a tenant's app (fingerprint = tenant, app, rule, detector)."""

    alert_id: uuid.UUID
    fingerprint: str
    app_id: str
    rule_id: str
    detector: str
    severity: Severity = Field(description="the notification scale: the rule's severity mapped, only escalates")
    policy_severity: PolicySeverity | None = Field(description="the rule's own severity")
    status: AlertStatus
    title: str
    summary: str
    kinds: list[str] = Field(description="entity types, secret rules or term lists seen")
    count: int = Field(description="events counted into the alert")
    first_seen: Timestamp = Field(description="event time of the first occurrence")
    last_seen: Timestamp = Field(description="event time of the latest occurrence")
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None = Field(description="the API key id")
    resolved_at: Timestamp | None
    resolved_by: str | None = Field(description="the API key id, or `guardrails:window`")
    created_at: Timestamp
    updated_at: Timestamp


class AlertsPublic(BaseModel):
    """One page of alerts, newest first by `last_seen`."""

    alerts: list[AlertPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


# -- the inline check ---------------------------------------------------------------------------------------


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="a prompt as plain text")
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=1000, description="chat messages")
    output: str | None = Field(None, description="a completion to check as well")
    app_id: Identifier | None = Field(None, description="whose stored policy applies; default the tenant's")
    policy: str | dict[str, Any] | None = Field(
        None, description="an override (YAML or mapping) on top of the stored ones")

    @model_validator(mode="after")
    def _one_input(self) -> CheckRequest:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of 'text' and 'messages'")
        return self

    def chars(self) -> int:
        n = len(self.text or "") + len(self.output or "")
        return n + sum(len(m.text()) + sum(len(c.arguments) for c in m.tool_calls or []) for m in self.messages or [])


class CheckFinding(BaseModel):
    """Where and what, never the value: `start`/`end` are character offsets into the message (or text)."""

    detector: str
    entity_type: str
    rule_id: str | None
    start: int
    end: int
    score: float
    side: Literal["input", "output"]
    message_index: int | None
    role: str
    signals: list[str] = Field(default_factory=list, description=(
        "what fired, strongest first: for prompt_injection the rules' signal names and/or learned_model"))


class CheckTriggered(BaseModel):
    rule_id: str
    action: str
    severity: str | None
    count: int


class CheckResponse(BaseModel):
    """The decision (fields that do not apply are left out: `redacted_text` or `redacted_messages`, ...)."""

    allowed: bool
    action: Literal["allow", "alert", "redact", "block"]
    policy_version: str
    redacted_text: str | None = None
    redacted_messages: list[ChatMessage] | None = None
    redacted_output: str | None = None
    findings: list[CheckFinding]
    triggered: list[CheckTriggered]


# -- policies -----------------------------------------------------------------------------------------------


class PolicyPut(BaseModel):
    """`PUT /v1/policy` as JSON (the YAML itself may be sent instead, as application/yaml)."""

    model_config = ConfigDict(extra="forbid")

    document: str | dict[str, Any] | None = Field(
        None, description="the override: YAML text or a mapping; empty = inherit everything")


class PolicyPublic(BaseModel):
    """One stored version of a tenant's (`app_id` null) or an app's override."""

    tenant_id: str
    app_id: str | None
    version: int
    document: str = Field(description="the YAML as stored")
    created_at: Timestamp
    created_by: str


class PolicyVersion(BaseModel):
    version: int
    created_at: Timestamp
    created_by: str


class PolicyVersionsPublic(BaseModel):
    """Stored versions of one override, newest first."""

    versions: list[PolicyVersion]


class PolicyLatest(BaseModel):
    app_id: str | None = Field(description="null: the tenant-wide override")
    version: int
    created_at: Timestamp
    created_by: str


class PoliciesPublic(BaseModel):
    """The latest version of each stored override of the tenant."""

    policies: list[PolicyLatest]


class EffectivePolicyPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="default, t<n>, a<n> or t<n>.a<n>")
    policy: dict[str, Any] = Field(description="the merged policy: default <- tenant <- app")


class EffectivePolicyInvalid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    errors: list[str] = Field(description="why a stored level no longer validates, each with its path")


class PolicyView(BaseModel):
    stored: PolicyPublic | None
    effective: EffectivePolicyPublic | EffectivePolicyInvalid


# -- notification channels ----------------------------------------------------------------------------------

ChannelKind = Literal["webhook", "slack", "pagerduty"]


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    return value


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: ChannelKind
    url: str | None = Field(None, max_length=2000, description=(
        "webhook: any http(s) URL the notifier may reach (public, or allowed by the operator); slack: an "
        "incoming-webhook URL, https://hooks.slack.com/...; pagerduty: none (events go to PagerDuty's Events "
        "API). Stored encrypted, shown masked."))
    secret: str | None = Field(None, min_length=1, max_length=500, description=(
        "webhook signing key (generated when absent) or PagerDuty routing key. Stored encrypted, shown masked."))
    min_severity: Severity = "warning"
    repeat_interval_s: int = Field(3600, ge=0, le=30 * 24 * 3600)
    enabled: bool = True

    _url = field_validator("url")(_check_url)


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2000)
    secret: str | None = Field(None, min_length=1, max_length=500)
    min_severity: Severity | None = None
    repeat_interval_s: int | None = Field(None, ge=0, le=30 * 24 * 3600)
    enabled: bool | None = None

    _url = field_validator("url")(_check_url)


class ChannelPublic(BaseModel):
    """A channel as shown after creation: its URL and secret masked, never whole."""

    channel_id: int
    name: str
    kind: ChannelKind
    url: str | None = Field(description="masked: scheme, host and port (`https://hooks.slack.com/…`); null for "
                                        "pagerduty, whose events go to PagerDuty's Events API")
    has_secret: bool
    secret_hint: str | None = Field(description="masked: `****` and the secret's last four characters (none of a "
                                                "short one); null without a secret")
    min_severity: Severity
    repeat_interval_s: int
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp


class ChannelCreated(ChannelPublic):
    secret: str | None = Field(None, description="the generated webhook secret: shown once, here; absent otherwise")


class ChannelsPublic(BaseModel):
    channels: list[ChannelPublic]


# -- deliveries (the notifier's queue and log) --------------------------------------------------------------

DeliveryStatus = Literal["pending", "sending", "delivered", "suppressed", "parked", "superseded", "cancelled",
                         "failed"]


class DeliveryPublic(BaseModel):
    """One alert message's delivery to a channel. `parked`: the attempts in a row ran out (or the channel's
    circuit breaker is open); it is tried again from `next_attempt_at`, with growing backoff, until delivered.
    `failed` appears only on deliveries made before parking existed."""

    delivery_id: int
    message_id: str = Field(description="the alert message (`<alert_id>:<status>:<count>`): the idempotency key "
                                        "a webhook receives as `X-LLMOps-Message-Id`")
    alert_id: str
    fingerprint: str
    action: Literal["trigger", "resolve"]
    status: DeliveryStatus
    attempts: int = Field(description="HTTP attempts made")
    http_status: int | None = Field(description="the last answer's status")
    error: str | None = Field(description="the last failure: `HTTP 503`, `no answer within 10 s`, `ConnectError`...")
    next_attempt_at: Timestamp | None = Field(description="pending, parked: when it is tried next; sending: when "
                                                          "its claim lapses")
    last_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class DeliveriesPublic(BaseModel):
    deliveries: list[DeliveryPublic] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")
