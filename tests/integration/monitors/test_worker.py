"""The monitors worker as it runs (`python -m llmops_monitors.worker`, a faust app) on real Kafka and Postgres,
in event time (`time_source=event`: a window closes when a later event has been aggregated), so the test
decides when windows close: an error spike fires once, and a SIGKILL of the worker in the middle of the
spike's window neither loses nor repeats the firing; a message that can never be used is dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from llmops_monitors import metrics, panes
from llmops_monitors.settings import MonitorsSettings
from llmops_shared.settings import CommonSettings, environment
from tests.integration.monitors.conftest import T0, create_topics, define, monitors_settings, wait_for
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


@contextmanager
def worker(settings: MonitorsSettings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **environment(settings), "LLMOPS_LOG_LEVEL": os.environ.get("MONITORS_TEST_LOG", "INFO")}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llmops_monitors.worker"], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def interaction(tenant: str, app: str, t: float, *, error: bool = False) -> bytes:
    from datetime import UTC, datetime

    extra: dict[str, Any] = {"status": "error", "error": {"type": "Timeout"}} if error else {}
    event = make_event(app_id=app, occurred_at=datetime.fromtimestamp(t, UTC).isoformat(), latency_ms=100.0, **extra)
    return orjson.dumps({**event, "tenant_id": tenant})


async def send(settings: MonitorsSettings, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"one-partition-order")
    finally:
        await producer.stop()


async def consumed(settings: MonitorsSettings, topics: list[str]) -> bool:
    """Has the worker's group committed everything the topics hold?"""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.group)
    finally:
        await admin.close()
    for topic in topics:
        for tp, end in (await end_offsets(settings.kafka_bootstrap, topic)).items():
            meta = committed.get(tp)
            if end and (meta is None or meta.offset < end):
                return False
    return True


async def evaluated(pool: asyncpg.Pool, monitor_id: int, window_end: float) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) FROM monitor_evaluations WHERE monitor_id = $1 AND window_end = to_timestamp($2)",
        monitor_id, window_end))


