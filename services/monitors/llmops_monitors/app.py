"""The monitors worker as a faust-streaming app: sources -> observations -> windowed tables -> closer.

    python -m llmops_monitors.worker          (or `llmops run monitors-worker`)

Two stages, each an agent of concurrency 1 (one batch in flight per partition: faust 0.15.3 can commit
past an in-flight event with more, issue #606):

1. `route-<source>`, one per source topic (clean interactions, judge scores, priced usage), in batches
   (`take_events`): each message becomes an observation (`observe`) that carries its origin (source
   partition and offset); the batch's observations are sent as ONE message per partition of the
   observations topic (keyed by tenant and app: `partition_of`), awaiting the broker's acknowledgements
   before the batch is acked, so a batch reaches a partition whole or not at all. A message that
   repeats an event another message of its route brought (an upstream worker, or billing's outbox,
   published it again after a crash) is dropped (`store.events_seen`). A message that can never be
   used is dead-lettered inside the loop (a `dead_letters` row and the message on `llm.dead-letters`);
   a failing send or write is retried, never raised: faust acks a batch whose body raised (`take`
   acks in a `finally`), which would lose it.
2. `aggregate`, on the observations topic, in batches: each observation is added to its 1-minute pane
   in a tumbling windowed table (faust's window ranges, expiry and changelog), keyed by the fine group
   key, by event time, unless the pane's offset mark for its origin says it is counted already (`panes`:
   the marks and the counts are one value, one changelog record, so a crash between the changelog and
   the offset commit counts nothing twice); each touched pane is written once per batch. Every monitor
   window (tumbling 1m, 5m, 1h; hopping 5m/1m, 1h/5m) is the sum of its panes. The table is backed by a
   changelog topic (recovered after a restart), in memory, no standbys.

A task runs the `WindowCloser` every `close_interval_s` once the tables are recovered: windows whose end
(plus `lateness_s`) has passed are evaluated and their alerts sent (docs/monitors.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from llmops_monitors import observe, panes
from llmops_monitors.closer import MonitorCache, WindowCloser
from llmops_monitors.settings import MonitorsSettings
from llmops_monitors.store import events_seen, firings, outbox
from llmops_monitors.windows import PANE_S
from llmops_shared import deadletters
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.contract import BadEvent
from llmops_shared.topics import DEAD_LETTERS

log = logging.getLogger("llmops_monitors.worker")

Decoder = Callable[[bytes | None], "observe.Observation | None"]
USAGE = "u"  # billing.usage's origin code (clean interactions "c", judge scores "s")


@dataclass
class Runtime:
    """What the app's agents and tasks share: Postgres, a producer for alerts and dead letters, the clock."""

    settings: MonitorsSettings
    clock: Callable[[], float] | None = None
    pool: asyncpg.Pool | None = None
    producer: AIOKafkaProducer | None = None
    watcher: ConfigWatcher | None = None
    watermark: float = 0.0  # the latest event time aggregated (the clock when time_source is "event")
    _started: asyncio.Lock = field(default_factory=asyncio.Lock)

    def now(self) -> float:
        if self.clock is not None:
            return self.clock()
        return self.watermark if self.settings.time_source == "event" else time.time()

    async def ready(self) -> None:
        async with self._started:
            if self.pool is not None:
                return
            from llmops_shared.db import create_pool
            from llmops_shared.kafka import durable_producer

            self.watcher = ConfigWatcher(self.settings.database_url)
            await self.watcher.start()
            self.producer = durable_producer(self.settings.kafka_bootstrap, client_id=f"{self.settings.group}-alerts")
            await self.producer.start()
            self.pool = await create_pool(self.settings.database_url, max_size=4)

    async def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()
        if self.watcher is not None:
            await self.watcher.close()

    async def dead_letter(self, letters: Sequence[tuple[Any, str, str]]) -> None:
        """(faust event, reason, error) -> a `dead_letters` row and the message on the dead-letter topic; retried
        until both are done (never raised: the batch must not be acked without them)."""
        assert self.pool is not None and self.producer is not None
        rows = [deadletters.Row(e.message.topic, e.message.partition, e.message.offset, e.message.key, reason,
                                error[:2000], None, None) for e, reason, error in letters]

        async def write() -> None:
            assert self.pool is not None and self.producer is not None
            async with self.pool.acquire() as conn:
                await deadletters.record(conn, consumer=self.settings.group, rows=rows)
            futures = []
            for e, reason, error in letters:
                headers = [("llmops.consumer", self.settings.group.encode()),
                           ("llmops.topic", e.message.topic.encode()),
                           ("llmops.partition", str(e.message.partition).encode()),
                           ("llmops.offset", str(e.message.offset).encode()), ("llmops.reason", reason.encode()),
                           ("llmops.error", error[:500].encode())]
                futures.append(await self.producer.send(DEAD_LETTERS, e.message.value or b"", key=e.message.key,
                                                        headers=headers))
            await asyncio.gather(*futures)

        await forever(write, what="dead-letter messages")


