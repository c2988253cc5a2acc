"""Configuration: one frozen pydantic-settings class per service, all from `LLMOPS_*` variables.

Services subclass `CommonSettings`; each builds its settings once at start-up and passes them in.
Nothing reads the environment at import time.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def api_port(default: int, service: str) -> int:
    """A service API's port, from `LLMOPS_<SERVICE>_PORT`: one variable per service, so a shell that
    runs several of them never sets one port for all."""
    env = f"LLMOPS_{service.upper()}_PORT"
    port: int = Field(default, validation_alias=AliasChoices(env), description=f"from {env}")
    return port


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_", frozen=True, extra="ignore", populate_by_name=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/llmops"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
