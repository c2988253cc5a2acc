"""Budget periods and thresholds, and the alert messages billing publishes (pure: no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from llmops_billing.alerts import budget_alert, budget_severity, fingerprint, unpriced_model_alert
from llmops_billing.budgets import period_bounds, reached, validate_amount, validate_thresholds
from llmops_shared.alerts import AlertMessage

D = Decimal
AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def test_periods_are_utc_days_and_calendar_months() -> None:
    assert period_bounds("day", AT) == (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    assert period_bounds("month", AT) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert period_bounds("month", datetime(2028, 2, 29, 23, tzinfo=UTC))[1] == datetime(2028, 3, 1, tzinfo=UTC)
    assert period_bounds("month", datetime(2026, 12, 31, 23, tzinfo=UTC))[1] == datetime(2027, 1, 1, tzinfo=UTC)
    # 2026-12-01T00:30+01:00 is still November in UTC
    local = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert period_bounds("month", local)[0] == datetime(2026, 11, 1, tzinfo=UTC)


def test_a_threshold_is_reached_exactly_at_its_edge_and_not_a_fraction_before() -> None:
    amount = D("100")
    assert reached(D("49.99999999999999999999"), amount, [50, 80, 100]) == []
    assert reached(D("50"), amount, [100, 50, 80]) == [50]
    assert reached(D("100"), amount, [50, 80, 100]) == [50, 80, 100]
    assert reached(D("0.0000003"), D("0.0000003"), [100, 150]) == [100]


def test_budget_fields_are_validated() -> None:
    assert validate_thresholds([100, 50, 50, 80]) == (50, 80, 100)
    for bad in ([], [0], [1001], [True], [50.5]):
        with pytest.raises(ValueError, match="thresholds"):
            validate_thresholds(bad)  # type: ignore[arg-type]
    assert validate_amount("12.5") == D("12.5")
    for bad_amount in ("0", "-1", "abc", "1e30", "0.000000000000000000001"):
        with pytest.raises(ValueError, match="amount"):
            validate_amount(bad_amount)
    with pytest.raises(TypeError):
        validate_amount(1.5)  # type: ignore[arg-type]


def test_severity_rises_with_the_threshold_and_a_hard_budget_pages_earlier() -> None:
    assert [budget_severity(t, "soft") for t in (50, 80, 100, 150)] == ["info", "warning", "critical", "critical"]
    assert [budget_severity(t, "hard") for t in (50, 80, 100)] == ["info", "critical", "critical"]


def budget_message(threshold: int = 80, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = dict(
        budget_id=7, tenant_id="acme", app_id="", period="month", period_start=datetime(2026, 11, 1, tzinfo=UTC),
        period_end=datetime(2026, 12, 1, tzinfo=UTC), threshold=threshold, spent=D("81.5"), amount=D("100"),
        enforcement="soft", name="team cap", unpriced_events=2, decided_at=AT)
    args.update(overrides)
    return orjson.loads(budget_alert(**args).payload)  # type: ignore[arg-type]


def test_a_budget_alert_has_the_shared_shape_and_a_deterministic_id() -> None:
    message = budget_message()
    assert message == budget_message()  # the same crossing, decided again, is the same message
    assert message["rule"] == "budget.threshold" and message["source"] == "billing"
    assert message["detector"] == "billing" and message["severity"] == "warning" and message["app_id"] is None
    assert message["fingerprint"] == "billing/budget/7/2026-11/80"
    assert message["occurred_at"] == "2026-11-24T09:30:00Z"
    assert message["details"] == {
        "budget_id": 7, "budget_name": "team cap", "period": "month", "period_start": "2026-11-01T00:00:00Z",
        "period_end": "2026-12-01T00:00:00Z", "threshold_percent": 80, "spent": "81.5", "amount": "100",
        "currency": "USD", "enforcement": "soft", "unpriced_events": 2}
    assert "81.50 USD of 100.00 USD (81.5%)" in str(message["summary"])
    assert uuid.UUID(str(message["alert_id"])).version == 5
    assert budget_message(threshold=100)["alert_id"] != message["alert_id"]
    later = budget_message(period_start=datetime(2026, 12, 1, tzinfo=UTC), period_end=datetime(2027, 1, 1, tzinfo=UTC))
    assert later["alert_id"] != message["alert_id"] and later["fingerprint"] == "billing/budget/7/2026-12/80"
    assert budget_message(app_id="bot")["app_id"] == "bot"


def test_an_unpriced_model_alert_names_the_model_and_never_carries_text() -> None:
    alert = unpriced_model_alert(tenant_id="acme", provider="acme-ai", model="house-model", model_key="house-model",
                                 reason="unknown_model", event_count=4, first_seen_at=AT, alerted_at=AT)
    message = orjson.loads(alert.payload)
    assert message["rule"] == "billing.unpriced_model" and message["severity"] == "warning"
    assert alert.fingerprint == message["fingerprint"] == "billing/unpriced_model/acme/acme-ai/house-model"
    assert set(message["details"]) == {"provider", "model", "model_key", "reason", "events_so_far", "first_seen_at"}
    again = unpriced_model_alert(tenant_id="acme", provider="acme-ai", model="house-model", model_key="house-model",
                                 reason="unknown_model", event_count=9, first_seen_at=AT, alerted_at=AT)
    assert again.alert_id == alert.alert_id  # same episode, same id


def test_long_fingerprints_are_cut_with_a_hash() -> None:
    long = fingerprint("unpriced_model", "t" * 128, "p", "m" * 128)
    assert len(long) == 200 and long != fingerprint("unpriced_model", "t" * 128, "p", "m" * 127 + "x")


def test_billing_alerts_validate_against_the_shared_alert_message() -> None:
    for message in (budget_message(), budget_message(threshold=100, app_id="bot")):
        parsed = AlertMessage.model_validate(message)
        assert parsed.alert_id == message["alert_id"] and parsed.source == "billing"