async def test_a_spike_fires_once_through_the_worker_and_a_sigkill_mid_window_loses_and_repeats_nothing(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    settings = monitors_settings(stack, time_source="event", close_interval_s=0.1, commit_interval_s=0.2,
                                 consumer_session_timeout_ms=10_000, partitions=2, batch_max_wait_ms=50)
    await create_topics(settings)
    since = await end_offsets(stack.kafka_bootstrap, settings.alerts_topic)
    probe = await define(pg_pool, tenant, name="probe", metric="request_count", window="1m", app_id="probe",
                         min_samples=0, condition={"op": "<", "threshold": 0})
    spike = await define(pg_pool, tenant, name="errors", metric="error_rate", window="1m", app_id="bot",
                         min_samples=5, resolve_after=1, condition={"op": ">", "threshold": 0.3})
    log = tmp_path / "worker.log"
    with worker(settings, log) as first:
        # Ready when a window of the probe app closed: the whole pipeline ran once.
        await send(settings, settings.clean_topic, interaction(tenant, "probe", T0 + 1),
                   interaction(tenant, "probe", T0 + 61))
        await wait_for(lambda: evaluated(pg_pool, probe, T0 + 60), timeout_s=60)
        # The spike's window [T0 + 60, T0 + 120): 6 errors in 10; and a message that is not an event.
        await send(settings, settings.clean_topic, *(interaction(tenant, "bot", T0 + 62 + i, error=i < 6)
                                                      for i in range(10)), b"{not json")
        await send(settings, settings.scores_topic, b"[]")
        await wait_for(lambda: consumed(settings, [settings.clean_topic, settings.scores_topic,
                                                   settings.observations_topic]))
        os.kill(first.pid, signal.SIGKILL)  # mid-window: nothing has closed it yet
        first.wait(10)
    assert not await evaluated(pg_pool, spike, T0 + 120)
    with worker(settings, log) as second:
        # A later event closes the spike's window in the new worker, from the tables it recovered.
        await send(settings, settings.clean_topic, interaction(tenant, "probe", T0 + 125))
        try:
            await wait_for(lambda: evaluated(pg_pool, spike, T0 + 120), timeout_s=90)
        except AssertionError:  # keep the evidence: this failed twice in fresh-clone runs, cause not yet found
            raise AssertionError("the restarted worker did not evaluate the spike's window; its log ends:\n"
                                 + "\n".join(log.read_text(errors="replace").splitlines()[-60:])) from None
        # The next minute is clear: the firing resolves (resolve_after=1).
        await send(settings, settings.clean_topic, *(interaction(tenant, "bot", T0 + 130 + i) for i in range(6)),
                   interaction(tenant, "probe", T0 + 185))
        await wait_for(lambda: evaluated(pg_pool, spike, T0 + 180), timeout_s=60)
        assert second.poll() is None
    # After its recovery the new worker sought its stream partitions again (faust resumes the flow after its own
    # seek and clears the agents' queues on resuming: a message fetched in between was lost, about once in 20 runs)
    assert log.read_text(errors="replace").count("stream partitions sought to their committed offsets") >= 2
    row = await pg_pool.fetchrow("SELECT value, samples FROM monitor_evaluations WHERE monitor_id = $1 "
                                 "AND window_end = to_timestamp($2)", spike, T0 + 120)
    assert (row["samples"], row["value"]) == (10, 0.6)
    firings = await pg_pool.fetch("SELECT * FROM monitor_firings WHERE monitor_id = $1", spike)
    assert len(firings) == 1 and firings[0]["window_end"].timestamp() == T0 + 120
    assert firings[0]["resolved_window_end"].timestamp() == T0 + 180
    alerts = [orjson.loads(r.value) for r in await collect(
        stack.kafka_bootstrap, settings.alerts_topic, since, until=lambda found: len(found) >= 3, timeout_s=3)]
    # (the worker evaluates every tenant's monitors: other tests' open firings may resolve here too)
    assert [(a["status"], a["rule"]) for a in alerts if a["tenant_id"] == tenant] == [
        ("open", "errors"), ("resolved", "errors")]
    dead = await pg_pool.fetch("SELECT topic, reason FROM dead_letters WHERE consumer = $1 ORDER BY topic",
                               settings.group)
    assert sorted((d["topic"], d["reason"]) for d in dead) == sorted(
        [(settings.clean_topic, "bad_json"), (settings.scores_topic, "bad_json")])


def usage(tenant: str, app: str, t: float, cost: str, event_id: str | None = None) -> bytes:
    from datetime import UTC, datetime

    return orjson.dumps({"tenant_id": tenant, "app_id": app, "event_id": event_id or str(uuid.uuid4()),
                         "occurred_at": datetime.fromtimestamp(t, UTC).isoformat(), "environment": "test",
                         "model": "gpt-4o-mini", "cost_total": cost})


async def counted(settings: MonitorsSettings, tenant: str) -> tuple[float, float]:
    """(interactions, billed rows) of the tenant's panes as the pane table's changelog holds them now."""
    topic = f"{settings.group}-panes-1m-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return 0.0, 0.0
    finally:
        await admin.close()
    ends = await end_offsets(settings.kafka_bootstrap, topic)
    if not sum(ends.values()):
        return 0.0, 0.0
    latest: dict[bytes, Any] = {}
    for r in await collect(settings.kafka_bootstrap, topic, dict.fromkeys(ends, 0),
                           until=lambda found: len(found) >= sum(ends.values()), timeout_s=5):
        latest[r.key] = orjson.loads(r.value) if r.value else None
    vectors = [panes.vector(v) for k, v in latest.items() if v and tenant.encode() in k]
    return (sum(v.get(str(metrics.COUNT), 0.0) for v in vectors),
            sum(v.get(str(metrics.COST_N), 0.0) for v in vectors))


async def test_a_sigkill_after_the_changelog_and_before_the_offset_commit_counts_every_event_once(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    """Events counted in a pane (its changelog has them) whose offsets were not committed when the worker was
    killed (no periodic commit for 600 s; a session timeout of 15 s so that a slow machine does not make the
    group rebalance, on which faust commits) are delivered again to the next worker, which recovered the
    pane: they count once. So do a clean interaction published twice upstream and a `billing.usage` message
    billing's outbox sent twice. The window's evaluation shows the exact counts."""
    settings = monitors_settings(stack, time_source="event", close_interval_s=0.1, commit_interval_s=600,
                                 consumer_session_timeout_ms=15_000, partitions=2, batch_max_wait_ms=50)
    await create_topics(settings, partitions=2)
    errors = await define(pg_pool, tenant, name="errors", metric="error_rate", window="1m", app_id="bot",
                          min_samples=0, condition={"op": ">", "threshold": 2})
    cost = await define(pg_pool, tenant, name="cost", metric="cost", window="5m/1m", app_id="bot",
                        min_samples=0, condition={"op": ">", "threshold": 1000})
    repeated = str(uuid.uuid4())
    log = tmp_path / "worker.log"
    with worker(settings, log) as first:
        clean = [interaction(tenant, "bot", T0 + 62 + i, error=i < 6) for i in range(10)]
        # ... and the first of them again, as the guardrails worker republishes after a crash of its own
        await send(settings, settings.clean_topic, *clean, clean[0])
        await send(settings, settings.usage_topic, *(usage(tenant, "bot", T0 + 63 + i, "0.25") for i in range(3)),
                   usage(tenant, "bot", T0 + 70, "0.25", repeated), usage(tenant, "bot", T0 + 70, "0.25", repeated))

        async def in_the_changelog() -> bool:
            interactions, billed = await counted(settings, tenant)
            return interactions >= 10 and billed >= 4

        await wait_for(in_the_changelog, timeout_s=60)
        assert not await consumed(settings, [settings.clean_topic]), "offsets were committed before the kill"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    with worker(settings, log) as second:
        # A later event closes the windows in the new worker, once it has recovered the panes.
        await send(settings, settings.clean_topic, interaction(tenant, "probe", T0 + 125))
        try:
            await wait_for(lambda: evaluated(pg_pool, errors, T0 + 120), timeout_s=90)
        except AssertionError:  # keep the evidence: this failed once this session, cause not yet found
            raise AssertionError("the restarted worker did not evaluate the window; its log ends:\n"
                                 + "\n".join(log.read_text(errors="replace").splitlines()[-60:])) from None
        await wait_for(lambda: evaluated(pg_pool, cost, T0 + 120), timeout_s=30)
        assert second.poll() is None
    rows = {r["monitor_id"]: r for r in await pg_pool.fetch(
        "SELECT monitor_id, value, samples FROM monitor_evaluations WHERE monitor_id = ANY($1::bigint[]) "
        "AND window_end = to_timestamp($2)", [errors, cost], T0 + 120)}
    assert (rows[errors]["samples"], rows[errors]["value"]) == (10, 0.6)
    assert (rows[cost]["samples"], rows[cost]["value"]) == (4, 1.0)
