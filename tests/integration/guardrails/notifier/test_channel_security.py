"""The notifier against real Postgres and Redis: it connects only where the egress policy lets it, whatever a
channel row says and however it got into the table, and tells a tenant one thing for every connection it
does not make; it opens channels' sealed URLs and secrets with the operator's keys, seals plain-text rows
when it starts, follows a key rotation, and does not start without a key."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from llmops_guardrails.channel_secrets import ChannelCipher, reseal, seal
from llmops_guardrails.notifier.channels import sign
from llmops_shared.egress import NOT_ALLOWED
from llmops_shared.settings import CommonSettings
from tests.integration.guardrails.notifier.conftest import (
    add_channel,
    alert,
    disable_channels,
    running,
)
from tests.support.receiver import Receiver
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


@asynccontextmanager
async def listener() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP port on loopback that counts the connections it accepts: what Redis or Postgres would see."""
    accepted: list[int] = []

    async def count(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    finally:
        server.close()


async def delivery_rows(pg_pool: asyncpg.Pool, tenant: str) -> dict[str, tuple[object, ...]]:
    rows = await pg_pool.fetch(
        """SELECT c.name, d.status, d.attempts, d.http_status, d.error FROM notification_deliveries d
           JOIN notification_channels c USING (channel_id) WHERE d.tenant_id = $1""", tenant)
    return {r["name"]: (r["status"], r["attempts"], r["http_status"], r["error"]) for r in rows}


async def test_a_channel_into_the_operators_network_written_past_the_api_is_never_connected_to(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str,
        caplog: pytest.LogCaptureFixture) -> None:
    internal = {"redis": "http://127.0.0.1:6379/", "postgres": "http://127.0.0.1:5432/hook",
                "metadata": "http://169.254.169.254/latest/meta-data/iam/", "private": "http://10.0.0.5/hook",
                "mapped": "http://[::ffff:127.0.0.1]:6379/", "unspecified": "http://0.0.0.0:6379/"}
    caplog.set_level(logging.WARNING, logger="llmops_shared.egress")
    async with listener() as (loopback, accepted):  # on loopback, not allowed: it stands for every other service
        internal["loopback"] = f"{loopback}/hook"
        with Receiver() as allowed:
            for name, url in internal.items():
                await add_channel(pg_pool, tenant, name=name, kind="webhook", url=url, secret="whsec-x")
            await add_channel(pg_pool, tenant, name="slack-loopback", kind="slack", url=f"{loopback}/slack")
            await add_channel(pg_pool, tenant, name="allowed", kind="webhook", url=f"{allowed.url}/ok")
            try:
                async with running(stack, pg_pool, redis_client, allowed.url, max_attempts=2) as n:
                    await n.deliver_now([alert(tenant, severity="critical")])
            finally:
                await disable_channels(pg_pool, tenant)
        assert accepted == []  # on main: the notifier connects (and posts) to each of them
    assert len(allowed.on("/ok")) == 1
    rows = await delivery_rows(pg_pool, tenant)
    assert rows.pop("allowed") == ("delivered", 1, 200, None)
    assert set(rows) == {*internal, "slack-loopback"}
    assert set(rows.values()) == {("parked", 2, None, NOT_ALLOWED)}
    # The policy refused each one before any connection (the operator's log says why; the tenant's does not).
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records if r.getMessage() == "egress refused"]
    assert reasons and all("not public, not allowed" in reason for reason in reasons)
    refused = {reason.split(" ")[0] for reason in reasons}
    assert {"127.0.0.1:6379", "127.0.0.1:5432", "169.254.169.254:80", "10.0.0.5:80", "0.0.0.0:6379",
            f"127.0.0.1:{loopback.rsplit(':', 1)[1]}"} <= refused


