"""The billing stream worker: `llm.interactions.raw` -> usage ledger, rollups, budget and price alerts.

    python -m llmops_billing.worker          (or `llmops run billing-worker`)

It is a `BatchHandler` for the suite's `StreamWorker` (poll -> decode -> prepare -> write in one
transaction -> publish -> commit offsets), so dead letters, poison isolation, the flood guard and the
checkpoint order are the shared worker's. Two batches are in flight (`batches_in_flight`, the shared
worker's pipeline): while one is in its transaction, waiting on Postgres, the next is polled, decoded,
priced and staged (`PRICE_CHUNK` events at a time, yielding to the loop in between, so the transaction's
next step is not kept waiting); it starts its transaction once the one before has committed, while that
one publishes and commits its offsets.

`prepare` (outside any transaction) prices each event with the catalogue (built-in list + database
rows, reloaded before the batch when a price table changed: the process's `ConfigWatcher`; every
`price_refresh_s` in any case) into its ledger row. An event whose pricing raises is left as it is and
priced again in `write`, where the shared worker isolates and dead-letters what fails.

Per batch, in ONE transaction:

1. write the ledger rows idempotently (`store.ledger.write_batch`: rows keyed by tenant and event id,
   rollups only from rows actually inserted; `usage_daily_users` and `usage_trace_costs` get one pending
   row instead, which the process's `rollup_follower.RollupFollower` adds to them about a second later,
   exactly once, nudged by `publish` after each commit, at once after the batch that ends a backlog:
   one shorter than `batch_max_events`, or one whose poll reached the end of its partitions,
   `Resources.caught_up`, as the last of a burst of full batches does);
2. raise one alert per newly unpriced model (`unpriced_models.alerted_at` is set in this transaction);
3. evaluate the budgets the inserted rows' spend touches (`budgets.evaluate_touched`): each threshold
   crossing is recorded once per budget and period;
4. put those alerts in `billing_alert_outbox`; each inserted ledger row's `billing.usage` message (tenant,
   app, event id, model, environment, prompt, tokens, cost: `llmops_shared.usage_events`) went into one
   `billing_usage_outbox_batches` row in step 1's statement (`write_batch(..., usage_outbox=True)`), so the
   monitors service knows costs without pricing twice.

After the commit, `publish` takes the batch's usage-outbox row (deleting it in a transaction held until
Kafka has the messages: `usage_messages.publish_usage`) and sends the batch's messages; a redelivered batch
inserted nothing and sends nothing. It then claims the new alerts in the alert outbox (row locks, skipping
rows a relay holds), sends them to the alerts topic and marks them published; the offsets are committed
after that. A crash between the commit and the sends leaves the messages in their outboxes: every worker
process runs two relays, `usage_messages.UsageRelay` (at start-up, then every `outbox_relay_interval_s`)
and `alerts.OutboxRelay` (which also purges sent alerts after `outbox_keep_sent_h`), which take and send
them. Rows one process holds are skipped by the others, so a message is sent twice only when a process
dies after the send and before its commit (or a send is retried after Kafka took part of it); it keeps its id
(`event_id`, `alert_id`) for the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import asyncpg

from llmops_billing.alerts import Alert, OutboxRelay, send_alerts, unpriced_model_alert
from llmops_billing.billable import Billable, decode_billable
from llmops_billing.budgets import evaluate_touched
from llmops_billing.catalogue import CatalogueCache, catalogue_cache
from llmops_billing.ledger import LedgerRow, ledger_row
from llmops_billing.prices import PriceCatalogue
from llmops_billing.rollup_follower import RollupFollower
from llmops_billing.settings import BillingSettings
from llmops_billing.store import outbox, unpriced
from llmops_billing.store.ledger import Staged, stage, write_batch
from llmops_billing.store.unpriced import UnpricedModel
from llmops_billing.usage_messages import UsageBatch, UsageRelay, publish_usage
from llmops_shared.clock import Clock, utc_now
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.contract import Interaction
from llmops_shared.heap import freeze_long_lived
from llmops_shared.worker import (
    BatchHandler,
    DeadLetter,
    EventRef,
    Message,
    Resources,
    is_transient,
)

log = logging.getLogger("llmops_billing.worker")


PRICE_CHUNK = 200
"""Events priced between two yields to the event loop in `prepare` (~5 ms of pricing): a 2,000-event batch
priced in one go held the loop ~50 ms, and the batch before, in its transaction, waited that long for its
turn whenever Postgres answered meanwhile."""


FINAL_FOLLOW_S = 10.0
"""On a clean stop, how long the worker spends adding its last batches' pending rollup rows."""


