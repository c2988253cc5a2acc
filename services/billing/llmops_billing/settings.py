"""Configuration of the billing worker and API: `LLMOPS_BILLING_*` variables (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from llmops_shared.settings import ApiSettings, service_config
from llmops_shared.topics import ALERTS, BILLING_USAGE, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings


class BillingSettings(WorkerSettings, ApiSettings):
    """One frozen settings object for both billing processes (worker and API), built once at start."""

    model_config = service_config("billing")

    port: int = 8083
    """The billing API's port."""
    api_page_max: int = 1_000
    """The largest `limit` a usage or price query accepts."""
    csv_max_rows: int = 1_000_000
    """The most rows one CSV export streams."""

    group: str = "llmops-billing"
    """The worker's consumer group."""
    batch_max_events: int = 2_000
    """Events per batch (one transaction each; rollup rows are shared by many events of a batch, so larger
    batches write fewer of them per event)."""
    batches_in_flight: int = 2
    """Batches in progress at once: the next is polled, decoded and priced while the one before is in its
    transaction, and starts its own while that one publishes and commits its offsets."""
    gc_thresholds: tuple[int, int, int] = (400_000, 20, 20)
    """The worker's cyclic garbage collector thresholds (Python's default is 700, 10, 10; the billing API process
    uses them too). The young threshold is above what the batches in flight keep alive (~30,000 tracked objects for
    two batches of 2,000 events, freed by reference counting once their batch is done: billing makes no reference
    cycle), so young collections come only from what outlives batches; a lower one walks the batches in flight to
    free nothing (at 10,000: ~4% of the worker's CPU, bench/RESULTS.md)."""
    topic: str = INTERACTIONS_RAW
    """What the worker prices (tests and benchmarks use a topic of their own)."""
    alerts_topic: str = ALERTS
    """Where budget and unpriced-model alerts go (the notifier reads the shared alerts topic)."""
    usage_topic: str = BILLING_USAGE
    """Where each inserted ledger row is published, priced, through `billing_usage_outbox` (the monitors service
    reads it for costs)."""

    builtin_prices: bool = True
    """Price with the built-in list (a LiteLLM snapshot in the package) under the rows in `model_prices`."""
    price_refresh_s: float = 30.0
    """Prices and discounts are reloaded at least this often (and at once when they change)."""
    price_file: Path | None = None
    """A vetted LiteLLM-format file added on top of the built-in list at start (`llmops billing prices
    import` puts such a file into the database for good)."""
    price_file_effective_from: str = "1970-01-01T00:00:00Z"
    """From when `price_file`'s prices are in force."""

    budget_alert_max_age_h: float = 48.0
    """Budget periods that ended longer ago than this are not alerted on (a backfill of old events pages
    nobody); their spend is still visible in the API."""
    outbox_relay_interval_s: float = 5.0
    """How often the worker sends alerts and usage messages left in their outboxes (after a crash between
    commit and send; usage messages also at start-up)."""
    outbox_relay_min_age_s: float = 10.0
    """How old an alert or usage message left in its outbox must be before the relay sends it (a live worker
    sends its own well before)."""
    rollup_follow_interval_s: float = Field(1.0, gt=0)
    """How often the worker's follower adds committed batches to `usage_daily_users` and `usage_trace_costs`
    (the batch transaction leaves them a pending row; it also runs at once after ten batches, or after a
    batch that ends a backlog): at most how far those two rollups lag the ledger, plus one apply."""
    outbox_keep_sent_h: float = Field(168.0, gt=0)
    """Sent alerts stay in the outbox this long (for audits), then the relay deletes them; pending ones are
    never deleted."""
