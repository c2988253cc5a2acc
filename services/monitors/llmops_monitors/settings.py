"""Configuration of the monitors worker and API: `LLMOPS_MONITORS_*` variables (docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmops_shared.settings import ApiSettings, service_config
from llmops_shared.topics import ALERTS, BILLING_USAGE, EVALUATION_SCORES, INTERACTIONS_CLEAN, MONITOR_OBSERVATIONS


class MonitorsSettings(ApiSettings):
    """One frozen settings object for both monitors processes (the faust worker and the API). The worker is
    a faust app, not the suite's `StreamWorker`: it has its own batch and commit settings."""

    model_config = service_config("monitors")

    port: int = 8086
    """The monitors API's port."""
    max_monitors_per_tenant: int = 500
    """The most monitors one tenant may define."""

    group: str = "llmops-monitors"
    """The faust app id: its consumer group, the prefix of its changelog topics, and its name in dead letters."""
    clean_topic: str = INTERACTIONS_CLEAN
    """Redacted interactions: count, errors, latency, tokens, guardrail findings."""
    scores_topic: str = EVALUATION_SCORES
    """Judge scores: the mean judge score."""
    usage_topic: str = BILLING_USAGE
    """Priced usage (one message per ledger row billing inserted): cost."""
    observations_topic: str = MONITOR_OBSERVATIONS
    """The worker's own repartition topic: observations keyed by tenant and app, so that every window of a
    tenant's app is aggregated by one worker (its partition count is the tables' partition count)."""
    alerts_topic: str = ALERTS
    """Where firing and resolved monitors go (the notifier reads the shared alerts topic)."""
    partitions: int = Field(6, ge=1)
    """Partitions of the observations topic and of every table's changelog topic (they must match)."""

    time_source: Literal["wall", "event"] = "wall"
    """What "now" is when deciding that a window closed: `wall`, the clock; `event`, the latest event time
    this worker aggregated (replays and backfills, and deterministic tests)."""
    lateness_s: float = Field(2.0, ge=0)
    """How long after its end a window waits for late events before it closes and its monitors are evaluated;
    an event arriving later is not counted in a closed window."""
    close_interval_s: float = Field(0.2, gt=0)
    """How often the worker looks for windows that closed."""
    table_expires_s: float = Field(7200.0, gt=3600)
    """How long the windowed tables (and their changelog topics) keep a window after it started: a worker
    down for longer than this loses the windows it had not closed yet."""
    commit_interval_s: float = Field(1.0, gt=0)
    """How often faust commits consumer offsets (also after `batch_max_events` messages)."""
    batch_max_events: int = Field(500, ge=1, le=1000)
    """The most messages one agent batch takes (one batch in flight per agent). A batch's observations for one
    partition travel as one message, which must stay under Kafka's message size (1 MiB): at most 1,000."""
    batch_max_wait_ms: int = 200
    """How long a batch of source events waits for more once the first has come."""
    consumer_session_timeout_ms: int = 10_000
    """How soon the group notices a worker that died and hands its partitions on."""
    outbox_relay_interval_s: float = Field(2.0, gt=0)
    """How often alert messages left unpublished (a crash between commit and send) are sent again."""
    baseline_days: int = Field(7, ge=1, le=28)
    """How many past days a relative condition compares with (the same window of each day)."""
    events_seen_keep_h: float = Field(24.0, ge=2)
    """How long the worker remembers which message brought each event (a clean interaction, a judge score, a
    ledger row): a repeated send within this time counts once; windows are at most an hour long."""
    history_keep_days: int = Field(35, ge=2)
    """How long evaluations (what baselines are computed from) are kept."""