@dataclass(frozen=True, slots=True)
class Priced:
    """An event priced ahead of its transaction (`prepare`): its ledger row, None when it is not billable."""

    event: Billable | Interaction
    row: LedgerRow | None
    staged: Staged | None = None
    """The row's staging record and usage message (`store.ledger.stage`), built here so that the
    transaction waits on Postgres only."""


Item: TypeAlias = Billable | Interaction | Priced
"""What the handler takes: an event as decoded (or a full `Interaction`), or one `prepare` priced."""


class UsageLedgerHandler(BatchHandler[Item, Alert | UsageBatch]):
    """Prices interaction events into the usage ledger; see the module docstring.

    `watcher` (one per process) makes price changes count from the next batch polled; `clock` is what
    "now" is (`priced_at`, which budget periods are still alerted on, the ledger's partition window).
    """

    def __init__(self, settings: BillingSettings, *, catalogues: CatalogueCache | None = None,
                 watcher: ConfigWatcher | None = None, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.name = settings.group
        self.topics: Sequence[str] = (settings.topic,)
        self.catalogues = catalogues or catalogue_cache(settings, watcher=watcher)
        self.clock = clock
        self.follower: RollupFollower | None = None  # told of each batch committed (`run` sets it)

    def decode(self, message: Message) -> Item:
        """The fields billing reads, validated by the contract's rules (`billable`: a fast path for them)."""
        return decode_billable(message.value)

    def identify(self, item: Item) -> EventRef:
        event = item.event if isinstance(item, Priced) else item
        return EventRef(str(event.event_id), event.tenant_id)

    async def prepare(self, items: list[tuple[Message, Item]], resources: Resources
                      ) -> tuple[list[tuple[Message, Item]], list[DeadLetter]]:
        """Price the batch outside its transaction (while the batch before waits on Postgres)."""
        catalogue = await resources.retrying(lambda: self.catalogues.get(resources.pool), what="the price catalogue")
        now, key = self.clock(), self.settings.pseudonym_secret()
        priced: list[tuple[Message, Item]] = []
        for start in range(0, len(items), PRICE_CHUNK):
            if start:  # let the batch before, waiting on Postgres, go on as soon as its answer is in
                await asyncio.sleep(0)
            priced += [(message, _priced(event, catalogue, now, key)) for message, event
                       in items[start:start + PRICE_CHUNK] if resources.owned(message)]
        return priced, []

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Item]]
                    ) -> list[Alert | UsageBatch]:
        now, key = self.clock(), self.settings.pseudonym_secret()
        rows: list[LedgerRow | Staged] = []
        catalogue: PriceCatalogue | None = None
        for _, item in items:
            if isinstance(item, Priced):
                if item.staged is not None:
                    rows.append(item.staged)
                    continue
                row = item.row
            else:
                catalogue = catalogue or await self.catalogues.get(conn)
                row = ledger_row(item, catalogue, priced_at=now, pseudonym_key=key)
            if row is not None:
                rows.append(row)
        result = await write_batch(conn, rows=rows, now=now, usage_outbox=True, pending_rollups=True)
        alerts = await _unpriced_alerts(conn, result.unalerted_unpriced)
        alerts += await evaluate_touched(conn, _touched(result.inserted), now=now,
                                         max_age=timedelta(hours=self.settings.budget_alert_max_age_h))
        await outbox.add(conn, alerts=alerts)
        usage = [] if result.usage_batch is None else [UsageBatch(result.usage_batch, result.usage)]
        return [*alerts, *usage]

    async def publish(self, results: list[Alert | UsageBatch], resources: Resources) -> None:
        """Send the inserted rows' usage messages, then the alerts (below)."""
        for batch in results:
            if isinstance(batch, UsageBatch):
                if self.follower is not None:  # its pending rollup row is committed
                    self.follower.committed(last_in_backlog=resources.caught_up
                                            or len(batch.messages) < self.settings.batch_max_events)
                await publish_usage(resources, self.settings.usage_topic, batch)
        await self.publish_alerts([r for r in results if isinstance(r, Alert)], resources)

    async def publish_alerts(self, results: list[Alert], resources: Resources) -> None:
        """Claim the batch's new alerts (a relay may hold some: it sends those), send and mark them
        published, in one transaction. If Postgres fails meanwhile the alerts stay pending in the outbox,
        and a relay sends them (again, with the same alert_id, should Kafka have them already)."""
        if not results:
            return
        try:
            async with resources.pool.acquire() as conn, conn.transaction():
                claimed = await outbox.claim(conn, alert_ids=[a.alert_id for a in results])
                mine = [a for a in results if a.alert_id in claimed]
                if mine:
                    await send_alerts(resources.producer, self.settings.alerts_topic, mine)
                    await outbox.mark_published(conn, alerts=mine)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("could not send or mark alerts; the outbox relay sends them",
                        extra={"error_type": type(exc).__name__, "alerts": len(results)})
            return
        for alert in mine:
            log.info("alert sent", extra={"rule": alert.rule, "tenant_id": alert.tenant_id,
                                          "alert_id": alert.alert_id, "fingerprint": alert.fingerprint})


