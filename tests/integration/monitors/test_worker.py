"""The monitors worker as it runs (`python -m llmops_monitors.worker`, a faust app) on real Kafka and Postgres,
in event time (`time_source=event`: a window closes when a later event has been aggregated), so the test
decides when windows close: an error spike fires once, and a SIGKILL of the worker in the middle of the
spike's window neither loses nor repeats the firing; a message that can never be used is dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from llmops_monitors.settings import MonitorsSettings
from llmops_shared.settings import CommonSettings, environment
from tests.integration.monitors.conftest import T0, create_topics, define, monitors_settings, wait_for
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


@contextmanager
def worker(settings: MonitorsSettings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **environment(settings), "LLMOPS_LOG_LEVEL": os.environ.get("MONITORS_TEST_LOG", "WARNING")}
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
        await wait_for(lambda: evaluated(pg_pool, spike, T0 + 120), timeout_s=90)
        # The next minute is clear: the firing resolves (resolve_after=1).
        await send(settings, settings.clean_topic, *(interaction(tenant, "bot", T0 + 130 + i) for i in range(6)),
                   interaction(tenant, "probe", T0 + 185))
        await wait_for(lambda: evaluated(pg_pool, spike, T0 + 180), timeout_s=60)
        assert second.poll() is None
    row = await pg_pool.fetchrow("SELECT value, samples FROM monitor_evaluations WHERE monitor_id = $1 "
                                 "AND window_end = to_timestamp($2)", spike, T0 + 120)
    assert row["samples"] >= 10 and row["value"] == pytest.approx(0.6, abs=0.1)  # redelivery may count twice
    firings = await pg_pool.fetch("SELECT * FROM monitor_firings WHERE monitor_id = $1", spike)
    assert len(firings) == 1 and firings[0]["window_end"].timestamp() == T0 + 120
    assert firings[0]["resolved_window_end"].timestamp() == T0 + 180
    alerts = [orjson.loads(r.value) for r in await collect(
        stack.kafka_bootstrap, settings.alerts_topic, since, until=lambda found: len(found) >= 3, timeout_s=3)]
    assert [(a["status"], a["rule"]) for a in alerts] == [("open", "errors"), ("resolved", "errors")]
    dead = await pg_pool.fetch("SELECT topic, reason FROM dead_letters WHERE consumer = $1 ORDER BY topic",
                               settings.group)
    assert sorted((d["topic"], d["reason"]) for d in dead) == sorted(
        [(settings.clean_topic, "bad_json"), (settings.scores_topic, "bad_json")])
