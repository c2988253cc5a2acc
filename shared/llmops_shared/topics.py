"""Kafka topic names: one place, imported by every producer and consumer.

`LLMOPS_TOPIC_PREFIX` (read once, at import) is put before every name, so two suites can share one
cluster without reading each other's traffic: the test session uses a prefix of its own, so a stack
running beside the tests (`llmops up`) never sees their events, nor they its events.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

PREFIX = os.environ.get("LLMOPS_TOPIC_PREFIX", "")
if not re.fullmatch(r"[A-Za-z0-9._-]{0,100}", PREFIX):
    raise ValueError(f"LLMOPS_TOPIC_PREFIX={PREFIX!r}: letters, digits, '.', '_' and '-' only, at most 100")

INTERACTIONS_RAW = f"{PREFIX}llm.interactions.raw"
INTERACTIONS_CLEAN = f"{PREFIX}llm.interactions.clean"
ALERTS = f"{PREFIX}llmops.alerts"
EVALUATION_SCORES = f"{PREFIX}evaluations.scores"
DEAD_LETTERS = f"{PREFIX}llm.dead-letters"
BILLING_USAGE = f"{PREFIX}billing.usage"
MONITOR_OBSERVATIONS = f"{PREFIX}llmops.monitors.observations"


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