def _priced(event: Item, catalogue: PriceCatalogue, now: datetime, key: bytes) -> Item:
    if isinstance(event, Priced):
        return event
    try:
        row = ledger_row(event, catalogue, priced_at=now, pseudonym_key=key)
        return Priced(event, row, None if row is None else stage(row, usage_outbox=True))
    except Exception:  # priced again in `write`, where a failing event is isolated and dead-lettered
        return event


def _touched(rows: Sequence[LedgerRow]) -> set[tuple[str, str, datetime]]:
    """(tenant, app, UTC day) of the priced rows: what budget evaluation needs to look at. The days as dates
    first, the few distinct ones made midnights after: a `replace` and an aware datetime's hash per row cost
    ~2.4 us an event (in the batch's transaction), the `date` ~0.2."""
    days = {(r.tenant_id, r.app_id, r.occurred_at.astimezone(UTC).date()) for r in rows if not r.unpriced}
    return {(tenant, app, datetime(day.year, day.month, day.day, tzinfo=UTC)) for tenant, app, day in days}


async def _unpriced_alerts(conn: asyncpg.Connection, models: Sequence[UnpricedModel]) -> list[Alert]:
    """Mark the newly unpriced models alerted (in this transaction) and build their alerts."""
    if not models:
        return []
    return [
        unpriced_model_alert(tenant_id=r["tenant_id"], provider=r["provider"], model=r["model"],
                             model_key=r["model_key"], reason=r["reason"], event_count=r["event_count"],
                             first_seen_at=r["first_seen_at"], alerted_at=r["alerted_at"])
        for r in await unpriced.mark_alerted(conn, models=models)
    ]


async def run(settings: BillingSettings) -> int:
    from llmops_shared.worker import run_worker

    @asynccontextmanager
    async def ledger(resources: Resources) -> AsyncIterator[UsageLedgerHandler]:
        watcher = ConfigWatcher(settings.database_url)  # price changes count from the next batch
        await watcher.start()
        handler = UsageLedgerHandler(settings, watcher=watcher)
        async with resources.pool.acquire() as conn:
            await handler.catalogues.reload(conn)
        freeze_long_lived(settings.gc_thresholds)  # modules, schemas, the price list: as long as the process
        relay = OutboxRelay(resources.pool, resources.producer, topic=settings.alerts_topic,
                            interval_s=settings.outbox_relay_interval_s, min_age_s=settings.outbox_relay_min_age_s,
                            keep_sent_s=settings.outbox_keep_sent_h * 3600)
        usage_relay = UsageRelay(resources.pool, resources.producer, topic=settings.usage_topic,
                                 interval_s=settings.outbox_relay_interval_s, min_age_s=settings.outbox_relay_min_age_s)
        follower = RollupFollower(resources.pool, interval_s=settings.rollup_follow_interval_s)
        handler.follower = follower
        tasks = [asyncio.create_task(relay.run(), name="billing-outbox-relay"),
                 asyncio.create_task(usage_relay.run(), name="billing-usage-relay"),
                 asyncio.create_task(follower.run(), name="billing-rollup-follower")]
        try:
            yield handler
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:  # what this process's last batches left pending (else the next process's follower adds it)
                await asyncio.wait_for(follower.run_once(), FINAL_FOLLOW_S)
            except Exception as exc:
                log.warning("pending rollups left to the next follower",
                            extra={"error_type": type(exc).__name__})
            await watcher.close()

    return await run_worker(settings, ledger)


def main() -> None:
    from llmops_shared.logging import configure_logging

    settings = BillingSettings()
    configure_logging("billing-worker", settings.log_level)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
