"""Monitors fire once and resolve once on closed windows (the closer on real Postgres and Kafka, windows filled as
the faust app fills them, a clock the test moves): an error spike, a latency regression, a cost runaway and a
score drop; a window closed twice (a restart) decides nothing twice; an alert left in the outbox is sent."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from llmops_monitors import metrics, service
from llmops_monitors.observe import Observation, group_key
from llmops_monitors.store import monitors as monitors_store
from tests.integration.monitors.conftest import T0, ClosingWorld, define, put

pytestmark = pytest.mark.integration

MINUTE = 60


def clean(tenant: str, t: float, *, error: bool = False, latency_ms: float = 100.0, model: str = "m") -> Observation:
    delta = {metrics.COUNT: 1.0, metrics.LAT_N: 1.0, metrics.LAT_SUM: latency_ms, metrics.bucket_of(latency_ms): 1.0}
    if error:
        delta[metrics.ERRORS] = 1.0
    return Observation(group_key(tenant, "bot", "prod", model, ""), t, delta)


def cost(tenant: str, t: float, usd: float) -> Observation:
    return Observation(group_key(tenant, "bot", "prod", "m", ""), t, {metrics.COST: usd, metrics.COST_N: 1.0})


def score(tenant: str, t: float, value: float) -> Observation:
    return Observation(group_key(tenant, "bot", "prod"), t, {metrics.SCORE_SUM: value, metrics.SCORE_N: 1.0})


async def run_minutes(world: ClosingWorld, minutes: list[list[Observation]]) -> list[Any]:
    """Minute i gets `minutes[i]`; then the clock passes its end and the closer runs."""
    closer = world.closer()
    sent = []
    for i, observations in enumerate(minutes):
        for obs in observations:
            put(world.panes, obs)
        world.now[0] = T0 + (i + 1) * MINUTE
        sent += await closer.close_due()
    return sent


SCENARIOS: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "error spike": ({"metric": "error_rate", "condition": {"op": ">", "threshold": 0.2}},
                    lambda t, s: [clean(t, s + i, error=i < 5) for i in range(10)],
                    lambda t, s: [clean(t, s + i) for i in range(10)]),
    "latency regression": ({"metric": "latency_p95", "condition": {"op": ">", "threshold": 1000}},
                           lambda t, s: [clean(t, s + i, latency_ms=3000) for i in range(10)],
                           lambda t, s: [clean(t, s + i, latency_ms=120) for i in range(10)]),
    "cost runaway": ({"metric": "cost", "condition": {"op": ">", "threshold": 5}},
                     lambda t, s: [cost(t, s + i, 0.9) for i in range(10)],
                     lambda t, s: [cost(t, s + i, 0.01) for i in range(10)]),
    "score drop": ({"metric": "judge_score", "condition": {"op": "<", "threshold": 0.5}},
                   lambda t, s: [score(t, s + i, 0.1) for i in range(10)],
                   lambda t, s: [score(t, s + i, 0.9) for i in range(10)]),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_each_kind_fires_once_and_resolves_once(closing: ClosingWorld, pg_pool: asyncpg.Pool, tenant: str,
                                                      scenario: str) -> None:
    body, bad, good = SCENARIOS[scenario]
    await define(pg_pool, tenant, name=scenario, window="1m", min_samples=5, resolve_after=2, severity="critical",
                 **body)
    minutes = [good(tenant, T0), bad(tenant, T0 + 60), bad(tenant, T0 + 120), good(tenant, T0 + 180), [],
               good(tenant, T0 + 300), good(tenant, T0 + 360)]
    sent = await run_minutes(closing, minutes)
    assert [(a.status, a.occurred_at.timestamp()) for a in sent] == [("open", T0 + 120), ("resolved", T0 + 300)]
    alerts = await closing.alerts(tenant, 2)
    assert [a["status"] for a in alerts] == ["open", "resolved"]
    assert alerts[0]["fingerprint"] == alerts[1]["fingerprint"] and alerts[0]["severity"] == "critical"
    firings = await pg_pool.fetch("SELECT * FROM monitor_firings WHERE tenant_id = $1", tenant)
    assert len(firings) == 1 and firings[0]["resolved_window_end"].timestamp() == T0 + 300


async def test_a_window_closed_again_decides_nothing_again_and_the_relay_sends_what_was_left(
        closing: ClosingWorld, pg_pool: asyncpg.Pool, tenant: str) -> None:
    await define(pg_pool, tenant, name="errors", metric="error_rate", window="5m/1m", min_samples=1,
                 condition={"op": ">=", "threshold": 0.5})
    for i in range(4):
        put(closing.panes, clean(tenant, T0 + 10 + i, error=True))
    snapshot = dict(closing.panes)
    closing.now[0] = T0 + 5 * MINUTE
    first = await closing.closer().close_due()
    assert [a.status for a in first] == ["open"]
    # A restart: the tables come back from their changelogs as they were, and the clock moves on.
    closing.panes.clear()
    closing.panes.update(snapshot)
    closing.now[0] = T0 + 5 * MINUTE + 1
    assert await closing.closer().close_due() == []
    assert await pg_pool.fetchval("SELECT count(*) FROM monitor_firings WHERE tenant_id = $1", tenant) == 1
    # An alert decided but not sent (a crash between the commit and the send) is sent by the relay, once.
    await pg_pool.execute("UPDATE monitor_alert_outbox SET published_at = NULL WHERE tenant_id = $1", tenant)
    relayed = await closing.closer().publish(None)
    assert [a.alert_id for a in relayed] == [first[0].alert_id]
    assert await closing.closer().publish(None) == []


async def test_a_changed_definition_counts_from_the_next_window(closing: ClosingWorld, pg_pool: asyncpg.Pool,
                                                                tenant: str) -> None:
    monitor_id = await define(pg_pool, tenant, name="errors", metric="error_rate", window="1m", min_samples=1,
                              condition={"op": ">", "threshold": 0.9})
    closer = closing.closer()
    for minute in range(2):
        for i in range(4):
            put(closing.panes, clean(tenant, T0 + minute * MINUTE + i, error=i < 2))  # 50% errors
    closing.now[0] = T0 + MINUTE
    assert await closer.close_due() == []
    stamp = closing.watcher.stamp(["monitors"])
    row = await monitors_store.get_monitor(pg_pool, tenant_id=tenant, monitor_id=monitor_id)
    assert row is not None
    await monitors_store.replace_monitor(pg_pool, tenant_id=tenant, monitor_id=monitor_id, definition={
        **row, "window": row["window_spec"], "channels": row["channel_ids"],
        "condition": {"op": ">", "threshold": 0.4}})
    assert await closing.watcher.wait_for_change(["monitors"], stamp, timeout_s=1.0)  # within a second
    closing.now[0] = T0 + 2 * MINUTE
    assert [a.status for a in await closer.close_due()] == ["open"]


async def test_a_relative_condition_compares_with_the_same_window_of_previous_days(
        closing: ClosingWorld, pg_pool: asyncpg.Pool, tenant: str) -> None:
    await define(pg_pool, tenant, name="vs last week", metric="error_rate", window="1m", min_samples=5,
                 condition={"op": ">", "baseline": "same_window_previous_days", "factor": 2, "days": 7})
    day = 86_400
    closer = closing.closer()
    # Minutes 0 and 2 on each of the last three days: 10% errors (the baseline); nothing fires without one.
    for d in (3, 2, 1):
        for minute in (0, 2):
            for i in range(10):
                put(closing.panes, clean(tenant, T0 - d * day + minute * MINUTE + i, error=i == 0))
        closing.now[0] = T0 - d * day + 3 * MINUTE
        assert await closer.close_due() == []
    # Today: minute 0 has 15% errors, under 2 x 10%; minute 1 has 50% but no history, so no baseline;
    # minute 2 has 40% against 2 x 10%: it fires.
    for i in range(20):
        put(closing.panes, clean(tenant, T0 + i, error=i < 3))
        put(closing.panes, clean(tenant, T0 + MINUTE + i, error=i < 10))
        put(closing.panes, clean(tenant, T0 + 2 * MINUTE + i, error=i < 8))
    closing.now[0] = T0 + 3 * MINUTE
    sent = await closer.close_due()
    assert [(a.status, a.occurred_at.timestamp(), a.details["reference"]) for a in sent] == [
        ("open", T0 + 3 * MINUTE, pytest.approx(0.2))]


async def test_deleting_a_firing_monitor_resolves_its_firing(closing: ClosingWorld, pg_pool: asyncpg.Pool,
                                                             tenant: str) -> None:
    monitor_id = await define(pg_pool, tenant, name="errors", metric="error_rate", window="1m", min_samples=1,
                              condition={"op": ">", "threshold": 0.1})
    for i in range(5):
        put(closing.panes, clean(tenant, T0 + i, error=True))
    closing.now[0] = T0 + MINUTE
    opened = await closing.closer().close_due()
    assert [a.status for a in opened] == ["open"]
    await service.delete(pg_pool, tenant_id=tenant, monitor_id=monitor_id)
    relayed = await closing.closer().publish(None)  # what the worker's relay does
    assert [(a.status, a.alert_id, a.fingerprint) for a in relayed] == [
        ("resolved", opened[0].alert_id, opened[0].fingerprint)]
    firing = await pg_pool.fetchrow("SELECT resolved_at FROM monitor_firings WHERE monitor_id = $1", monitor_id)
    assert firing["resolved_at"] is not None
