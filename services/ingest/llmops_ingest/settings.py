"""Configuration of the ingest API: `LLMOPS_INGEST_*` variables (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field

from llmops_shared.settings import ApiSettings, service_config
from llmops_shared.topics import INTERACTIONS_RAW


class IngestSettings(ApiSettings):
    """The ingest API's settings."""

    model_config = service_config("ingest")

    port: int = 8080
    """The ingest API's port."""
    max_events_per_request: int = 1_000
    """The most events one request may carry."""
    max_body_bytes: int = 5 * 1024 * 1024
    """The largest request body (a batch of up to 1,000 events)."""
    requests_per_s: int | None = None
    """Unset: ingest limits events per key instead (`rate_limit_per_s`, `rate_limit_burst`)."""
    rate_limit_per_s: int = 2_000
    """Per-key token bucket, in events per second on average (a key's own `rate_limit_per_s`, see
    `llmops keys create`, overrides it)."""
    rate_limit_burst: int = 10_000
    """Events a key may send at once."""
    kafka_timeout_s: float = 5.0
    """How long a request waits for Kafka to confirm its events before answering 503."""
    max_age_days: float = Field(30.0, gt=0)
    """Events whose `occurred_at` is more than this many days before the server's time are refused (422 or
    207 naming `occurred_at`): a bound on how far back data lands, and on the partitions it needs."""
    max_ahead_s: float = Field(86_400.0, ge=0)
    """Events whose `occurred_at` is more than this many seconds after the server's time are refused: a
    producer's clock may run ahead a little, not by months."""
    topic: str = INTERACTIONS_RAW
    """Where accepted events go; only benchmarks and tests change it."""
