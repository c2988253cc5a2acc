"""Postgres access: asyncpg pools, and a database-level helper for tests and `llmops up`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable (asyncpg raises a plain OSError when every address fails)
    TimeoutError,
    asyncpg.PostgresConnectionError,  # the connection broke or could not be made
    asyncpg.InterfaceError,  # the connection or the pool is closed
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # terminated by a shutdown (pg_ctl stop -m fast)
    asyncpg.CrashShutdownError,  # terminated because another backend crashed
)
"""What a Postgres call raises when the server cannot be reached or is going away: an outage, not a bad
query. Workers retry these (`llmops_shared.worker`); APIs answer 503 with `Retry-After`
(`llmops_shared.problems`)."""


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says Postgres is unreachable (rather than that the query was wrong)."""
    return isinstance(exc, UNAVAILABLE)


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10,
                      server_settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """A pool; `min_size=0` connects on first use, so a process can start while Postgres is down.
    `server_settings` are set on each of its connections (e.g. `plan_cache_mode`)."""
    pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size, command_timeout=30,
                                     server_settings=server_settings)
    assert pool is not None
    return pool


def with_database(database_url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/") or "postgres"


async def ensure_database(database_url: str) -> bool:
    """Create the URL's database if it does not exist. True when it was created."""
    name = database_name(database_url)
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{_quoted(name)}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await admin.close()


async def drop_database(database_url: str) -> None:
    name = database_name(database_url)
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{_quoted(name)}" WITH (FORCE)')
    finally:
        await admin.close()


def _quoted(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"refusing an unusual database name: {name!r}")
    return name
