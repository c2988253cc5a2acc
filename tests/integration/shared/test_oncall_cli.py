"""`llmops alerts ...` and `llmops usage` against the real guardrails and billing APIs (real Postgres, Redis,
Kafka), run as a shell user runs them: a subprocess with the key in LLMOPS_API_KEY or a profile file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import jsonschema
import pytest

from llmops_billing.api import create_app as billing_app
from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.schemas import UsagePage
from llmops_billing.settings import BillingSettings
from llmops_billing.store.ledger import write_batch
from llmops_guardrails.alerts_service import record_occurrences
from llmops_guardrails.api import create_app as guardrails_app
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.schemas import AlertPublic, AlertsPublic
from llmops_guardrails.screening import Occurrence, fingerprint
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.clock import fixed
from llmops_shared.contract import Interaction
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.integration.guardrails.conftest import SALT, guardrails_engine, resolve  # noqa: F401 (a fixture)
from tests.support.events import make_event
from tests.support.servers import serve
from tests.support.terminal import LLMOPS, run_in_pty, run_piped, terminal_env

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
T0 = datetime(2026, 11, 19, 8, tzinfo=UTC)


def schema(model: type) -> dict:  # type: ignore[type-arg]
    return model.model_json_schema(mode="serialization", by_alias=True)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def apis(stack: CommonSettings, guardrails_engine: PolicyEngine) -> Iterator[dict[str, str]]:  # noqa: F811
    settings = GuardrailsSettings(**{**stack.model_dump(), "finding_hash_salt": SALT,
                                     "alerts_topic": f"{TOPIC_PREFIX}cli.alerts.{uuid.uuid4().hex[:8]}"})
    asyncio.run(ensure_topics(stack.kafka_bootstrap, (TopicSpec(settings.alerts_topic, 1, 3_600_000),)))
    with serve(guardrails_app(settings, engine=guardrails_engine, resolver=resolve)) as guardrails, \
            serve(billing_app(BillingSettings(**stack.model_dump()), clock=fixed(NOW))) as billing:
        yield {"LLMOPS_GUARDRAILS_URL": guardrails, "LLMOPS_BILLING_URL": billing}


async def seed_alert(pg_pool: asyncpg.Pool, tenant: str, rule: str, severity: str) -> str:
    found = [Occurrence(fingerprint=fingerprint(tenant, "bot", rule, "secrets"), tenant_id=tenant, app_id="bot",
                        rule_id=rule, detector="secrets", severity=severity, policy_severity="high", kinds=("x",),
                        findings=1, max_score=0.9, event_id=uuid.uuid4(), occurred_at=T0 + timedelta(seconds=i))
             for i in range(2)]
    async with pg_pool.acquire() as conn, conn.transaction():
        messages = await record_occurrences(conn, found, window_s=3600)
    return messages[-1].alert_id


async def test_alerts_list_show_ack_resolve_from_the_shell(apis: dict[str, str], pg_pool: asyncpg.Pool, tenant: str,
                                                           make_key, tmp_path: Path) -> None:
    critical = await seed_alert(pg_pool, tenant, "leaked-key", "critical")
    warning = await seed_alert(pg_pool, tenant, "pii-email", "warning")
    key = await make_key(tenant, ["alerts:read", "alerts:write"])
    env = terminal_env({**apis, "LLMOPS_API_KEY": key, "LLMOPS_PROFILE_FILE": str(tmp_path / "none.toml")})

    def llmops(*argv: str) -> tuple[int, str, str]:
        done = run_piped([*LLMOPS, *argv], env)
        return done.returncode, done.stdout, done.stderr

    code, out, err = await asyncio.to_thread(llmops, "alerts", "list", "--json")
    assert code == 0, err
    page = json.loads(out)
    jsonschema.validate(page, schema(AlertsPublic))
    assert {a["alert_id"] for a in page["alerts"]} == {critical, warning}

    code, out, _ = await asyncio.to_thread(llmops, "alerts", "list", "--severity", "critical")
    assert code == 0 and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["alert", "severity", "status", "app", "rule", "count", "last", "seen", "(UTC)", "title"]
    assert lines[1].split()[:6] == [critical, "critical", "open", "bot", "leaked-key", "2"] and len(lines) == 3
    assert lines[-1] == "1 alert(s)"

    screen_code, screen = await asyncio.to_thread(run_in_pty, [*LLMOPS, "alerts", "list"], env)
    assert screen_code == 0 and re.search(r"\x1b\[[0-9;]*31m" + r"critical", screen), screen  # red on a terminal

    code, out, _ = await asyncio.to_thread(llmops, "alerts", "show", critical, "--json")
    jsonschema.validate(json.loads(out), schema(AlertPublic))
    code, out, _ = await asyncio.to_thread(llmops, "alerts", "ack", critical)
    assert code == 0 and out.startswith(f"acknowledged {critical} (critical, bot)")
    code, out, _ = await asyncio.to_thread(llmops, "alerts", "resolve", critical, "--json")
    assert code == 0 and json.loads(out)["status"] == "resolved"
    code, out, err = await asyncio.to_thread(llmops, "alerts", "ack", critical)
    assert code == 1 and out == "" and err.count("\n") == 1 and "409" in err and "Traceback" not in err

    # The key from a profile file instead; a wrong key is one line naming where it came from.
    profile = tmp_path / "profile.toml"
    profile.write_text(f'[oncall]\napi_key = "{key}"\nguardrails_url = "{apis["LLMOPS_GUARDRAILS_URL"]}"\n')
    os.chmod(profile, 0o600)
    env = {k: v for k, v in env.items() if k not in ("LLMOPS_API_KEY", "LLMOPS_GUARDRAILS_URL")}
    env["LLMOPS_PROFILE_FILE"] = str(profile)
    code, out, err = await asyncio.to_thread(llmops, "alerts", "list", "--profile", "oncall", "--status", "resolved")
    assert code == 0 and critical in out, err
    env["LLMOPS_API_KEY"] = "llmops_not-a-key"
    code, out, err = await asyncio.to_thread(llmops, "alerts", "list", "--profile", "oncall")
    assert code == 1 and err.count("\n") == 1 and "refused the key" in err and "LLMOPS_API_KEY" in err


async def test_usage_grouped_from_the_shell(apis: dict[str, str], pg_pool: asyncpg.Pool, tenant: str, make_key,
                                            tmp_path: Path) -> None:
    events = [{**make_event(occurred_at=f"2026-11-0{day}T10:00:00Z", model=model, provider="openai", app_id=app,
                            usage={"input_tokens": 1000, "output_tokens": 100}), "tenant_id": tenant}
              for day in (3, 4) for model in ("gpt-4o-mini", "gpt-4o") for app in ("bot", "search")]
    rows = [ledger_row(Interaction.model_validate(e), builtin_catalogue(), priced_at=NOW) for e in events]
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None])
    key = await make_key(tenant, ["billing:read"])
    env = terminal_env({**apis, "LLMOPS_API_KEY": key, "LLMOPS_PROFILE_FILE": str(tmp_path / "none.toml")})
    period = ["--from", "2026-11-01T00:00:00Z", "--to", "2026-12-01T00:00:00Z", "--granularity", "month"]

    done = await asyncio.to_thread(run_piped, [*LLMOPS, "usage", *period, "--by", "model,app", "--json"], env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, schema(UsagePage))
    assert {(r["model"], r["app_id"], r["event_count"]) for r in document["rows"]} == {
        (m, a, 2) for m in ("gpt-4o-mini", "gpt-4o") for a in ("bot", "search")}

    done = await asyncio.to_thread(run_piped, [*LLMOPS, "usage", *period, "--by", "model"], env)
    lines = done.stdout.splitlines()
    assert lines[1].split()[:5] == ["bucket", "model", "events", "input", "tokens"] and "\x1b" not in done.stdout
    assert lines[2].split()[:4] == ["2026-11-01", "00:00", "gpt-4o", "4"]
    total = sum(float(r["cost_total"]) for r in document["rows"])
    assert lines[-1].startswith("2 row(s); 8 event(s); total cost ")
    assert abs(float(lines[-1].split()[-2]) - total) < 1e-9

    code, screen = await asyncio.to_thread(run_in_pty, [*LLMOPS, "usage", *period, "--by", "model"], env)
    assert code == 0 and "\x1b[" in screen and "gpt-4o-mini" in screen

    done = await asyncio.to_thread(run_piped, [*LLMOPS, "usage", "--from", "yesterday"], env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "from" in done.stderr, done.stderr
