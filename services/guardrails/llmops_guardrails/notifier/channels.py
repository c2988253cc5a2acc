"""Channels and what each one is sent: pure functions, no I/O.

- `webhook`: the alert as JSON, signed: `X-LLMOps-Signature: sha256=<hex HMAC-SHA256(secret,
  "<timestamp>." + body)>` with `X-LLMOps-Timestamp` (seconds), so a receiver can check origin and age;
  `X-LLMOps-Message-Id` is the idempotency key (the alert message's id: the same on every attempt and
  after a crash between sending and recording, so a receiver can drop what it already has).
- `slack`: a Slack incoming-webhook message (Slack takes no idempotency key).
- `pagerduty`: a PagerDuty Events API v2 event, `trigger` or `resolve`, `dedup_key` = the fingerprint
  (PagerDuty folds triggers with one key into one incident), `routing_key` = the channel's secret.
Nothing raw goes out: the alert message itself carries no prompt text (see llmops_shared.alerts).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llmops_shared.alerts import SEVERITY_RANK, AlertMessage

Action = Literal["trigger", "resolve"]


@dataclass(frozen=True)
class Channel:
    channel_id: int
    tenant_id: str
    name: str
    kind: Literal["webhook", "slack", "pagerduty"]
    url: str
    secret: str = ""
    min_severity: str = "warning"
    repeat_interval_s: int = 3600


@dataclass(frozen=True)
class Outgoing:
    body: bytes
    headers: dict[str, str]


def action_of(alert: AlertMessage) -> Action:
    return "resolve" if alert.status == "resolved" else "trigger"


def wants(channel: Channel, alert: AlertMessage) -> bool:
    """Does this channel take this alert? Same tenant, severity at or above the channel's minimum, and, when
    the alert names channels (`details.channel_ids`, a monitor's channels), one of them."""
    named = alert.details.get("channel_ids")
    if isinstance(named, list) and named and channel.channel_id not in named:
        return False
    return channel.tenant_id == alert.tenant_id and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[channel.min_severity]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def outgoing(channel: Channel, alert: AlertMessage, *, now: int) -> Outgoing:
    if channel.kind == "webhook":
        body = orjson.dumps({"type": f"alert.{action_of(alert)}", "alert": alert.model_dump(mode="json")})
        headers = {"content-type": "application/json", "x-llmops-timestamp": str(now),
                   "x-llmops-event": f"alert.{action_of(alert)}", "x-llmops-message-id": alert.message_id}
        if channel.secret:
            headers["x-llmops-signature"] = sign(channel.secret, now, body)
        return Outgoing(body, headers)
    if channel.kind == "slack":
        return Outgoing(orjson.dumps(slack_message(alert)), {"content-type": "application/json"})
    return Outgoing(orjson.dumps(pagerduty_event(channel, alert)), {"content-type": "application/json"})


_SLACK_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def slack_message(alert: AlertMessage) -> dict[str, Any]:
    state = "RESOLVED" if alert.status == "resolved" else alert.severity.upper()
    headline = f"{_SLACK_EMOJI[alert.severity]} [{state}] {alert.title}"
    context = f"tenant `{alert.tenant_id}` · app `{alert.app_id or '-'}` · rule `{alert.rule}` · {alert.count} event(s)"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{alert.summary}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


_PD_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}


def pagerduty_event(channel: Channel, alert: AlertMessage) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": channel.secret,
        "event_action": action_of(alert),
        "dedup_key": alert.fingerprint,
    }
    if event["event_action"] == "trigger":
        event["payload"] = {
            "summary": f"{alert.title} ({alert.count} event(s))"[:1024],
            "source": f"llmops/{alert.source}/{alert.tenant_id}",
            "severity": _PD_SEVERITY[alert.severity],
            "timestamp": alert.occurred_at.isoformat(),
            "component": alert.app_id or "",
            "group": alert.tenant_id,
            "class": alert.rule,
            "custom_details": {"summary": alert.summary, "detector": alert.detector, "count": alert.count,
                               "alert_id": alert.alert_id, **alert.details},
        }
    return event
