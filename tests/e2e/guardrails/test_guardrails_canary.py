"""The canary: unique PII strings planted in every free-text field of the events sent through the whole
pipeline appear nowhere in Postgres, Redis, any service's logs, the alerts, the clean topic or what reaches
a notification receiver.

Every service that stores anything runs as its own process (`python -m ...`, as in production), on topics
and consumer groups of this test's own, with stdout and stderr captured to files: the ingest API, the
guardrails worker, API and notifier, the billing worker (on the raw topic, with a budget that alerts) and
the traces writer (on the clean topic, storing its redacted text as spans) and the evaluator worker (on the
clean topic, its judge a local fake that quotes the judged text in its
reasoning; its usage events go back to the raw topic and are billed). A fresh e-mail address, card number
(Luhn valid), phone number and GitHub token go into the user id, session id, span name, tags, metadata at
several depths (and `context`/`reference`), the error message, message names, message texts, content parts,
a plain-text input and tool-call arguments, through `POST /v1/interactions`; the inline check gets some too.
Once the ledger rows, judgments, clean events, alerts and notifications are there, every row of every
table of the test database, every Redis key and value, every log line, the alerts topic and the alerts
API's answers are searched. The webhook channel's URL (with a token in its path) and signing secret are
canaries too: sealed in Postgres, masked by the API, in no log, and still what the notifier delivers with
(the receiver's address is the notifier's and the API's one egress allowance).

Not planted: the identifier fields (tenant, app, environment, trace, span, prompt, model, provider), which
the contract limits to id characters and which are stored as sent (docs/security.md), and the names,
types and ids that are not free text (tool names and call ids, error type and code, content-part types and
URLs).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from llmops_billing import budgets
from llmops_devtools.fake_openai import FakeLLMServer
from llmops_guardrails.notifier.channels import sign
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.integration.evaluator.evaluator_support import JUDGE_ENV, evaluator_config, judge_grants, register
from tests.integration.guardrails.guardrails_support import github_token, luhn_card
from tests.support.events import collect, end_offsets, make_event
from tests.support.receiver import Receiver
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def canaries() -> dict[str, str]:
    phone_digits = f"415555{random.randint(1000, 9999)}"
    return {
        "email": f"canary-{uuid.uuid4().hex}@example.com",
        "card": luhn_card(),
        "phone": f"+1 {phone_digits[:3]} {phone_digits[3:6]} {phone_digits[6:]}",
        "phone_digits": phone_digits,
        "token": github_token(),
    }


@contextmanager
def processes(specs: list[tuple[str, str, dict[str, str]]], logs: Path) -> Iterator[dict[str, Path]]:
    """Start `python -m <module>` for each (name, module, env); stop them (SIGTERM) at the end."""
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    files: dict[str, Path] = {}
    try:
        for name, module, env in specs:
            path = logs / f"{name}.log"
            files[name] = path
            with open(path, "wb") as out:
                procs.append((name, subprocess.Popen([sys.executable, "-m", module], stdout=out,
                                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                     env={**os.environ, **env})))
        yield files
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def wait_http(url: str, files: dict[str, Path], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer; logs:\n" + "\n".join(p.read_text()[-2000:] for p in files.values()))


async def wait_log(path: Path, needle: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in await asyncio.to_thread(path.read_text, errors="replace"):
            return
        await asyncio.sleep(0.2)
    tail = (await asyncio.to_thread(path.read_text, errors="replace"))[-3000:]
    raise AssertionError(f"{path.name}: no {needle!r} within {timeout_s} s:\n{tail}")


async def wait_for(condition: Any, timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {timeout_s} s: {what}")


async def redis_dump(url: str) -> str:
    """Every key of the Redis database and its value, whatever its type, as text."""
    redis = Redis.from_url(url)
    async with redis:
        return await _redis_text(redis)


async def _redis_text(redis: Redis) -> str:
    parts = []
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        value: Any = None
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def canary_events(c: dict[str, str]) -> list[dict[str, Any]]:
    """The canaries in every free-text field an event has, across four events (a failed call among them)."""
    pii = f"{c['email']} {c['phone']}"
    return [
        make_event(
            name=f"answer for {c['email']}", session_id=f"session of {c['phone']}", user_id=c["email"],
            tags=["vip", c["email"], c["phone"], f"card {c['card']}", f"key {c['token']}"],
            input=[{"role": "system", "content": "You are the support agent of ACME."},
                   {"role": "user", "name": c["email"], "content": f"I am reachable at {pii}."},
                   {"role": "user", "content": [{"type": "text", "text": f"My card is {c['card']}."}]}],
            output=[{"role": "assistant",
                     "content": [{"type": "text", "text": f"Thanks, we will write to {c['email']}."}]}],
            metadata={"context": [f"CRM: customer {pii}"], "reference": f"Write to {c['email']}.",
                      "customer": {"email": c["email"],
                                   "contact": {"phones": [c["phone"], {"deep": f"call {c['phone']}"}]}},
                      "note": f"token {c['token']}", "plain": "nothing personal"}),
        make_event(input=[{"role": "user", "content": f"Charge my card {c['card']} for the order."}],
                   output=f"Charged card {c['card']}.", user_id=c["phone"], tags=[f"{c['phone']} vip"]),
        make_event(input=[{"role": "user", "content": f"Why does {c['token']} get a 401?"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": "c1", "name": "lookup", "arguments": orjson.dumps(
                                  {"email": c["email"], "card": c["card"]}).decode()}]}],
                   output="Rotate that token.", user_id=f"user {c['email']}"),
        make_event(input=f"Plain prompt from {pii}", output=None, status="error",
                   error={"type": "invalid_request", "message": f"rejected {pii}, card {c['card']}",
                          "code": "400"},
                   usage={"input_tokens": 12, "output_tokens": 0}, user_id=c["email"],
                   tags=[f"mail {c['email']}"], metadata={"request": {"echo": f"{pii} {c['token']}"}}),
    ]


async def database_dump(pool: asyncpg.Pool) -> str:
    """Every row of every table of the database, as JSON text."""
    tables = await pool.fetch(
        """SELECT table_schema, table_name FROM information_schema.tables
           WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'""")
    parts = []
    for t in tables:
        name = f'"{t["table_schema"]}"."{t["table_name"]}"'
        rows = await pool.fetch(f"SELECT row_to_json(t)::text AS j FROM {name} t")  # noqa: S608
        parts += [r["j"] for r in rows]
    return "\n".join(parts)


