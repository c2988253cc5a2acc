from __future__ import annotations

from llmops_shared.settings import CommonSettings, api_port
from llmops_shared.topics import INTERACTIONS_RAW


class IngestSettings(CommonSettings):
    """`LLMOPS_*` environment variables of the ingest API."""

    host: str = "127.0.0.1"
    port: int = api_port(8080, "ingest")
    max_events_per_request: int = 1_000
    max_body_bytes: int = 5 * 1024 * 1024
    # Per-key token bucket, in events: a key may send `rate_limit_per_s` events per second on average and
    # `rate_limit_burst` at once. A key's own `rate_limit_per_s` (see `llmops keys create`) overrides it.
    rate_limit_per_s: int = 2_000
    rate_limit_burst: int = 10_000
    # How long a request waits for Kafka to confirm its events before answering 503.
    kafka_timeout_s: float = 5.0
    key_cache_ttl_s: int = 30
    # Where accepted events go; only benchmarks and tests change it.
    topic: str = INTERACTIONS_RAW
