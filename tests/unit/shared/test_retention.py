"""Retention's settings and policy, pure: what a table keeps, who may keep longer, which months expire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from llmops_shared.partitions import Partition
from llmops_shared.retention import MIN_DEDUPE_DAYS, Outcome, RetentionSettings, expired, tenant_cutoffs

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def month(year: int, number: int) -> Partition:
    upper = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return Partition(f"t_{year}_{number:02d}", datetime(year, number, 1, tzinfo=UTC), upper)


def test_every_table_that_grows_has_a_retention_and_the_ledger_is_kept_unless_told() -> None:
    settings = RetentionSettings()
    for table in ("usage_events_seen", "guardrail_findings", "guardrail_alert_events", "evaluation_results",
                  "dead_letters", "notification_deliveries"):
        assert settings.days(table) is not None, table
    assert settings.days("usage_ledger") is None


@pytest.mark.parametrize("field", ["usage_events_seen_days", "guardrail_findings_days",
                                   "guardrail_alert_events_days", "evaluation_results_days", "usage_ledger_days"])
def test_a_table_that_recognises_redelivered_events_keeps_them_long_enough(field: str) -> None:
    with pytest.raises(ValidationError, match=f"greater than or equal to {MIN_DEDUPE_DAYS}"):
        RetentionSettings(**{field: MIN_DEDUPE_DAYS - 1})
    assert RetentionSettings(**{field: MIN_DEDUPE_DAYS}).days(field.removesuffix("_days")) == MIN_DEDUPE_DAYS


def test_a_tenant_may_only_keep_findings_or_judgments_and_only_longer() -> None:
    ok = RetentionSettings(guardrail_findings_days=90, tenant_days={"acme": {"guardrail_findings": 365}})
    assert tenant_cutoffs(ok, "guardrail_findings", NOW) == {"acme": datetime(2025, 11, 24, 12, tzinfo=UTC)}
    assert tenant_cutoffs(ok, "evaluation_results", NOW) == {}
    with pytest.raises(ValidationError, match="only keep rows longer"):
        RetentionSettings(guardrail_findings_days=90, tenant_days={"acme": {"guardrail_findings": 30}})
    with pytest.raises(ValidationError, match="has no per-tenant retention"):
        RetentionSettings(tenant_days={"acme": {"usage_events_seen": 365}})


def test_tenant_overrides_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_RETENTION_TENANT_DAYS", '{"acme": {"evaluation_results": 400}}')
    monkeypatch.setenv("LLMOPS_RETENTION_GUARDRAIL_FINDINGS_DAYS", "60")
    settings = RetentionSettings()
    assert settings.tenant_days == {"acme": {"evaluation_results": 400}}
    assert settings.days("guardrail_findings") == 60


def test_a_month_expires_once_all_of_it_is_older_than_the_cutoff() -> None:
    parts = [month(2026, 6), month(2026, 7), month(2026, 8), Partition("t_default", None, None)]
    assert expired(parts, datetime(2026, 8, 1, tzinfo=UTC)) == parts[:2]  # July ends exactly at the cutoff
    assert expired(parts, datetime(2026, 7, 31, tzinfo=UTC)) == parts[:1]
    assert expired(parts, datetime(2020, 1, 1, tzinfo=UTC)) == []


def test_what_a_run_says() -> None:
    dropped = Outcome("guardrail_findings", "dropped", "guardrail_findings_2026_06", 120, "older than 90 days")
    assert dropped.line(dry_run=False) == ("guardrail_findings: dropped guardrail_findings_2026_06 (~120 row(s)): "
                                           "older than 90 days")
    assert dropped.line(dry_run=True).startswith("guardrail_findings: would drop guardrail_findings_2026_06")
    deleted = Outcome("dead_letters", "deleted", "rows older than 30 days", 3)
    assert deleted.line(dry_run=True) == "dead_letters: would delete rows older than 30 days (3 row(s))"
