"""The canary: unique PII strings sent through the whole pipeline appear nowhere in Postgres, nor in any
service's logs, nor in what reaches the clean topic or a notification receiver.

The ingest API, the guardrails worker, the notifier, the guardrails API and the traces writer (which stores
the clean events' redacted text as spans) run as their own processes
(`python -m ...`, as in production), on topics and consumer groups of this test's own, with their
stdout and stderr captured to files. Events carrying a fresh e-mail address, a fresh card number (Luhn
valid), a phone number and a fresh GitHub token in prompts, completions, tool-call arguments and
`metadata.context` go in through `POST /v1/interactions`; the inline check gets one too. Once the
clean events, the alerts and the notifications are there, every row of every table of the test
database is dumped as JSON and searched, and so is every log line.
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
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import TopicSpec
from tests.integration.guardrails.guardrails_support import github_token, luhn_card
from tests.support.events import collect, end_offsets, make_event
from tests.support.receiver import Receiver
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


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


async def test_canary_pii_is_nowhere_in_postgres_or_logs(stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str,
                                                         make_key, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    raw_topic, clean_topic, alerts_topic = (f"test.canary.{n}.{suffix}" for n in ("raw", "clean", "alerts"))
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(raw_topic, 3, 3_600_000),
                                                TopicSpec(clean_topic, 3, 3_600_000),
                                                TopicSpec(alerts_topic, 1, 3_600_000)))
    common = {"LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
              "LLMOPS_REDIS_URL": stack.redis_url, "LLMOPS_LOG_LEVEL": "DEBUG",
              "LLMOPS_GUARDRAILS_FINDING_HASH_SALT": f"canary-salt-{suffix}",
              "LLMOPS_GUARDRAILS_BATCH_MAX_WAIT_MS": "100", "LLMOPS_NOTIFIER_BATCH_MAX_WAIT_MS": "100"}
    ingest_port, api_port = free_port(), free_port()
    specs = [
        ("ingest-api", "llmops_ingest.api", {**common, "LLMOPS_INGEST_PORT": str(ingest_port),
                                             "LLMOPS_INGEST_TOPIC": raw_topic}),
        ("guardrails-worker", "llmops_guardrails.worker", {
            **common, "LLMOPS_GUARDRAILS_RAW_TOPIC": raw_topic, "LLMOPS_GUARDRAILS_CLEAN_TOPIC": clean_topic,
            "LLMOPS_GUARDRAILS_ALERTS_TOPIC": alerts_topic, "LLMOPS_GUARDRAILS_GROUP": f"guardrails-canary-{suffix}"}),
        ("guardrails-notifier", "llmops_guardrails.notifier", {
            **common, "LLMOPS_NOTIFIER_ALERTS_TOPIC": alerts_topic,
            "LLMOPS_NOTIFIER_GROUP": f"notifier-canary-{suffix}", "LLMOPS_NOTIFIER_BACKOFF_BASE_S": "0.05"}),
        ("guardrails-api", "llmops_guardrails.api", {**common, "LLMOPS_GUARDRAILS_PORT": str(api_port),
                                                     "LLMOPS_GUARDRAILS_ALERTS_TOPIC": alerts_topic}),
        ("traces-worker", "llmops_traces.worker", {**common, "LLMOPS_TRACES_TOPIC": clean_topic,
                                                   "LLMOPS_TRACES_GROUP": f"traces-canary-{suffix}",
                                                   "LLMOPS_TRACES_BATCH_MAX_WAIT_MS": "100"}),
    ]
    c = canaries()
    ingest_key = await make_key(tenant, ["ingest:write"])
    admin_key = await make_key(tenant, ["admin"])
    ingest, api = f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{api_port}"

    with Receiver() as receiver, processes(specs, tmp_path) as logs:
        await wait_http(f"{ingest}/healthz", logs)
        await wait_http(f"{api}/healthz", logs)
        await wait_log(logs["guardrails-worker"], "worker started")
        await wait_log(logs["guardrails-notifier"], "worker started")
        await wait_log(logs["traces-worker"], "worker started")
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
            resp = await admin.post(f"{api}/v1/channels", json={
                "name": "hook", "kind": "webhook", "min_severity": "info", "url": f"{receiver.url}/hook"})
            assert resp.status_code == 201, resp.text

            events = [
                make_event(input=[{"role": "system", "content": "You are the support agent of ACME."},
                                  {"role": "user", "content": f"I am reachable at {c['email']} or {c['phone']}."}],
                           output=f"Thanks, we will write to {c['email']}.",
                           metadata={"context": [f"CRM: customer email {c['email']}, phone {c['phone']}"]}),
                make_event(input=[{"role": "user", "content": f"Charge my card {c['card']} for the order."}],
                           output=f"Charged card {c['card']}."),
                make_event(input=[{"role": "user", "content": f"Why does {c['token']} get a 401?"},
                                  {"role": "assistant", "content": None, "tool_calls": [
                                      {"id": "c1", "name": "lookup", "arguments": orjson.dumps(
                                          {"email": c["email"], "card": c["card"]}).decode()}]}],
                           output="Rotate that token."),
            ]
            since = await end_offsets(stack.kafka_bootstrap, clean_topic)
            async with httpx.AsyncClient(timeout=30) as client:
                sent = await client.post(f"{ingest}/v1/interactions", json={"interactions": events},
                                         headers={"Authorization": f"Bearer {ingest_key}"})
                assert sent.status_code == 202, sent.text
                check = await admin.post(f"{api}/v1/check", json={"text": f"mail {c['email']} card {c['card']}"})
                assert check.status_code == 200 and check.json()["action"] == "redact"

            ids = {e["event_id"] for e in events}
            records = await collect(stack.kafka_bootstrap, clean_topic, since,
                                    keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                                    until=lambda found: len(found) >= len(ids), timeout_s=60)
            assert len(records) == len(ids)

            async def alerts_listed() -> list[dict[str, Any]] | None:
                listed = (await admin.get(f"{api}/v1/alerts")).json()["alerts"]
                return listed if {a["rule_id"] for a in listed} >= {"payment-data-alert", "secret-alert",
                                                                    "pii-in-completion"} else None

            alerts = await wait_for(alerts_listed, what="the alerts")
            await wait_for(lambda: _delivered(pg_pool, tenant, len(alerts)), what="the notifications")
            resolved = await admin.post(f"{api}/v1/alerts/{alerts[0]['alert_id']}/resolve")
            assert resolved.status_code == 200
            await wait_for(lambda: _delivered(pg_pool, tenant, len(alerts) + 1), what="the resolve notification")
            await wait_for(lambda: _spans_with_text(pg_pool, tenant, len(events)), what="the spans (redacted text)")

    assert await pg_pool.fetchval("SELECT count(*) FROM guardrail_findings WHERE tenant_id = $1", tenant) >= 8
    needles = [c["email"], c["card"], c["phone"], c["phone_digits"], c["token"]]
    dump = await database_dump(pg_pool)
    for needle in needles:
        assert needle not in dump, f"a canary reached Postgres: {needle}"
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        assert text.strip(), f"{name} logged nothing: is its output captured?"
        for needle in needles:
            assert needle not in text, f"a canary reached the {name} log"
    for r in records:
        for needle in needles:
            assert needle.encode() not in r.value, "a canary reached the clean topic"
    assert len(receiver.requests) >= len(alerts) + 1
    for req in receiver.requests:
        for needle in needles:
            assert needle.encode() not in req.body, "a canary reached a notification"


async def _spans_with_text(pg_pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    got = await pg_pool.fetchval(
        "SELECT count(*) FROM trace_spans WHERE tenant_id = $1 AND text_stored AND input IS NOT NULL", tenant)
    return bool(got >= n)


async def _delivered(pg_pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    got = await pg_pool.fetchval(
        "SELECT count(*) FROM notification_deliveries WHERE tenant_id = $1 AND status = 'delivered'", tenant)
    return bool(got >= n)
