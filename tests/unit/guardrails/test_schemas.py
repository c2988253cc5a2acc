"""The API's models render as the API always did: times with their offset as Python writes it, ids as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from llmops_guardrails.schemas import AlertPublic, ChannelCreated

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_alert_times_keep_their_offset_and_ids_are_text() -> None:
    alert_id = uuid.uuid4()
    alert = AlertPublic(alert_id=alert_id, fingerprint="guardrails/acme/bot/r/pii", app_id="bot", rule_id="r",
                        detector="pii", severity="warning", policy_severity=None, status="open", title="t",
                        summary="s", kinds=["CREDIT_CARD"], count=2, first_seen=T0, last_seen=T0,
                        acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None,
                        created_at=T0, updated_at=T0)
    shown = orjson.loads(alert.model_dump_json())
    assert shown["alert_id"] == str(alert_id)
    assert shown["first_seen"] == T0.isoformat() == "2026-03-01T12:00:00.250000+00:00"
    assert shown["acknowledged_at"] is None


def test_a_created_channel_shows_its_secret_only_when_one_was_generated() -> None:
    fields = {"channel_id": 1, "name": "hook", "kind": "webhook", "url": "https://example.com/…", "has_secret": True,
              "secret_hint": "****abcd",
              "min_severity": "info", "repeat_interval_s": 60, "enabled": True, "created_at": T0, "updated_at": T0}
    assert "secret" not in ChannelCreated(**fields).model_dump(mode="json", exclude_none=True)
    assert ChannelCreated(**fields, secret="whsec_x").model_dump(mode="json", exclude_none=True)["secret"] == "whsec_x"
