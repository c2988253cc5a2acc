"""The guardrails stream worker: `python -m llmops_guardrails.worker`.

A `BatchHandler` for the suite's `StreamWorker` (poll -> decode -> one transaction -> publish -> commit
offsets, last). Per batch of `llm.interactions.raw`:

  1. decode (pure): a message that is not a valid interaction is dead-lettered (table + topic), under the
     flood guard;
  2. in the batch's transaction: the effective policy of each (tenant, app) (`PolicyStore`: cached until
     a change to `guardrail_policies` is notified, which `open_handler`'s `ConfigWatcher` hears within
     milliseconds, and for at most `policy_cache_ttl_s`); then the scan of the whole
     batch (`PolicyEngine.scan_many`, in a thread so the event loop keeps the Kafka group's heartbeats
     going) -- the events' own texts plus their other free text (`screening.field_texts`: name, session
     id, error message, tags, message names, every metadata string); a scanner crash
     raises `ScanFailed` (which names the exception type only, never content), so the worker retries the
     batch one event at a time and dead-letters the event that crashes it;
  3. still in the transaction: findings rows (`ON CONFLICT DO NOTHING`; value hashes, never values) and
     alert grouping (`alerts_service.record_occurrences`: counts only from rows actually inserted);
  4. after the commit: each event, redacted, its `user_id` pseudonymised (`LLMOPS_PSEUDONYM_KEY`) and with
     a findings summary, to `llm.interactions.clean` (key = trace_id), and each alert's new state to
     `llmops.alerts` (key = fingerprint), awaiting acknowledgements; then the offsets are committed. Each
     clean event is measured first, in step 2: one that redaction made larger than `clean_event_max_bytes`
     has its longest texts cut with a marker (`sizing`), and one that still does not fit fails the batch
     with `CleanEventTooLarge`, so the worker dead-letters that event alone; publishing never fails on a
     size after the commit.

A redelivered batch changes no row, publishes the same clean events again (consumers key on tenant and
event_id) and republishes the current state of the alerts its events were counted in (the notifier sends
each alert state once). So a crash anywhere loses nothing and counts nothing twice. An event id is its
tenant's own: events of two tenants with the same id are two events, each scanned, stored and counted once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Histogram

from llmops_guardrails import screening
from llmops_guardrails.alerts_service import record_occurrences
from llmops_guardrails.engine import InteractionScan, PolicyEngine
from llmops_guardrails.policies_service import PolicyStore
from llmops_guardrails.policy import Policy, default_policy
from llmops_guardrails.settings import GuardrailsSettings
from llmops_guardrails.store import findings as findings_store
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.contract import Interaction
from llmops_shared.heap import freeze_long_lived
from llmops_shared.kafka import send_keyed
from llmops_shared.worker import InteractionHandler, Message, Resources

log = logging.getLogger(__name__)

FINDINGS = Counter("llmops_guardrails_findings_total", "Findings stored, by detector", ["detector"])
ALERT_MESSAGES = Counter("llmops_guardrails_alert_messages_total", "Alert messages published, by status", ["status"])
TRUNCATED = Counter("llmops_guardrails_clean_events_truncated_total",
                    "Clean events whose longest texts were cut to fit Kafka's message limit")
SCAN_SECONDS = Histogram("llmops_guardrails_scan_seconds", "Time to scan one batch",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class ScanFailed(RuntimeError):
    """The scanner raised on a batch. Carries the exception's type only: its message may quote content."""


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class ScannedEvent:
    event: Interaction
    scan: InteractionScan
    fields: screening.FieldsScan | None  # the other free text
    policy_version: str


