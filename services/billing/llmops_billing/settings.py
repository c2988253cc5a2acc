"""Configuration of the billing worker and API: `LLMOPS_*` environment variables (see docs/billing.md)."""

from __future__ import annotations

from pathlib import Path

from llmops_shared.settings import api_port
from llmops_shared.topics import GUARDRAILS_ALERTS, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings


class BillingSettings(WorkerSettings):
    """One frozen settings object for both billing processes (worker and API), built once at start."""

    # The API
    host: str = "127.0.0.1"
    port: int = api_port(8083, "billing")  # LLMOPS_BILLING_PORT
    key_cache_ttl_s: int = 30
    api_page_max: int = 1_000  # the largest `limit` a usage or price query accepts
    csv_max_rows: int = 1_000_000  # the most rows one CSV export streams

    # The worker: batches of up to 2,000 events (one transaction each; rollup rows are shared by many
    # events of a batch, so larger batches write fewer of them per event).
    batch_max_events: int = 2_000
    # The cyclic garbage collector's thresholds in the worker (Python's default is 700, 10, 10). A batch
    # allocates hundreds of thousands of short-lived objects; rarer full collections save ~30% of CPU.
    gc_thresholds: tuple[int, int, int] = (10_000, 20, 50)

    # What it consumes (tests and benchmarks use a topic and group of their own) and where
    # its alerts go (the notifier reads the shared alerts topic).
    billing_topic: str = INTERACTIONS_RAW
    billing_group: str = "llmops-billing"
    billing_alerts_topic: str = GUARDRAILS_ALERTS

    # Prices: the built-in list (a LiteLLM snapshot in the package), plus rows in `model_prices` and
    # `tenant_price_discounts`, reloaded every `price_refresh_s` seconds. `price_file` adds a vetted
    # LiteLLM-format file on top of the built-in list at start (in force from `price_file_effective_from`);
    # `llmops billing prices import` is the way to put such a file into the database for good.
    builtin_prices: bool = True
    price_refresh_s: float = 30.0
    price_file: Path | None = None
    price_file_effective_from: str = "1970-01-01T00:00:00Z"

    # Budgets: periods that ended longer ago than this are not alerted on (a backfill of old events
    # does not page anyone); spend of such periods is still visible in the API.
    budget_alert_max_age_h: float = 48.0
    # How often the worker re-sends alerts left in the outbox (for example after a crash between the
    # database commit and the Kafka send), and how old such an alert must be before it is re-sent.
    outbox_relay_interval_s: float = 5.0
    outbox_relay_min_age_s: float = 10.0
