"""Test fixtures. Unit tests need nothing; integration tests get the real local stack.

The stack (Kafka, Postgres, Redis) is started by the same code as `llmops up` when it is not already
running, and stopped at the end if the tests started it. Each test session gets a database of its own,
migrated from scratch and dropped at the end, and topics of its own (`LLMOPS_TOPIC_PREFIX`, set here
before anything reads it, inherited by every process a test starts), deleted at the end: a stack running
beside the tests never sees their traffic, nor they its traffic. Within a session, tests tell their
events apart by unique tenants and ids.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator

SESSION = uuid.uuid4().hex[:8]
os.environ["LLMOPS_TOPIC_PREFIX"] = f"test-{SESSION}."

import pytest  # noqa: E402
import pytest_asyncio  # noqa: E402

from llmops_shared import apikeys, db, migrations, topics  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402


@pytest.fixture(scope="session")
def stack() -> Iterator[CommonSettings]:
    """The local stack up, and settings pointing at a fresh, migrated database of this session's own."""
    from llmops_devtools.stack import local

    assert os.environ["LLMOPS_TOPIC_PREFIX"] == topics.PREFIX, "llmops_shared.topics was imported before conftest"
    base = CommonSettings()
    before = local.status(base)
    local.infrastructure_up(base, say=lambda _msg: None)  # creates this session's topics too
    test_db = db.with_database(base.database_url, f"llmops_test_{SESSION}")

    async def prepare() -> None:
        await db.ensure_database(test_db)
        await migrations.migrate(test_db)

    asyncio.run(prepare())
    settings = base.model_copy(update={"database_url": test_db})
    os.environ["LLMOPS_DATABASE_URL"] = test_db
    # The session's channel key (the guardrails API and the notifier store and read channels with it), as
    # `llmops up` gives its services a development key.
    os.environ.setdefault("LLMOPS_GUARDRAILS_CHANNEL_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode())
    yield settings
    asyncio.run(db.drop_database(test_db))
    asyncio.run(delete_session_topics(settings.kafka_bootstrap))
    started_here = all(state == "stopped" for name, state in before.items() if name in {"kafka", "postgres", "redis"})
    if started_here and os.environ.get("LLMOPS_KEEP_STACK") != "1":
        local.down(base, say=lambda _msg: None)


async def delete_session_topics(bootstrap: str) -> None:
    """Every topic this session made (the suite's, prefixed, and those tests named after it)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(topics.PREFIX)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def pg_pool(stack: CommonSettings) -> AsyncIterator[object]:
    pool = await db.create_pool(stack.database_url, max_size=5)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session")
async def redis_client(stack: CommonSettings) -> AsyncIterator[object]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(stack.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def tenant() -> str:
    """A tenant id of this test's own."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def make_key(pg_pool: object):  # type: ignore[no-untyped-def]
    """`await make_key(tenant, ["ingest:write"])` -> the key's secret."""

    async def make(tenant_id: str, scopes: list[str], rate_limit_per_s: int | None = None) -> str:
        new = await apikeys.create_key(pg_pool, tenant_id=tenant_id, scopes=scopes,  # type: ignore[arg-type]
                                       rate_limit_per_s=rate_limit_per_s)
        return new.secret

    return make
