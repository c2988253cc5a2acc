"""Configuration of the traces worker, API and CLI: `LLMOPS_TRACES_*` variables (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from llmops_shared.settings import ApiSettings, service_config
from llmops_shared.topics import INTERACTIONS_CLEAN
from llmops_shared.worker import WorkerSettings


class TracesSettings(WorkerSettings, ApiSettings):
    """One frozen settings object for the traces worker, API, CLI and retention, built once at start."""

    model_config = service_config("traces")

    port: int = 8084
    """The traces API's port."""
    group: str = "llmops-traces"
    """The worker's consumer group."""
    topic: str = INTERACTIONS_CLEAN
    """What the worker stores (redacted events only; tests use a topic of their own)."""
    batch_max_events: int = 5_000
    """Events per batch (one transaction each). A batch adds to each of its rollup rows once, and a burst
    touches the same rows batch after batch: at the benchmark's rates 4,000-event batches cut the rollup
    time per event by 3 and gave 1.6 times the events per second of 1,000-event ones. A batch waits at
    most `batch_max_wait_ms` to fill, so a slow stream still writes within that."""
    batches_in_flight: int = 2
    """Batches in progress at once: the next is polled and decoded while the one before writes."""

    retention_days: int = Field(30, ge=1)
    """How long a tenant's spans are kept unless it chose otherwise (`PUT /v1/settings`)."""
    retention_max_days: int = Field(90, ge=1)
    """The longest retention a tenant may choose. Day partitions are dropped once older than the longest
    retention in force (at most this), so a tenant with a shorter one has its spans hidden at its own
    retention and gone at most this many days (and one) after they occurred."""
    api_page_max: int = Field(1_000, ge=1)
    """The largest `limit` a list query accepts."""
    query_max_days: int = Field(31, ge=1)
    """The longest time range of `/v1/spans`, `/v1/traces`, `/v1/sessions` and user summaries."""
    search_max_hours: int = Field(72, ge=1)
    """The longest time range of a text search (`q=`): it reads the redacted text of every span in range."""
    trace_max_spans: int = Field(5_000, ge=1)
    """The most spans `GET /v1/traces/{id}` returns (a larger trace is cut, and says so)."""
    tail_poll_s: float = Field(1.0, gt=0)
    """How often `llmops traces tail` asks for new spans."""

    @model_validator(mode="after")
    def _default_within_max(self) -> TracesSettings:
        if self.retention_days > self.retention_max_days:
            raise ValueError("retention_days is longer than retention_max_days")
        return self
