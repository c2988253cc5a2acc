"""Notification channels on the guardrails API, against real Postgres: a URL that leads into the operator's
network is refused when it is stored (422 on `url`, one answer whatever the reason), Slack URLs are
Slack's, a tenant names no PagerDuty URL; URLs and secrets are sealed in Postgres and shown masked; without
a channel key nothing is stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from llmops_guardrails.api import create_app
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.settings import CommonSettings
from tests.integration.guardrails.conftest import SALT, resolve
from tests.integration.guardrails.notifier.conftest import add_channel, session_cipher
from tests.support.servers import serve

pytestmark = pytest.mark.integration

NOT_ALLOWED = [(["body", "url"], "destination not allowed")]


def settings_of(stack: CommonSettings, **overrides: Any) -> GuardrailsSettings:
    return GuardrailsSettings(**{**stack.model_dump(), "finding_hash_salt": SALT, **overrides})


@pytest.fixture(scope="module")
def api_url(stack: CommonSettings, guardrails_engine: PolicyEngine) -> Iterator[str]:
    # The operator allows one private destination, as the tests' webhook receivers are allowed.
    with serve(create_app(settings_of(stack, egress_allow="127.0.0.1:8099"), engine=guardrails_engine,
                          resolver=resolve)) as url:
        yield url


@pytest.fixture
async def admin(api_url: str, tenant: str, make_key: Any) -> Any:
    key = await make_key(tenant, ["admin"])
    async with httpx.AsyncClient(base_url=api_url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


def errors(response: httpx.Response) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["msg"]) for e in response.json()["errors"]]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/",  # Redis, on the notifier's loopback
    "http://127.0.0.1:5432/hook",  # Postgres
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "http://metadata.example/",  # a name for it
    "http://10.0.0.5/hook",  # a private address
    "http://[::ffff:127.0.0.1]:6379/",  # Redis again, as an IPv4-mapped IPv6 address
    "http://internal.example/hook",  # one private address among public ones
    "http://nowhere.example/hook",  # a name that does not resolve: the same answer
    "http://127.0.0.1:8098/",  # the allowed address, another port
])
async def test_a_webhook_into_the_operators_network_is_refused_when_stored(admin: httpx.AsyncClient, url: str,
                                                                           pg_pool: asyncpg.Pool, tenant: str) -> None:
    created = await admin.post("/v1/channels", json={"name": "hook", "kind": "webhook", "url": url})
    assert errors(created) == NOT_ALLOWED  # on main: 201, and the notifier posts there
    assert created.json()["detail"] == "url: destination not allowed"
    ok = await admin.post("/v1/channels", json={"name": "hook", "kind": "webhook", "url": "https://example.com/h"})
    assert ok.status_code == 201, ok.text
    changed = await admin.patch(f"/v1/channels/{ok.json()['channel_id']}", json={"url": url})
    assert errors(changed) == NOT_ALLOWED
    assert await pg_pool.fetchval("SELECT count(*) FROM notification_channels WHERE tenant_id = $1", tenant) == 1


async def test_an_allowed_private_destination_is_accepted(admin: httpx.AsyncClient) -> None:
    made = await admin.post("/v1/channels", json={"name": "local", "kind": "webhook",
                                                  "url": "http://127.0.0.1:8099/hook"})
    assert made.status_code == 201, made.text
    assert made.json()["url"] == "http://127.0.0.1:8099/…"


@pytest.mark.parametrize("url", [
    "https://example.com/services/T1/B2/xyz",  # another host
    "https://hooks.slack.com.evil.example/services/T1/B2/xyz",
    "http://hooks.slack.com/services/T1/B2/xyz",  # not https
    "https://hooks.slack.com:6379/services/T1/B2/xyz",  # Slack's host, another port
])
async def test_a_slack_url_off_slacks_webhook_hosts_is_refused(admin: httpx.AsyncClient, url: str) -> None:
    created = await admin.post("/v1/channels", json={"name": "slack", "kind": "slack", "url": url})
    (loc, msg), = errors(created)  # on main: 201
    assert loc == ["body", "url"] and msg.startswith("must be a Slack incoming-webhook URL")
    ok = await admin.post("/v1/channels", json={"name": "slack", "kind": "slack",
                                                "url": "https://hooks.slack.com/services/T1/B2/xyz"})
    assert ok.status_code == 201, ok.text
    (loc, _), = errors(await admin.patch(f"/v1/channels/{ok.json()['channel_id']}", json={"url": url}))
    assert loc == ["body", "url"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "https://events.pagerduty.com/v2/enqueue",
                                 "https://pagerduty.attacker.example/v2/enqueue"])
async def test_a_tenant_names_no_pagerduty_url(admin: httpx.AsyncClient, url: str) -> None:
    created = await admin.post("/v1/channels", json={"name": "pd", "kind": "pagerduty", "secret": "routing-1",
                                                     "url": url})
    (loc, msg), = errors(created)  # on main: 201, and the routing key goes to that URL
    assert loc == ["body", "url"] and msg.startswith("a pagerduty channel takes no URL")
    ok = await admin.post("/v1/channels", json={"name": "pd", "kind": "pagerduty", "secret": "routing-1"})
    assert ok.status_code == 201 and ok.json()["url"] is None
    (loc, _), = errors(await admin.patch(f"/v1/channels/{ok.json()['channel_id']}", json={"url": url}))
    assert loc == ["body", "url"]


async def test_a_pagerduty_row_cannot_hold_a_url(pg_pool: asyncpg.Pool, tenant: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):  # migration 0011: not even past the API
        await add_channel(pg_pool, tenant, name="pd", kind="pagerduty", url="http://127.0.0.1:6379/", secret="rk",
                          sealed=False)


async def test_urls_and_secrets_are_sealed_in_postgres_and_shown_masked(
        admin: httpx.AsyncClient, pg_pool: asyncpg.Pool, tenant: str) -> None:
    token, slack_token = f"tok-{uuid.uuid4().hex}", f"slk{uuid.uuid4().hex}"
    hook_secret, routing_key = f"whsec-{uuid.uuid4().hex}", f"R{uuid.uuid4().hex}"
    hook_url = f"https://example.com/hooks/{token}?sig={token}"
    slack_url = f"https://hooks.slack.com/services/T1/B2/{slack_token}"
    hook = await admin.post("/v1/channels", json={"name": "hook", "kind": "webhook", "url": hook_url,
                                                  "secret": hook_secret})
    generated = await admin.post("/v1/channels", json={"name": "hook2", "kind": "webhook", "url": hook_url})
    slack = await admin.post("/v1/channels", json={"name": "slack", "kind": "slack", "url": slack_url})
    pd = await admin.post("/v1/channels", json={"name": "pd", "kind": "pagerduty", "secret": routing_key})
    assert [r.status_code for r in (hook, generated, slack, pd)] == [201] * 4
    whsec = generated.json()["secret"]  # a generated secret: shown once, whole, in the answer that made it
    changed = await admin.patch(f"/v1/channels/{hook.json()['channel_id']}",
                                json={"url": hook_url + "&v=2", "secret": hook_secret + "-2"})
    assert changed.status_code == 200, changed.text
    listed = await admin.get("/v1/channels")
    one = await admin.get(f"/v1/channels/{slack.json()['channel_id']}")

    # Postgres holds none of them (on main: all of them, as sent).
    rows = await pg_pool.fetch("SELECT row_to_json(c)::text AS j, sealed FROM notification_channels c "
                               "WHERE tenant_id = $1", tenant)
    table = "\n".join(r["j"] for r in rows)
    for value in (token, slack_token, hook_secret, routing_key, whsec):
        assert value not in table
    assert all(r["sealed"] for r in rows)
    stored = await pg_pool.fetchrow("SELECT url, secret FROM notification_channels WHERE channel_id = $1",
                                    hook.json()["channel_id"])
    assert session_cipher().open(stored["url"]) == hook_url + "&v=2"  # the notifier can open them
    assert session_cipher().open(stored["secret"]) == hook_secret + "-2"

    # The API shows them masked, everywhere.
    for response in (hook, slack, pd, changed, listed, one):
        for value in (token, slack_token, hook_secret, routing_key):
            assert value not in response.text
    assert whsec not in listed.text
    shown = {c["name"]: (c["url"], c["has_secret"], c["secret_hint"]) for c in listed.json()["channels"]}
    assert shown == {"hook": ("https://example.com/…", True, "****" + (hook_secret + "-2")[-4:]),
                     "hook2": ("https://example.com/…", True, "****" + whsec[-4:]),
                     "slack": ("https://hooks.slack.com/…", False, None),
                     "pd": (None, True, "****" + routing_key[-4:])}


async def test_a_row_from_before_sealing_is_sealed_whole_when_changed(
        admin: httpx.AsyncClient, pg_pool: asyncpg.Pool, tenant: str) -> None:
    secret = f"whsec-{uuid.uuid4().hex}"
    cid = await add_channel(pg_pool, tenant, name="old", kind="webhook", url="https://example.com/h/tok-old",
                            secret=secret, sealed=False)
    listed = (await admin.get("/v1/channels")).json()["channels"]
    assert [(c["url"], c["secret_hint"]) for c in listed] == [("https://example.com/…", "****" + secret[-4:])]
    changed = await admin.patch(f"/v1/channels/{cid}", json={"url": "https://example.com/h/tok-new"})
    assert changed.status_code == 200, changed.text
    row = await pg_pool.fetchrow("SELECT * FROM notification_channels WHERE channel_id = $1", cid)
    assert row["sealed"] and secret not in row["secret"] and "tok-new" not in row["url"]
    assert session_cipher().open(row["secret"]) == secret  # the secret it had, sealed too


async def test_without_a_channel_key_no_channel_is_stored(stack: CommonSettings, guardrails_engine: PolicyEngine,
                                                          make_key: Any, tenant: str, pg_pool: asyncpg.Pool) -> None:
    key = await make_key(tenant, ["admin"])
    app = create_app(settings_of(stack, channel_keys=None), engine=guardrails_engine, resolver=resolve)
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
            refused = await c.post("/v1/channels", json={"name": "hook", "kind": "webhook",
                                                         "url": "https://example.com/h"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["detail"] == ("channels cannot be stored: the operator has configured no channel "
                                                "encryption key")
            assert (await c.get("/v1/channels")).status_code == 200  # reading needs no key
    assert await pg_pool.fetchval("SELECT count(*) FROM notification_channels WHERE tenant_id = $1", tenant) == 0
