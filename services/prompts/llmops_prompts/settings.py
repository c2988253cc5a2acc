"""Configuration of the prompts API and CLI: `LLMOPS_PROMPTS_*` variables (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field

from llmops_shared.settings import ApiSettings, service_config


class PromptsSettings(ApiSettings):
    """One frozen settings object for the prompts API and `llmops prompts`, built once at start."""

    model_config = service_config("prompts")

    port: int = 8085
    """The prompts API's port."""
    template_max_chars: int = Field(100_000, ge=1)
    """The longest template (a text prompt's string, or a chat prompt's contents together)."""
    cache_fallback_s: float = Field(1.0, gt=0)
    """How long the API serves a resolved prompt from its memory when it is not listening for configuration
    changes (Postgres' notifications); while it listens, a label move or a new version is in force at once."""
    api_url: str = "http://127.0.0.1:8085"
    """Where `llmops prompts push | pull | diff | report` send their requests (the key: `LLMOPS_API_KEY`)."""
    report_bootstrap_samples: int = Field(2_000, ge=100)
    """Bootstrap resamples behind a report's intervals on cost and latency."""
    report_parallel_queries: int = Field(2, ge=1, le=8)
    """How many connections of the API's pool one report may aggregate with at once (the hours it finds not
    cached, split among them, in one snapshot): idle ones, or new ones while the pool is below its size."""
    report_warmer: bool = True
    """Whether the prompts API aggregates, in the background, the ended hours of every running experiment into
    the report's cache (`prompt_report_hours`), so that a report reads only the hour under way raw. Safe with
    several API processes (one warms an experiment's prompt at a time: an advisory lock; writes replace)."""
    report_warmer_interval_s: float = Field(60.0, gt=0)
    """How often the warmer looks for ended hours not cached yet, or whose sources changed since (late data):
    an hour is cached at most this long (plus a minute of settling) after it ends."""