async def test_canary_pii_is_nowhere_in_postgres_redis_logs_alerts_or_notifications(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, make_key: Any, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    raw_topic, clean_topic, alerts_topic, scores_topic = (f"{TOPIC_PREFIX}canary.{n}.{suffix}"
                                                          for n in ("raw", "clean", "alerts", "scores"))
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(raw_topic, 3, 3_600_000),
                                                TopicSpec(clean_topic, 3, 3_600_000),
                                                TopicSpec(alerts_topic, 1, 3_600_000),
                                                TopicSpec(scores_topic, 1, 3_600_000)))
    common = {"LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
              "LLMOPS_REDIS_URL": stack.redis_url, "LLMOPS_LOG_LEVEL": "DEBUG",
              "LLMOPS_PSEUDONYM_KEY": f"canary-pseudonyms-{suffix}",
              "LLMOPS_GUARDRAILS_FINDING_HASH_SALT": f"canary-salt-{suffix}",
              "LLMOPS_GUARDRAILS_BATCH_MAX_WAIT_MS": "100", "LLMOPS_NOTIFIER_BATCH_MAX_WAIT_MS": "100",
              "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "100", "LLMOPS_EVALUATOR_BATCH_MAX_WAIT_MS": "100"}
    c = canaries()
    events = canary_events(c)
    ingest_port, api_port = free_port(), free_port()
    ingest_key = await make_key(tenant, ["ingest:write"])
    admin_key = await make_key(tenant, ["admin"])
    ingest, api = f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{api_port}"
    async with pg_pool.acquire() as conn:  # a budget the first events pass: a billing alert, notified too
        await budgets.create_budget(conn, tenant_id=tenant, app_id="", period=budgets.Period.MONTH,
                                    amount=Decimal("0.000001"), thresholds=[100],
                                    enforcement=budgets.Enforcement.SOFT, name="canary budget")

    # The notifier and the API may reach the receiver, and nothing else on loopback (docs/security.md).
    receiver = Receiver()
    egress = {"LLMOPS_EGRESS_ALLOW": receiver.allowance}
    # A channel's URL and secret are credentials too: sealed in Postgres, masked by the API, never logged.
    hook_path, hook_secret = f"/hook/tok-{uuid.uuid4().hex}", f"whsec-canary-{uuid.uuid4().hex}"
    with FakeLLMServer(poll_interval_s=0.02) as judge, receiver:
        judge.config.schema_replies = judge.config.quote_prompt = True  # the judge quotes what it judged
        await register(pg_pool, evaluator_config(tenant, judge.url, apps=["support-bot"],
                                                 rubrics=["relevance@1", "faithfulness@1"]))
        grants = judge_grants([judge.url])
        specs = [
            ("ingest-api", "llmops_ingest.api", {**common, "LLMOPS_INGEST_PORT": str(ingest_port),
                                                 "LLMOPS_INGEST_TOPIC": raw_topic}),
            ("guardrails-worker", "llmops_guardrails.worker", {
                **common, "LLMOPS_GUARDRAILS_RAW_TOPIC": raw_topic, "LLMOPS_GUARDRAILS_CLEAN_TOPIC": clean_topic,
                "LLMOPS_GUARDRAILS_ALERTS_TOPIC": alerts_topic,
                "LLMOPS_GUARDRAILS_GROUP": f"guardrails-canary-{suffix}"}),
            ("guardrails-notifier", "llmops_guardrails.notifier", {
                **common, **egress, "LLMOPS_NOTIFIER_ALERTS_TOPIC": alerts_topic,
                "LLMOPS_NOTIFIER_GROUP": f"notifier-canary-{suffix}", "LLMOPS_NOTIFIER_BACKOFF_BASE_S": "0.05"}),
            ("guardrails-api", "llmops_guardrails.api", {**common, **egress, "LLMOPS_GUARDRAILS_PORT": str(api_port),
                                                         "LLMOPS_GUARDRAILS_ALERTS_TOPIC": alerts_topic}),
            ("billing-worker", "llmops_billing.worker", {
                **common, "LLMOPS_BILLING_TOPIC": raw_topic, "LLMOPS_BILLING_ALERTS_TOPIC": alerts_topic,
                "LLMOPS_BILLING_GROUP": f"billing-canary-{suffix}"}),
            ("evaluator-worker", "llmops_evaluator.worker", {
                **common, **JUDGE_ENV, "LLMOPS_EVALUATOR_TOPIC": clean_topic,
                "LLMOPS_EVALUATOR_USAGE_TOPIC": raw_topic, "LLMOPS_EVALUATOR_SCORES_TOPIC": scores_topic,
                "LLMOPS_EVALUATOR_GROUP": f"evaluator-canary-{suffix}",
                "LLMOPS_EVALUATOR_CREDENTIALS": orjson.dumps(grants["credentials"]).decode(),
                "LLMOPS_EGRESS_ALLOW": grants["egress_allow"]}),
            ("traces-worker", "llmops_traces.worker", {**common, "LLMOPS_TRACES_TOPIC": clean_topic,
                                                       "LLMOPS_TRACES_GROUP": f"traces-canary-{suffix}",
                                                       "LLMOPS_TRACES_BATCH_MAX_WAIT_MS": "100"}),
        ]
        with processes(specs, tmp_path) as logs:
            await wait_http(f"{ingest}/healthz", logs)
            await wait_http(f"{api}/healthz", logs)
            for name in ("guardrails-worker", "guardrails-notifier", "billing-worker", "evaluator-worker",
                         "traces-worker"):
                await wait_log(logs[name], "worker started")
            async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
                resp = await admin.post(f"{api}/v1/channels", json={
                    "name": "hook", "kind": "webhook", "min_severity": "info", "url": f"{receiver.url}{hook_path}",
                    "secret": hook_secret})
                assert resp.status_code == 201, resp.text
                assert resp.json()["url"] == f"{receiver.url}/…"
                assert resp.json()["secret_hint"] == "****" + hook_secret[-4:]
                shown = resp.text + (await admin.get(f"{api}/v1/channels")).text

                clean_since = await end_offsets(stack.kafka_bootstrap, clean_topic)
                async with httpx.AsyncClient(timeout=30) as client:
                    sent = await client.post(f"{ingest}/v1/interactions", json={"interactions": events},
                                             headers={"Authorization": f"Bearer {ingest_key}"})
                    assert sent.status_code == 202, sent.text
                    check = await admin.post(f"{api}/v1/check", json={"text": f"mail {c['email']} card {c['card']}"})
                    assert check.status_code == 200 and check.json()["action"] == "redact"

                ids = {e["event_id"] for e in events}
                records = await collect(stack.kafka_bootstrap, clean_topic, clean_since,
                                        keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                                        until=lambda found: len(found) >= len(ids), timeout_s=60)
                assert len(records) == len(ids)

                async def alerts_listed() -> list[dict[str, Any]] | None:
                    listed = (await admin.get(f"{api}/v1/alerts")).json()["alerts"]
                    return listed if {a["rule_id"] for a in listed} >= {"payment-data-alert", "secret-alert",
                                                                        "pii-in-completion"} else None

                alerts = await wait_for(alerts_listed, what="the alerts")
                await wait_for(lambda: _ledger(pg_pool, tenant, apps={"support-bot", "llmops-evaluator"}),
                               what="the ledger rows, the judge's usage among them")
                await wait_for(lambda: _judged(pg_pool, tenant), what="the quoting judge's results")
                await wait_for(lambda: _spans_with_text(pg_pool, tenant, len(events)), what="the spans (redacted text)")
                await wait_for(lambda: _notified(receiver, {"payment-data-alert", "secret-alert",
                                                            "pii-in-completion", "budget.threshold"}),
                               what="the notifications, the budget's among them")
                resolved = await admin.post(f"{api}/v1/alerts/{alerts[0]['alert_id']}/resolve")
                assert resolved.status_code == 200
                await wait_for(lambda: _resolved_notified(receiver), what="the resolve notification")
                alerts_api = (await admin.get(f"{api}/v1/alerts")).text
        alert_records = await collect(stack.kafka_bootstrap, alerts_topic,
                                      {tp: 0 for tp in await end_offsets(stack.kafka_bootstrap, alerts_topic)},
                                      until=lambda found: len(found) >= len(alerts) + 2, timeout_s=20)

    assert await pg_pool.fetchval("SELECT count(*) FROM guardrail_findings WHERE tenant_id = $1", tenant) >= 8
    needles = {name: c[name] for name in ("email", "card", "phone", "phone_digits", "token")}
    needles |= {"channel URL token": hook_path, "channel secret": hook_secret}
    where: dict[str, str] = {
        "Postgres": await database_dump(pg_pool),
        "Redis": await redis_dump(stack.redis_url),
        "the alerts API": alerts_api,
        "the alerts topic": "\n".join(r.value.decode() for r in alert_records),
        "the clean topic": "\n".join(r.value.decode() for r in records),
        "a notification": "\n".join(r.body.decode() for r in receiver.requests),
    }
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        assert text.strip(), f"{name} logged nothing: is its output captured?"
        where[f"the {name} log"] = text
    leaks = [f"the canary {kind} reached {place}" for place, text in where.items()
             for kind, needle in needles.items() if needle in text]
    assert not leaks, leaks
    assert hook_path not in shown and hook_secret not in shown, "the API showed a channel's URL or secret whole"
    # The notifier opened the sealed URL and secret to deliver: to the URL's path, signed with the secret.
    assert receiver.requests and {r.path for r in receiver.requests} == {hook_path}
    first = receiver.requests[0]
    assert first.headers["x-llmops-signature"] == sign(hook_secret, int(first.headers["x-llmops-timestamp"]),
                                                       first.body)
    # What the stores hold instead: pseudonyms and labels (so the canaries did go through them).
    stored_users = {r["user_id"] for r in await pg_pool.fetch(
        "SELECT DISTINCT user_id FROM usage_ledger WHERE tenant_id = $1 AND app_id = 'support-bot'", tenant)}
    assert stored_users and all(u.startswith("u_") for u in stored_users)
    assert "[EMAIL_ADDRESS]" in where["Postgres"] and "[PHONE_NUMBER]" in where["Postgres"]
    assert len(receiver.requests) >= len(alerts) + 2


async def _spans_with_text(pg_pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    got = await pg_pool.fetchval(
        "SELECT count(*) FROM trace_spans WHERE tenant_id = $1 AND text_stored AND input IS NOT NULL", tenant)
    return bool(got >= n)


async def _ledger(pg_pool: asyncpg.Pool, tenant: str, *, apps: set[str]) -> bool:
    rows = await pg_pool.fetch("SELECT DISTINCT app_id FROM usage_ledger WHERE tenant_id = $1", tenant)
    return {r["app_id"] for r in rows} >= apps


async def _judged(pg_pool: asyncpg.Pool, tenant: str) -> bool:
    quoting = await pg_pool.fetchval(
        "SELECT count(*) FROM evaluation_results WHERE tenant_id = $1 AND reasoning LIKE '%the text judged reads%'",
        tenant)
    return bool(quoting >= 3)


async def _notified(receiver: Receiver, rules: set[str]) -> bool:
    return {orjson.loads(r.body)["alert"]["rule"] for r in receiver.requests} >= rules


async def _resolved_notified(receiver: Receiver) -> bool:
    return any(orjson.loads(r.body)["alert"]["status"] == "resolved" for r in receiver.requests)