@contextmanager
def filtered_port() -> Iterator[int]:
    """A port on loopback that never completes a connection, as a firewall that drops packets: its listen
    queue is full and never accepted from, so the kernel drops new connection attempts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for s in [*fillers, server]:
            s.close()


async def test_every_connection_not_made_reads_the_same_in_the_delivery_log(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    """Refused by the policy, a closed port, a name that does not resolve, a port that never answers: the same
    status, attempts, HTTP status and error, so the log is no port scanner."""
    closed = free_port()  # allowed, nothing listens

    async def resolve(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with filtered_port() as filtered:
        urls = {"refused": "http://127.0.0.1:6379/", "closed": f"http://127.0.0.1:{closed}/hook",
                "unresolvable": "http://nowhere.example/hook", "filtered": f"http://127.0.0.1:{filtered}/hook"}
        for name, url in urls.items():
            await add_channel(pg_pool, tenant, name=name, kind="webhook", url=url)
        try:
            async with running(stack, pg_pool, redis_client, max_attempts=2, timeout_s=1.0, claim_lease_s=5,
                               park_backoff_base_s=60, park_backoff_max_s=60,  # one run of attempts each
                               egress_allow=f"127.0.0.1:{closed},127.0.0.1:{filtered}", resolver=resolve) as n:
                await n.deliver_now([alert(tenant, severity="critical")])
        finally:
            await disable_channels(pg_pool, tenant)
    rows = await delivery_rows(pg_pool, tenant)
    assert set(rows) == set(urls)
    assert set(rows.values()) == {("parked", 2, None, NOT_ALLOWED)}, rows


async def test_plain_text_rows_are_sealed_when_the_notifier_starts_and_still_delivered(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    secret = f"whsec-{uuid.uuid4().hex}"
    with Receiver() as receiver:
        cid = await add_channel(pg_pool, tenant, name="old", kind="webhook", url=f"{receiver.url}/old-tok",
                                secret=secret, sealed=False)  # as rows from before migration 0011 are
        try:
            async with running(stack, pg_pool, redis_client, receiver.url) as n:
                row = await pg_pool.fetchrow("SELECT * FROM notification_channels WHERE channel_id = $1", cid)
                assert row["sealed"] and "old-tok" not in row["url"] and secret not in row["secret"]
                assert (row["url_hint"], row["secret_hint"]) == (f"{receiver.url}/…", "****" + secret[-4:])
                assert await n.deliver_now([alert(tenant)]) != {}
        finally:
            await disable_channels(pg_pool, tenant)
    (got,) = receiver.on("/old-tok")
    assert got.headers["x-llmops-signature"] == sign(secret, int(got.headers["x-llmops-timestamp"]), got.body)


async def test_a_key_rotation_reseals_every_channel_under_the_new_key(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    session_key = os.environ["LLMOPS_GUARDRAILS_CHANNEL_KEYS"]
    new_key = Fernet.generate_key().decode()
    secret = f"whsec-{uuid.uuid4().hex}"
    with Receiver() as receiver:
        cid = await add_channel(pg_pool, tenant, name="hook", kind="webhook", url=f"{receiver.url}/h", secret=secret)
        try:
            # The new key first, the old one still there: the notifier reseals at start, and delivers.
            async with running(stack, pg_pool, redis_client, receiver.url,
                               channel_keys=f"{new_key},{session_key}") as n:
                await n.deliver_now([alert(tenant)])
            row = await pg_pool.fetchrow("SELECT url, secret FROM notification_channels WHERE channel_id = $1", cid)
            assert ChannelCipher([new_key]).open(row["secret"]) == secret
            assert not ChannelCipher([session_key]).is_current(row["url"])
            # The old key dropped: nothing was left under it.
            async with running(stack, pg_pool, redis_client, receiver.url, channel_keys=new_key) as n:
                await n.deliver_now([alert(tenant)])
        finally:
            await disable_channels(pg_pool, tenant)
            await reseal(pg_pool, ChannelCipher([session_key, new_key]))  # the session's other rows, as they were
    got = receiver.on("/h")
    assert len(got) == 2
    assert all(r.headers["x-llmops-signature"] == sign(secret, int(r.headers["x-llmops-timestamp"]), r.body)
               for r in got)


async def test_a_channel_no_configured_key_opens_is_parked_not_sent(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    with Receiver() as receiver:
        cid = await add_channel(pg_pool, tenant, name="hook", kind="webhook", url="https://example.com/placeholder")
        lost = seal(ChannelCipher([Fernet.generate_key().decode()]), url=f"{receiver.url}/h", secret="whsec-x")
        await pg_pool.execute("UPDATE notification_channels SET url = $2, secret = $3 WHERE channel_id = $1",
                              cid, lost.url, lost.secret)  # sealed under a key the operator dropped too early
        try:
            async with running(stack, pg_pool, redis_client, receiver.url) as n:
                assert set((await n.deliver_now([alert(tenant)])).values()) == {"parked"}
        finally:
            await disable_channels(pg_pool, tenant)
    assert receiver.attempts == []
    assert await delivery_rows(pg_pool, tenant) == {"hook": ("parked", 0, None, "channel secrets unavailable")}


async def test_the_notifier_does_not_start_without_a_channel_key(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> None:
    with pytest.raises(RuntimeError, match="LLMOPS_GUARDRAILS_CHANNEL_KEYS is not set"):
        async with running(stack, pg_pool, redis_client, channel_keys=None):
            pass
