"""`llmops up` / `llmops down` / `llmops status` on a machine without Docker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llmops_devtools.stack.kafka import KafkaBroker
from llmops_devtools.stack.postgres import PostgresServer
from llmops_devtools.stack.processes import port_open, stack_dir
from llmops_devtools.stack.redis import RedisServer
from llmops_devtools.stack.services import (
    CHANNEL_KEYS_ENV,
    DEV_CHANNEL_KEY_FILE,
    PROCESSES,
    local_service_env,
    service_running,
    start_service,
    stop_service,
)
from llmops_shared import db, kafka, migrations
from llmops_shared.settings import CommonSettings

Say = Callable[[str], None]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class LocalStack:
    kafka: KafkaBroker
    postgres: PostgresServer
    redis: RedisServer
    home: Path

    @classmethod
    def from_settings(cls, settings: CommonSettings, home: Path | None = None) -> LocalStack:
        home = home or stack_dir()
        _host, _, kafka_port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
        pg = urlsplit(settings.database_url)
        rd = urlsplit(settings.redis_url)
        return cls(
            kafka=KafkaBroker(home / "kafka", port=int(kafka_port), controller_port=int(kafka_port) + 1),
            postgres=PostgresServer(home / "postgres", port=pg.port or 5432),
            redis=RedisServer(home / "redis", port=rd.port or 6379),
            home=home,
        )


def _bring_up(name: str, running: Callable[[], bool], start: Callable[[], bool], port: int, say: Say) -> None:
    if running():
        say(f"{name}: running (started by this stack) on port {port}")
    elif port_open(port):
        say(f"{name}: found listening on port {port}; using it")
    else:
        start()
        say(f"{name}: started on port {port}")


def infrastructure_up(settings: CommonSettings, say: Say = print, home: Path | None = None) -> LocalStack:
    """Kafka, Postgres and Redis up; database created and migrated; topics created. Idempotent."""
    for url in (settings.database_url, settings.redis_url, f"kafka://{settings.kafka_bootstrap}"):
        host = urlsplit(url).hostname
        if host not in _LOOPBACK:
            raise SystemExit(f"refusing to start a local server for a remote address: {url}")
    stack = LocalStack.from_settings(settings, home)
    _bring_up("postgres", stack.postgres.running, stack.postgres.start, stack.postgres.port, say)
    _bring_up("redis", stack.redis.running, stack.redis.start, stack.redis.port, say)
    _bring_up("kafka", stack.kafka.running, stack.kafka.start, stack.kafka.port, say)

    async def prepare() -> None:
        if await db.ensure_database(settings.database_url):
            say(f"postgres: created database {db.database_name(settings.database_url)}")
        applied = await migrations.migrate(settings.database_url)
        say(f"postgres: {len(applied)} migration(s) applied" if applied else "postgres: schema up to date")
        created = await kafka.ensure_topics(settings.kafka_bootstrap)
        if created:
            say(f"kafka: created topics {', '.join(created)}")

    asyncio.run(prepare())
    return stack


def services_up(stack: LocalStack, say: Say = print) -> None:
    env = local_service_env(stack.home)
    if not os.environ.get(CHANNEL_KEYS_ENV):
        say(f"guardrails: notification channels sealed with a development key ({stack.home / DEV_CHANNEL_KEY_FILE}); "
            f"a deployment sets {CHANNEL_KEYS_ENV}")
    for service in PROCESSES:
        if not service.installed():
            continue
        started = start_service(stack.home / "services", service, env=env)
        where = f" on port {service.port}" if service.port else ""
        say(f"{service.name}: {'started' if started else 'running'}{where}")


def down(settings: CommonSettings, say: Say = print, home: Path | None = None) -> None:
    stack = LocalStack.from_settings(settings, home)
    for service in reversed(PROCESSES):
        if stop_service(stack.home / "services", service):
            say(f"{service.name}: stopped")
    if stack.kafka.stop():
        say("kafka: stopped")
    if stack.redis.stop():
        say("redis: stopped")
    if stack.postgres.stop():
        say("postgres: stopped")


def status(settings: CommonSettings, home: Path | None = None) -> dict[str, str]:
    stack = LocalStack.from_settings(settings, home)

    def state(ours: bool, port: int) -> str:
        return "running (ours)" if ours else ("listening (not ours)" if port_open(port) else "stopped")

    out = {
        "kafka": state(stack.kafka.running(), stack.kafka.port),
        "postgres": state(stack.postgres.running(), stack.postgres.port),
        "redis": state(stack.redis.running(), stack.redis.port),
    }
    for service in PROCESSES:
        if service.installed():
            out[service.name] = "running" if service_running(stack.home / "services", service) else "stopped"
    return out
