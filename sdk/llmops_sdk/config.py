"""How a recorder delivers: `RecorderConfig`, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BATCH_EVENTS = 1_000  # the ingest API's limit per request


@dataclass(frozen=True)
class RecorderConfig:
    """How a recorder delivers. Everything but `app_id` and the transport's own settings has a default.

    - `transport`: "http" (to the ingest API at `endpoint` with `api_key`) or "kafka" (to the broker at
      `kafka_bootstrap`, topic `kafka_topic`, as `tenant_id`).
    - `max_buffer`: events held in memory at most; beyond it `record()` drops and counts.
    - `batch_size` / `max_batch_bytes`: the most one request carries; `flush_interval_s`: the longest an
      event waits for its batch to fill.
    - `max_retries`, `backoff_base_s`, `backoff_max_s`: retries of one batch; then it counts as failed.
    - `request_timeout_s`: per request; `exit_timeout_s`: how long interpreter exit waits for delivery.
    """

    app_id: str
    endpoint: str | None = None
    api_key: str | None = None
    environment: str = "production"
    transport: str = "http"
    kafka_bootstrap: str | None = None
    kafka_topic: str = "llm.interactions.raw"
    tenant_id: str | None = None
    max_buffer: int = 10_000
    batch_size: int = 100
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_interval_s: float = 1.0
    max_retries: int = 8
    backoff_base_s: float = 0.25
    backoff_max_s: float = 30.0
    request_timeout_s: float = 10.0
    exit_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.app_id:
            raise ValueError("app_id is required")
        if self.transport not in {"http", "kafka"}:
            raise ValueError(f"transport must be 'http' or 'kafka', not {self.transport!r}")
        if self.max_buffer < 1 or not 1 <= self.batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_buffer must be >= 1 and batch_size within 1..{MAX_BATCH_EVENTS}")
        if self.flush_interval_s <= 0 or self.max_retries < 0 or self.backoff_base_s < 0:
            raise ValueError("flush_interval_s must be > 0, max_retries and backoff_base_s >= 0")

    def check_transport(self) -> None:
        """Raise ValueError if the chosen transport lacks a setting (or, for Kafka, aiokafka)."""
        if self.transport == "http":
            if not self.endpoint:
                raise ValueError("endpoint is required for the http transport (e.g. http://127.0.0.1:8080)")
            if not self.api_key:
                raise ValueError("api_key is required for the http transport")
            return
        if not self.kafka_bootstrap:
            raise ValueError("kafka_bootstrap is required for the kafka transport")
        if not self.tenant_id:
            raise ValueError("tenant_id is required for the kafka transport (no API key names it)")
        import importlib.util

        if importlib.util.find_spec("aiokafka") is None:
            raise ValueError("the kafka transport needs aiokafka: pip install 'llmops-sdk[kafka]'")
