"""Kafka topic names: one place, imported by every producer and consumer."""

from __future__ import annotations

from dataclasses import dataclass

INTERACTIONS_RAW = "llm.interactions.raw"
INTERACTIONS_CLEAN = "llm.interactions.clean"
ALERTS = "llmops.alerts"
EVALUATION_SCORES = "evaluations.scores"
DEAD_LETTERS = "llm.dead-letters"
BILLING_USAGE = "billing.usage"
MONITOR_OBSERVATIONS = "llmops.monitors.observations"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None  # None: the broker's default

    @property
    def config(self) -> dict[str, str]:
        return {} if self.retention_ms is None else {"retention.ms": str(self.retention_ms)}


_HOUR = 3_600_000

# Raw text lives only in Kafka, and only briefly: 72 hours on the raw topic, enough to ride out a
# weekend outage of a consumer. Partitions are the unit of parallelism for every stream worker.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(INTERACTIONS_RAW, partitions=6, retention_ms=72 * _HOUR),
    TopicSpec(INTERACTIONS_CLEAN, partitions=6, retention_ms=7 * 24 * _HOUR),
    TopicSpec(ALERTS, partitions=3, retention_ms=7 * 24 * _HOUR),
    TopicSpec(EVALUATION_SCORES, partitions=3, retention_ms=7 * 24 * _HOUR),
    # One message per usage-ledger row billing inserted (priced: cost is known without pricing twice).
    TopicSpec(BILLING_USAGE, partitions=6, retention_ms=7 * 24 * _HOUR),
    # The monitors worker's repartition topic (keyed by tenant and app; its tables' changelogs match it).
    TopicSpec(MONITOR_OBSERVATIONS, partitions=6, retention_ms=24 * _HOUR),
    TopicSpec(DEAD_LETTERS, partitions=3, retention_ms=72 * _HOUR),  # raw payloads: no longer than the raw topic
)
