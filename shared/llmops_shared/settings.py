"""Configuration: one frozen pydantic-settings class per service, built once per process and passed in.

What every process shares has the prefix `LLMOPS_` (`LLMOPS_KAFKA_BOOTSTRAP`, `LLMOPS_DATABASE_URL`,
`LLMOPS_REDIS_URL`, `LLMOPS_LOG_LEVEL`, `LLMOPS_HOST`); everything a service owns has the service's
prefix (`LLMOPS_BILLING_BATCH_MAX_EVENTS`, `LLMOPS_INGEST_TOPIC`, `LLMOPS_GUARDRAILS_PORT`), so one
shell or one compose file can configure every process without one variable meaning two things.
A service class says its prefix with `service_config("billing")`. Each field's docstring is its
documentation: `docs/configuration.md` is generated from these classes (`reference_markdown`) and a
test fails when it is stale. Nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops_shared.privacy import DEV_PSEUDONYM_KEY


def shared(default: Any, name: str) -> Any:
    """A setting every process reads from the same variable, `LLMOPS_<NAME>`, whatever its service prefix."""
    return Field(default, validation_alias=f"LLMOPS_{name.upper()}")


def service_config(service: str) -> SettingsConfigDict:
    """The `model_config` of a service's settings: its own variables are `LLMOPS_<SERVICE>_<FIELD>`."""
    return SettingsConfigDict(env_prefix=f"LLMOPS_{service.upper()}_")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_", frozen=True, extra="ignore", populate_by_name=True,
                                      use_attribute_docstrings=True)

    kafka_bootstrap: str = shared("127.0.0.1:9092", "kafka_bootstrap")
    """Kafka brokers, `host:port[,host:port]`."""
    database_url: str = shared("postgresql://postgres@127.0.0.1:5432/llmops", "database_url")
    """Postgres, as a libpq URL."""
    redis_url: str = shared("redis://127.0.0.1:6379/0", "redis_url")
    """Redis, as a URL."""
    log_level: str = shared("INFO", "log_level")
    """DEBUG, INFO, WARNING or ERROR. Logs are JSON lines on stderr and never carry prompt text."""
    host: str = shared("127.0.0.1", "host")
    """The address APIs listen on (`0.0.0.0` in a container)."""
    egress_allow: str = shared("", "egress_allow")
    """Destinations that are not on the public internet but that calls to tenant-chosen URLs (the judge's
    `base_url`, notification channels' URLs) may reach anyway: `host:port` entries, comma-separated
    (`127.0.0.1:8099,judge.internal:443,10.1.0.0/16:443,[fd00::7]:8000`). Everything else that resolves to
    loopback, private, link-local (the cloud metadata service), multicast or reserved addresses is refused
    (docs/security.md)."""

    pseudonym_key: SecretStr = shared(SecretStr(DEV_PSEUDONYM_KEY.decode()), "pseudonym_key")
    """The secret user pseudonyms are derived from (HMAC-SHA-256 of tenant and `user_id`): an event's
    `user_id` is stored, and leaves the guardrails worker, only as its pseudonym `u_<20 hex>`. Every process
    must have the same value (the guardrails worker's clean events and billing's ledger agree on it); set
    your own and keep it stable, since changing it starts every user's usage afresh (docs/security.md)."""

    @field_validator("egress_allow")
    @classmethod
    def _egress_entries(cls, value: str) -> str:
        from llmops_shared.egress import parse_allow

        parse_allow(value)  # a bad entry fails at start-up, naming it
        return value

    def pseudonym_secret(self) -> bytes:
        return self.pseudonym_key.get_secret_value().encode()


class ApiSettings(CommonSettings):
    """What every API has; a service's settings class mixes it in (its own prefix applies)."""

    port: int = 8000
    """The API's port (every service sets its own)."""

    key_cache_ttl_s: int = 30
    """How long an API key's look-up is kept, by each process (while it listens for changes to `api_keys`,
    which empty it at once: a revocation is in force within a second) and in Redis (a revocation drops it)."""
    key_outage_ttl_s: int = Field(86_400, ge=0, le=86_400)
    """While Postgres is unreachable, a key it accepted within this many seconds is still accepted (its
    last-known-good answer, in Redis and in the process); 0: none, every look-up needs Postgres. A key
    revoked before the outage stays refused; one revoked during it works until Postgres is back."""
    max_body_bytes: int = 1024 * 1024
    """The largest request body; a larger one is refused (413) before anything reads or parses it."""
    requests_per_s: int | None = 50
    """Requests per second a key may make on average (a token bucket in Redis per key); unset: no limit.
    While Redis is down the limit is not applied (the key look-up falls back to Postgres)."""
    requests_burst: int = 200
    """Requests a key may make at once."""
    gc_thresholds: tuple[int, int, int] = (100_000, 20, 20)
    """The API process's cyclic garbage collector thresholds (Python's default is 700, 10, 10), set once the API
    has started, when what is alive then (modules, the app, its pools and models) is frozen out of the
    collector's sight. A request's objects die by reference counting; with the default, the ingest API ran a full
    collection of its whole process every ~0.3 s at line rate to free nothing (bench/RESULTS.md)."""


def env_name(settings: type[BaseSettings], field: str) -> str:
    """The environment variable a field is read from."""
    info = settings.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def environment(settings: BaseSettings, fields: Sequence[str] | None = None) -> dict[str, str]:
    """The variables that configure another process like `settings` (all fields, or `fields`)."""
    cls = type(settings)
    values = settings.model_dump()
    out = {}
    for name in fields if fields is not None else list(cls.model_fields):
        value = values[name]
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, dict):  # read back as JSON (pydantic-settings parses complex values so)
            value = json.dumps(value, default=_revealed)
        elif isinstance(value, tuple | list):
            value = "[" + ",".join(str(v) for v in value) + "]"
        out[env_name(cls, name)] = str(value)
    return out


def _revealed(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def reference_markdown(classes: Sequence[tuple[str, type[BaseSettings]]]) -> str:
    """Every variable of every class, as Markdown tables: one section per (title, class). The variables
    every process shares (`CommonSettings`) appear once, in the section of that class."""
    out = ["# Configuration reference", "",
           "Every setting is an environment variable. Generated from the settings classes by "
           "`llmops settings-reference > docs/configuration.md`; a test fails when this page is stale.", ""]
    for title, cls in classes:
        out += [f"## {title}", "", f"`{cls.__module__}.{cls.__qualname__}`", "",
                "| variable | default | meaning |", "|---|---|---|"]
        for name, info in cls.model_fields.items():
            if cls is not CommonSettings and name in CommonSettings.model_fields:
                continue
            out.append(f"| `{env_name(cls, name)}` | {_default(info)} | {_cell(info.description or '')} |")
        out.append("")
    return "\n".join(out)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(a development value: set it)"
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
