"""`llmops up` / `llmops down` / `llmops status` on a machine without Docker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llmops_devtools.stack import supervisor
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
    service_state,
    start_supervised,
    stop_service,
    stop_supervisor,
    supervisor_running,
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


def services_up(stack: LocalStack, say: Say = print, only: Sequence[str] | None = None) -> None:
    """Every installed service (or those named in `only`), under the supervisor (`stack/supervisor.py`)."""
    home = stack.home / "services"
    if only is not None:
        unknown = sorted(set(only) - {p.name for p in PROCESSES})
        if unknown:
            raise SystemExit(f"unknown service(s): {', '.join(unknown)}; `llmops status` lists them")
    wanted = [s for s in PROCESSES if s.installed() and (only is None or s.name in only)]
    if supervisor_running(home):
        supervised = set((supervisor.read_state(home) or {}).get("services", {}))
        for service in wanted:
            if service.name not in supervised:
                say(f"{service.name}: not started; the running supervisor does not have it "
                    "(`llmops down`, then `llmops up`)")
        wanted = [s for s in wanted if s.name in supervised]
    else:
        for service in wanted:
            if service_running(home, service):  # started by an `llmops up` from before the supervisor
                say(f"{service.name}: running, unsupervised (`llmops down`, then `llmops up`, to supervise it)")
        wanted = [s for s in wanted if not service_running(home, s)]
    if not os.environ.get(CHANNEL_KEYS_ENV):
        say(f"guardrails: notification channels sealed with a development key ({stack.home / DEV_CHANNEL_KEY_FILE}); "
            f"a deployment sets {CHANNEL_KEYS_ENV}")
    started = start_supervised(home, wanted, env=local_service_env(stack.home))
    for service in wanted:
        where = f" on port {service.port}" if service.port else ""
        say(f"{service.name}: {'started' if service.name in started else 'running'}{where}, supervised")


def down(settings: CommonSettings, say: Say = print, home: Path | None = None) -> None:
    stack = LocalStack.from_settings(settings, home)
    if stop_supervisor(stack.home / "services"):
        say("supervisor: stopped, and the services it ran")
    for service in reversed(PROCESSES):  # what runs unsupervised (an `llmops up` from before the supervisor)
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
    services = stack.home / "services"
    out["supervisor"] = "running" if supervisor_running(services) else "stopped"
    for service in PROCESSES:
        if service.installed():
            out[service.name] = service_state(services, service)
    return out
