"""Configuration changes, in force in every running process within a second.

Every statement that changes a configuration table (prices, discounts, budgets, policies, channels,
evaluators, ...) notifies the Postgres channel `llmops_config` with the table's name, when its
transaction commits (a trigger, migration shared/0002 and each component's `*_config_notify`), whoever
made the change: an API, the CLI or plain SQL. A process holds one `ConfigWatcher`, which LISTENs on its
own connection and counts the notifications per table; a cache remembers the `stamp` of the tables it
was loaded from and reloads when the stamp moves:

    watcher = ConfigWatcher(settings.database_url)
    await watcher.start()
    ...
    stamp = watcher.stamp(PRICE_TABLES)          # before reading the tables
    if stamp != cache.loaded_stamp: reload(...)

If the listening connection drops, notifications may be missed: the watcher reconnects with backoff and
then moves every stamp, so every cache reloads once. Until it is connected, `connected` is false and
caches fall back to their periodic refresh.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Iterable

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "llmops_config"
APPLICATION_NAME = "llmops-config-watcher"


class ConfigWatcher:
    def __init__(self, database_url: str, *, max_backoff_s: float = 5.0) -> None:
        self.database_url = database_url
        self.max_backoff_s = max_backoff_s
        self._counts: collections.Counter[str] = collections.Counter()
        self._epoch = 0  # moves on every (re)connection: what happened while disconnected is unknown
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stamp(self, tables: Iterable[str]) -> tuple[int, ...]:
        """A value that changes whenever one of `tables` may have changed."""
        return (self._epoch, *(self._counts[t] for t in tables))

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start listening; waits up to `wait_s` for the first connection (then carries on trying)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="config-watcher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for_change(self, tables: Iterable[str], since: tuple[int, ...], timeout_s: float) -> bool:
        """Wait until `stamp(tables)` differs from `since` (tests, and processes that idle)."""
        wanted = list(tables)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.stamp(wanted) == since:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("configuration listener lost; reconnecting", extra={
                    "error_type": type(exc).__name__, "retry_in_s": round(delay, 2)})
            else:
                delay = 0.1
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.max_backoff_s)

    async def _listen_once(self) -> None:
        """One connection's life: listen until it is lost (or a liveness probe fails)."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(self.database_url, timeout=5,
                                     server_settings={"application_name": APPLICATION_NAME})
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            self._epoch += 1  # what happened while disconnected is unknown: every cache reloads once
            self._connected.set()
            log.info("listening for configuration changes", extra={"channel": CHANNEL})
            while not lost.is_set():  # a cheap probe every few seconds, so a silent drop is noticed too
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 5)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
        finally:
            self._connected.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._counts[payload] += 1