async def forever(step: Callable[[], Any], *, what: str, max_delay_s: float = 5.0) -> Any:
    """`step`, retried with capped, jittered backoff until it succeeds: inside a faust agent nothing may raise."""
    delay = 0.1
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not %s; retrying", what, extra={"error_type": type(exc).__name__,
                                                               "retry_in_s": round(delay, 2)})
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_delay_s)


def partition_of(group_key: str, partitions: int) -> int:
    """The observations topic's partition of a group (the producer's default partitioner: murmur2 of the key)."""
    tenant, app, _ = group_key.split(observe.SEP, 2)
    return (murmur2(f"{tenant}{observe.SEP}{app}".encode()) & 0x7FFFFFFF) % partitions


def build_app(settings: MonitorsSettings, *, clock: Callable[[], float] | None = None) -> tuple[faust.App, Runtime]:
    runtime = Runtime(settings, clock)
    app = faust.App(
        settings.group,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        table_standby_replicas=0,  # a standby's data would sit in the same memory store as the actives'
        table_cleanup_interval=60.0,
        broker_commit_every=settings.batch_max_events,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.consumer_session_timeout_ms / 1000,
        broker_heartbeat_interval=max(1.0, settings.consumer_session_timeout_ms / 3000),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.005,  # batch the observations and changelog writes (faust sends one by one otherwise)
        stream_wait_empty=False,
    )
    # Raw bytes in and out: faust decodes nothing itself (a message its serializer refused would crash the
    # agent and be acked unseen); our decoders dead-letter what they cannot use.
    observations = app.topic(settings.observations_topic, key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions)
    expires = timedelta(seconds=settings.table_expires_s)

    # One tumbling table of 1-minute panes; every monitor window (1m, 5m, 1h tumbling; 5m/1m, 1h/5m
    # hopping) is summed from its panes when it closes. A table per window spec would send each event to
    # 20 windows' changelogs (5 + 12 for the hopping ones): 20x the changelog traffic, which bounded the
    # worker at ~400 events/s (bench/RESULTS.md).
    panes_table = app.Table("panes-1m", default=dict, partitions=settings.partitions,  # values: `panes.PaneValue`
                            help="monitor panes (1 minute)").tumbling(PANE_S, expires=expires)

    async def send_observations(out: list[observe.Observation]) -> None:
        """To the observations topic, one message per partition, awaiting every acknowledgement (the batch is
        acked after this; retried whole, a repeat is skipped by the panes' offset marks)."""
        by_partition: dict[int, list[observe.Observation]] = {}
        for o in out:
            by_partition.setdefault(partition_of(o.key, settings.partitions), []).append(o)
        futures = [await observations.send(key=None, value=observe.encode_batch(batch), partition=partition)
                   for partition, batch in sorted(by_partition.items())]
        await asyncio.gather(*futures)

    async def first_sends(code: str, out: list[observe.Observation]) -> list[observe.Observation]:
        """The observations whose message is the first of the route to bring its event (a repeat is dropped;
        an observation without an event id is kept)."""
        assert runtime.pool is not None
        identified = [o for o in out if o.event_id]
        firsts = await events_seen.first_messages(runtime.pool, consumer=f"{settings.group}/{code}", messages=[
            (o.key.split(observe.SEP, 1)[0], o.event_id, int(o.origin[1:]), o.offset) for o in identified])
        return [o for o in out if not o.event_id or (int(o.origin[1:]), o.offset) in firsts]

    def route(topic_name: str, code: str, decoder: Decoder) -> None:
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")

        async def agent(stream: Any) -> None:
            within = settings.batch_max_wait_ms / 1000
            async for events in stream.take_events(settings.batch_max_events, within=within):
                await runtime.ready()
                out: list[observe.Observation] = []
                dead: list[tuple[Any, str, str]] = []
                for event in events:
                    try:
                        found = decoder(event.message.value)
                    except BadEvent as exc:
                        dead.append((event, exc.reason, exc.detail))
                        continue
                    if found is not None:
                        out.append(dataclasses.replace(found, origin=f"{code}{event.message.partition}",
                                                       offset=event.message.offset))
                if dead:
                    await runtime.dead_letter(dead)
                if out:
                    out = await forever(functools.partial(first_sends, code, out), what="record seen events")
                if out:
                    await forever(functools.partial(send_observations, out), what="send observations")

        app.agent(topic, name=f"route-{topic_name}", concurrency=1)(agent)

    route(settings.clean_topic, "c", observe.from_clean)
    route(settings.scores_topic, "s", observe.from_score)
    route(settings.usage_topic, USAGE, observe.from_usage)

    @app.agent(observations, name="aggregate", concurrency=1)
    async def aggregate(stream: Any) -> None:
        """Observations into the pane table, a batch at a time: each touched pane is updated in a working copy
        (skipping observations its offset marks say it counted) and written (and sent to its changelog) once
        per batch, with an event of its partition current, so it goes to that partition of the changelog."""
        within = settings.batch_max_wait_ms / 1000
        table = panes_table.table
        async for events in stream.take_events(settings.batch_max_events, within=within):
            working: dict[int, panes.Working] = {}
            of_partition: dict[int, Any] = {}
            dead = []
            for event in events:
                try:
                    batch = observe.decode_batch(event.message.value)
                except BadEvent as exc:
                    dead.append((event, exc.reason, exc.detail))
                    continue
                partition = event.message.partition
                of_partition[partition] = event
                work = working.get(partition)
                if work is None:
                    work = working[partition] = panes.Working(table.data)
                for obs in batch:
                    start = int(obs.t // PANE_S) * PANE_S
                    work.apply((obs.key, (float(start), start + PANE_S - 0.1)), obs)  # faust's window range
                    runtime.watermark = max(runtime.watermark, obs.t)
            for partition, work in working.items():
                stream._set_current_event(of_partition[partition])
                for pane, value in work.values().items():
                    table[pane] = value
            if dead:
                await runtime.ready()
                await runtime.dead_letter(dead)

    def owns(group_key: str) -> bool:
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.observations_topic}
        return partition_of(group_key, settings.partitions) in mine

    restored = [False]  # the tables of the current assignment are restored from their changelogs

    def tables_out_of_date(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        restored[0] = False  # a rebalance began: its recovery has not run yet

    def tables_restored(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        restored[0] = True

    # (weak=False: a signal keeps weak references by default, and these functions would be collected)
    app.on_partitions_revoked.connect(tables_out_of_date, weak=False)
    app.on_rebalance_complete.connect(tables_restored, weak=False)

    def recovered() -> bool:
        """May windows close now? Not from a table whose restore has not run: faust sets `completed` once and
        leaves it set, and after a second rebalance neither `rebalancing` nor `in_recovery` is set for a moment
        before the recovery starts (a pass then would take the table as empty and step over its windows)."""
        recovery = app.tables.recovery  # type: ignore[attr-defined]  # the TableManager has it
        return bool(restored[0] and recovery.completed.is_set() and not app.rebalancing and not app.in_recovery)

    async def seek_again() -> None:
        """Once the tables of an assignment are recovered: seek the stream partitions to their committed offsets
        again. faust 0.15.3 seeks them when its recovery ends and only then resumes the flow, and resuming clears
        every agent's queue (`FlowControlEvent.resume`): a message fetched between the seek and the resume is
        dropped from its queue while the consumer's position has passed it, so it would never be read (seen:
        a restarted worker whose source partition stood one past the message its routes never received). Seeking
        again reads it; what is read twice is dropped by the routes' seen events and the panes' offset marks."""
        try:
            await app.consumer.perform_seek()
            log.info("stream partitions sought to their committed offsets after recovery",
                     extra={"generation": app.consumer_generation_id})
        except Exception as exc:  # a rebalance under way seeks them itself when it ends
            log.warning("could not seek the stream partitions after recovery",
                        extra={"error_type": type(exc).__name__})

    @app.task
    async def close_windows() -> None:
        await runtime.ready()
        assert runtime.pool is not None and runtime.producer is not None
        table = panes_table.table

        def forget(pane: Any) -> None:
            """A pane every window over which has closed: gone from memory and (tombstone) from the changelog."""
            if table.data.pop(pane, None) is not None:
                table.send_changelog(partition_of(pane[0], settings.partitions), pane, None)

        closer = WindowCloser(settings, pool=runtime.pool, producer=runtime.producer, panes=table.data,
                              monitors=MonitorCache(runtime.pool, runtime.watcher), clock=runtime.now, owns=owns,
                              forget=forget)
        assigned: set[Any] = set()
        sought = -1  # the consumer generation whose stream partitions were sought again after its recovery
        last_relay = 0.0
        pause = settings.close_interval_s
        while not app.should_stop:
            await asyncio.sleep(pause)
            if not recovered():
                continue
            if (generation := app.consumer_generation_id) != sought:
                sought = generation
                await seek_again()
            pause = settings.close_interval_s
            if (now_assigned := set(app.assignor.assigned_actives())) != assigned:
                assigned = now_assigned
                closer.reset()  # panes of partitions just taken may hold windows this worker passed already
            try:
                sent = await closer.close_due()
                if sent:
                    log.info("alert messages sent", extra={"messages": len(sent)})
                if time.monotonic() - last_relay > settings.outbox_relay_interval_s:
                    last_relay = time.monotonic()
                    await closer.publish(None, min_age_s=settings.outbox_relay_interval_s)
                    await outbox.purge_sent(runtime.pool, older_than_s=7 * 86_400)
                    await firings.purge_evaluations(runtime.pool, before=_days_ago(settings.history_keep_days))
                    await events_seen.purge(runtime.pool, older_than_s=settings.events_seen_keep_h * 3600)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("closing windows failed; trying again")
                pause = min(5.0, pause * 4)  # the windows stay in their tables: nothing is lost meanwhile

    return app, runtime


def _days_ago(days: int) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC) - timedelta(days=days)
