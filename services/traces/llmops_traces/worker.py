"""The traces stream worker: `llm.interactions.clean` -> `trace_spans` and the request-metrics rollups.

    python -m llmops_traces.worker          (or `llmops run traces-worker`)

A `BatchHandler` for the suite's `StreamWorker` (poll -> decode -> write in one transaction -> commit
offsets), so dead letters, poison isolation, the flood guard and the checkpoint order are the shared
worker's. Decoding a message gives its span row with text (`decoding.decode_span`: the contract's rules,
checked fast), outside the transaction, so that with two batches in flight (`batches_in_flight`) the next
batch is decoded while this one writes.
Per batch, in ONE transaction:

1. read the batch's tenants' settings and drop the text of the rows of metadata-only tenants;
2. make sure the day partitions of the rows exist (near the worker's clock: `store.partitions`);
3. insert the rows idempotently (`store.spans.insert`: keyed by (tenant_id, event_id); erased traces and
   users are not stored again) and add only the rows inserted now to the minute and hour rollups (by app,
   and per tenant without app and prompt) and to the per-trace summaries (`trace_summaries`); the days it
   adds hourly rows to are no longer marked compacted (`compaction`: a late event is read from the hourly
   rollup until its day is compacted again).

Nothing goes downstream; the offsets are committed after the transaction. A redelivered batch inserts
nothing and adds nothing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from llmops_shared.clock import Clock, utc_now
from llmops_shared.heap import freeze_long_lived
from llmops_shared.worker import BatchHandler, EventRef, Message, just
from llmops_traces.compaction import written_days
from llmops_traces.decoding import decode_span
from llmops_traces.settings import TracesSettings
from llmops_traces.spans import SpanRow, coarser, inserted_rows, rollups, summaries, without_text
from llmops_traces.store import app_days as app_days_store
from llmops_traces.store import partitions, spans, tenant_settings
from llmops_traces.store import rollups as rollup_store
from llmops_traces.store import summaries as summary_store

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


class SpanWriter(BatchHandler[SpanRow, None]):
    """Stores clean interactions as spans; see the module docstring. `clock` is what "now" is (the window
    of days that get a partition of their own)."""

    def __init__(self, settings: TracesSettings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.name = settings.group
        self.topics: Sequence[str] = (settings.topic,)
        self.clock = clock

    def decode(self, message: Message) -> SpanRow:
        return decode_span(message.value)

    def identify(self, item: SpanRow) -> EventRef:
        return EventRef(item.event_id, item.tenant_id)

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, SpanRow]]) -> list[None]:
        decoded = list({(r.tenant_id, r.event_id): r for _, r in items}.values())  # a batch may hold one twice
        if not decoded:
            return []
        chosen = await tenant_settings.get_many(conn, tenant_ids={r.tenant_id for r in decoded})
        metadata_only = {t for t, c in chosen.items() if c.metadata_only}
        rows = [without_text(r) if r.tenant_id in metadata_only else r for r in decoded]
        now = self.clock()
        await partitions.ensure_day_partitions(conn, "trace_spans", [r.occurred_at for r in rows], now=now)
        stored = inserted_rows(rows, await spans.insert(conn, rows=rows))
        await self._roll_up(conn, stored, now=now)
        await self._summarise(conn, stored, now=now)
        return []

    async def _summarise(self, conn: asyncpg.Connection, rows: list[SpanRow], *, now: datetime) -> None:
        pieces = summaries(rows)
        if not pieces:
            return
        await partitions.ensure_day_partitions(conn, "trace_summaries", [p.day for p in pieces], now=now)
        await summary_store.add(conn, pieces=pieces)

    async def _roll_up(self, conn: asyncpg.Connection, rows: list[SpanRow], *, now: datetime) -> None:
        if not rows:
            return
        minute = rollups(rows, MINUTE)
        await partitions.ensure_day_partitions(conn, "trace_metrics_minute", [r.key[1] for r in minute], now=now)
        await rollup_store.add(conn, unit="minute", rollups=minute)
        hourly = coarser(minute, HOUR)
        await rollup_store.add(conn, unit="hour", rollups=hourly)
        await rollup_store.add_tenant_hourly(conn, rollups=hourly)
        await app_days_store.days_written(conn, written_days([r.key for r in hourly]))  # compacted no more


async def run(settings: TracesSettings) -> int:
    from llmops_shared.worker import run_worker

    return await run_worker(settings, lambda _resources: just(SpanWriter(settings)))


GC_THRESHOLD = (50_000, 20, 20)
"""The process's garbage collector thresholds. A batch allocates tens of objects per event (rows, rollups,
records) and keeps them until it commits; with the default (700) a young collection ran every few dozen
events and the older ones, which scan the batches in hand, every few hundred: 95 us of CPU per event
against 70 with these thresholds and the start-up objects frozen (a variant of bench/traces_profile.py,
20,000 events, twice each, load average 1.7). The writer makes few reference cycles."""


def main() -> None:
    from llmops_shared.logging import configure_logging

    settings = TracesSettings()
    configure_logging("traces-worker", settings.log_level)
    freeze_long_lived(GC_THRESHOLD)  # the modules and settings loaded so far live as long as the process
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
