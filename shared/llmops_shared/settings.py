"""Configuration: one frozen pydantic-settings class per service, all from `LLMOPS_*` variables.

Services subclass `CommonSettings`; each builds its settings once at start-up and passes them in.
Nothing reads the environment at import time.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/llmops"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
