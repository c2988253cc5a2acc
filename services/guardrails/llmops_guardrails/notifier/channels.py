"""Channels and what each one is sent: pure functions, no I/O.

- `webhook`: the alert as JSON, signed: `X-LLMOps-Signature: sha256=<hex HMAC-SHA256(secret,
  "<timestamp>." + body)>` with `X-LLMOps-Timestamp` (seconds), so a receiver can check origin and age;
  `X-LLMOps-Delivery-Id` is the idempotency key (the delivery's id, one per alert message and channel, as
  `GET /v1/channels/{id}/deliveries` shows it: the same on every attempt and after a crash between sending
  and recording, so a receiver can drop what it already has); `X-LLMOps-Message-Id` names the alert message.
- `slack`: a Slack incoming-webhook message (Slack takes no idempotency key), to a URL on Slack's webhook
  hosts only (`SLACK_HOSTS`, https).
- `pagerduty`: a PagerDuty Events API v2 event, `trigger` or `resolve`, `dedup_key` = the fingerprint
  (PagerDuty folds triggers with one key into one incident), `routing_key` = the channel's secret. It goes
  to PagerDuty's Events API (`PAGERDUTY_EVENTS_URL`, or the operator's `LLMOPS_NOTIFIER_PAGERDUTY_URL`),
  never to a URL of the tenant's.
Nothing raw goes out: the alert message itself carries no prompt text (see llmops_shared.alerts). Where a
URL leads is the egress policy's to check (`llmops_shared.egress`), when a channel is stored and again when
the notifier connects; `url_problem` is what a channel's kind requires on top.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from llmops_shared.alerts import SEVERITY_RANK, AlertMessage

Action = Literal["trigger", "resolve"]
Kind = Literal["webhook", "slack", "pagerduty"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
"""Where Slack's incoming webhooks live (Slack, and Slack for government)."""


@dataclass(frozen=True)
class Channel:
    channel_id: int
    tenant_id: str
    name: str
    kind: Kind
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


def wants(channel_id: int, tenant_id: str, min_severity: str, alert: AlertMessage) -> bool:
    """Does channel `channel_id` of `tenant_id`, with this minimum severity, take this alert? Same tenant,
    severity at or above the minimum, and, when the alert names channels (`details.channel_ids`, a monitor's
    channels), one of them."""
    named = alert.details.get("channel_ids")
    if isinstance(named, list) and named and channel_id not in named:
        return False
    return tenant_id == alert.tenant_id and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[min_severity]


def url_problem(kind: Kind, url: str) -> str | None:
    """What is wrong with `url` as the URL of a channel of `kind` (None: nothing). A webhook takes any http(s)
    URL, a Slack channel an https URL on `SLACK_HOSTS`, a PagerDuty channel none."""
    if kind == "pagerduty":
        return "a pagerduty channel takes no URL: its events go to PagerDuty's Events API" if url else None
    if not url:
        return f"a {kind} channel needs a URL"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if kind == "slack" and (parts.scheme != "https" or parts.hostname.lower() not in SLACK_HOSTS
                            or port not in (None, 443) or parts.username is not None):
        return "must be a Slack incoming-webhook URL: https://hooks.slack.com/services/..."
    return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def outgoing(channel: Channel, alert: AlertMessage, *, now: int, delivery_id: int) -> Outgoing:
    if channel.kind == "webhook":
        body = orjson.dumps({"type": f"alert.{action_of(alert)}", "alert": alert.model_dump(mode="json")})
        headers = {"content-type": "application/json", "x-llmops-timestamp": str(now),
                   "x-llmops-event": f"alert.{action_of(alert)}", "x-llmops-message-id": alert.message_id,
                   "x-llmops-delivery-id": str(delivery_id)}
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