class GuardrailsWorker(InteractionHandler[Outgoing]):
    """The guardrails service's handler: scan and store in `write`, send clean events and alerts in `publish`."""

    def __init__(self, settings: GuardrailsSettings, *, engine: PolicyEngine, policies: PolicyStore | None = None
                 ) -> None:
        self.settings = settings
        self.name = settings.group
        self.topics: tuple[str, ...] = (settings.raw_topic,)
        self.engine = engine
        self.policies = policies or PolicyStore(settings.policy_cache_ttl_s)

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[Outgoing]:
        # An event sent twice is scanned once; an event id is its tenant's own (another tenant's event with
        # the same id is another event).
        events = list({(event.tenant_id, event.event_id): event for _, event in items}.values())
        effective = await self.policies.effective(conn, {(e.tenant_id, e.app_id) for e in events})
        chosen = [effective[(e.tenant_id, e.app_id)] for e in events]
        started = time.perf_counter()
        scanned = await asyncio.to_thread(self.scan, events, [c.policy for c in chosen], [c.version for c in chosen])
        SCAN_SECONDS.observe(time.perf_counter() - started)

        out = [Outgoing(self.settings.clean_topic, s.event.trace_id.encode(), self.clean(s)) for s in scanned]

        rows = [row for s in scanned for row in screening.finding_rows(s.event, s.scan, s.policy_version)]
        await findings_store.insert_findings(conn, rows=rows)
        occurrences = [o for s in scanned for o in screening.occurrences(s.event, s.scan)]
        alerts = await record_occurrences(conn, occurrences, window_s=self.settings.alert_group_window_s)
        out += [Outgoing(self.settings.alerts_topic, a.fingerprint.encode(), a.to_json()) for a in alerts]
        # one increment per label value, not per row: a labelled counter's look-up costs ~2 µs, and a name-dense event
        # has ~17 findings
        for detector, count in collections.Counter(row[8] for row in rows).items():
            FINDINGS.labels(detector).inc(count)
        for status, count in collections.Counter(a.status for a in alerts).items():
            ALERT_MESSAGES.labels(status).inc(count)
        return out

    def clean(self, scanned: ScannedEvent) -> bytes:
        """The clean event, within `clean_event_max_bytes` (its longest texts cut, with a marker, if need be).
        Raises `CleanEventTooLarge` when cutting cannot make it fit: the batch fails, the worker isolates the
        event by bisection and dead-letters it alone (before anything of it is stored)."""
        value, cut = screening.clean_event(scanned.event, scanned.scan, scanned.policy_version, scanned.fields,
                                           max_bytes=self.settings.clean_event_max_bytes,
                                           pseudonym_key=self.settings.pseudonym_secret())
        if cut is not None:
            TRUNCATED.inc()
            log.warning("clean event too large for Kafka; its longest texts were cut", extra={
                "event_id": str(scanned.event.event_id), "tenant_id": scanned.event.tenant_id,
                "texts": cut.texts, "chars_removed": cut.chars_removed, "bytes_before": cut.bytes_before,
                "bytes_after": cut.bytes_after})
        return value

    def scan(self, events: Sequence[Interaction], policies: Sequence[Policy], versions: Sequence[str]
             ) -> list[ScannedEvent]:
        """The batch's scans (blocking; run in a thread). The events' other free text goes through in the
        same batch, as one probe interaction per event."""
        try:
            texts = [screening.field_texts(e, p.fields) for e, p in zip(events, policies, strict=True)]
            probes = [screening.fields_probe(e, t) for e, t in zip(events, texts, strict=True)]
            extra = [(i, p) for i, p in enumerate(probes) if p is not None]
            scans = self.engine.scan_many([*events, *(p for _, p in extra)],
                                          [*policies, *(policies[i] for i, _ in extra)])
        except Exception as exc:
            raise ScanFailed(f"the scanner raised {type(exc).__name__}") from None
        fields: list[screening.FieldsScan | None] = [None] * len(events)
        for (i, _), probe_scan in zip(extra, scans[len(events):], strict=True):
            fields[i] = screening.FieldsScan(texts[i], probe_scan)
        own = scans[:len(events)]
        return [ScannedEvent(e, s, f, v) for e, s, f, v in zip(events, own, fields, versions, strict=True)]

    async def publish(self, results: list[Outgoing], resources: Resources) -> None:
        if not results:
            return
        # as record batches per partition (`send_keyed`: the partitions and order `producer.send` gives, less work per
        # message); every message has a key
        by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
        for o in results:
            by_topic.setdefault(o.topic, []).append((o.key, o.value))
        futures = []
        for topic, messages in by_topic.items():
            futures += await send_keyed(resources.producer, topic, messages)
        await asyncio.gather(*futures)


@asynccontextmanager
async def open_handler(settings: GuardrailsSettings, *, engine: PolicyEngine) -> AsyncIterator[GuardrailsWorker]:
    """The handler with what it holds open: a `ConfigWatcher`, so a stored policy change is in force for
    the next batch (the worker's factory for `run_worker`; tests use it too)."""
    watcher = ConfigWatcher(settings.database_url)
    await watcher.start()
    try:
        yield GuardrailsWorker(settings, engine=engine,
                               policies=PolicyStore(settings.policy_cache_ttl_s, watcher=watcher))
    finally:
        await watcher.close()


GC_THRESHOLD = (400_000, 20, 20)
"""The process's garbage collector thresholds (Python's default: 700, 10, 10). A scan allocates hundreds of
short-lived objects per event (recognizer results, tagger features, findings); with the default a young
collection ran every two or three events and a full one, which walks the scan cache and every object made since
start-up, every few hundred: 5-10% of the CPU of distinct name-dense events (bench/RESULTS.md, `guard9`). The
scan makes few reference cycles. The young threshold is above what a full batch keeps alive while it is handled
(~100,000-120,000 tracked objects for 500 name-dense events: decoded events, scans, rows, clean events; they die by
reference counting once the batch is done): at 50,000 every batch started one or two young collections that walked
all of it to free nothing, ~25 ms each, ~56 µs an event in both threads (`guard22`). Young collections now come
from what outlives batches (the scan cache), none in a burst of 6,000 events; the price is that cyclic garbage, if
any, waits for up to 400,000 net allocations."""


async def main() -> int:
    from llmops_guardrails.logs import configure_service_logging
    from llmops_shared.worker import run_worker

    settings = GuardrailsSettings()
    configure_service_logging("guardrails-worker", settings.log_level)
    engine = PolicyEngine(settings)
    await asyncio.to_thread(engine.warm_up, default_policy())  # the model loads before the first batch
    freeze_long_lived(GC_THRESHOLD)  # the model, the name and place lists: never walked by a full collection again
    return await run_worker(settings, lambda _resources: open_handler(settings, engine=engine))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
