"""Re-pricing on the real Postgres: costs follow a price correction, rollups stay equal to the ledger."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from llmops_billing import cli
from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.catalogue import load_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.prices import ModelPrice
from llmops_billing.reprice import reprice
from llmops_billing.store.ledger import write_batch
from llmops_billing.store.prices import insert_prices
from llmops_shared.contract import Interaction
from llmops_shared.settings import CommonSettings
from tests.support.billing_rollups import rollups_equal_ledger
from tests.support.events import make_event

pytestmark = pytest.mark.integration

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRICED_AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


async def write_events(pool: asyncpg.Pool, tenant: str, events: list[dict[str, Any]]) -> None:
    rows = [ledger_row(Interaction.model_validate({**e, "tenant_id": tenant}), builtin_catalogue(),
                       priced_at=PRICED_AT) for e in events]
    async with pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None])


async def test_reprice_applies_a_correction_and_keeps_rollups_equal_to_the_ledger(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    october = [make_event(occurred_at=f"2026-10-31T23:{m:02d}:00Z", usage={"input_tokens": 100 + m, "output_tokens": m})
               for m in range(0, 60, 7)]
    november = [make_event(occurred_at=f"2026-11-{d:02d}T{h:02d}:30:00Z", app_id=f"app-{h % 3}",
                           usage={"input_tokens": 1000 * d + h, "cache_read_input_tokens": 100, "output_tokens": 7 * h},
                           prompt={"name": "triage", "version": str(h % 2)},
                           user_id=None if h % 3 == 0 else f"user-{h % 2}",
                           tags=[[], ["a"], ["a", "b"], ["b", "c"]][h % 4])
                for d in range(1, 4) for h in range(0, 24, 5)]
    acme = [make_event(occurred_at="2026-11-02T08:00:00Z", model="acme-chat-2025-01-01", provider="acme-ai",
                       usage={"input_tokens": 50 + i, "output_tokens": 5}) for i in range(3)]
    await write_events(pg_pool, tenant, october + november + acme)
    await rollups_equal_ledger(pg_pool, tenant)
    before = {r["event_id"]: r for r in await pg_pool.fetch("SELECT * FROM usage_ledger WHERE tenant_id = $1", tenant)}
    assert sum(r["unpriced"] for r in before.values()) == 3

    # The correction: this tenant's gpt-4o-mini price changed on 1 November; acme-chat gets a price.
    corrected = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=NOV, tenant_id=tenant,
                           input_per_token=D("0.0000002"), output_per_token=D("0.0000008"),
                           cache_read_per_token=D("0.0000001"), source="correction")
    acme_price = ModelPrice(model="acme-chat", provider="acme-ai", effective_from=EPOCH, tenant_id=tenant,
                            input_per_token=D("0.000001"), output_per_token=D("0.000002"), request_fee=D("0.0001"),
                            source="correction")
    async with pg_pool.acquire() as conn, conn.transaction():
        await insert_prices(conn, prices=[corrected, acme_price])
    catalogue = await load_catalogue(pg_pool, builtin_catalogue())

    dry = await reprice(pg_pool, catalogue, start=datetime(2026, 10, 1, tzinfo=UTC),
                        end=datetime(2026, 12, 1, tzinfo=UTC), tenant_id=tenant, chunk_size=4, dry_run=True)
    assert dry.rows_changed == len(november) + len(acme)
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1 AND unpriced", tenant) == 3

    report = await reprice(pg_pool, catalogue, start=datetime(2026, 10, 1, tzinfo=UTC),
                           end=datetime(2026, 12, 1, tzinfo=UTC), tenant_id=tenant, chunk_size=4)
    assert (report.rows_examined, report.rows_changed) == (len(before), len(november) + len(acme))

    after = {r["event_id"]: r for r in await pg_pool.fetch("SELECT * FROM usage_ledger WHERE tenant_id = $1", tenant)}
    for event_id, row in after.items():
        old = before[event_id]
        if row["occurred_at"] < NOV:
            assert row["cost_total"] == old["cost_total"] and row["price_version"] == old["price_version"]
        elif row["model"] == "gpt-4o-mini":
            uncached = row["input_tokens"] - 100
            assert row["cost_total"] == uncached * D("0.0000002") + 100 * D("0.0000001") + row["output_tokens"] * D(
                "0.0000008")
            assert row["price_version"] == corrected.price_version
        else:
            assert not row["unpriced"] and row["model_key"] == "acme-chat"
            assert old["model_key"] == "acme-chat-2025-01-01"
            assert row["cost_total"] == row["input_tokens"] * D("0.000001") + 5 * D("0.000002") + D("0.0001")
    expected_delta = sum((after[i]["cost_total"] - (before[i]["cost_total"] or 0) for i in after), D(0))
    assert report.delta == expected_delta
    await rollups_equal_ledger(pg_pool, tenant)
    resolved = await pg_pool.fetchrow("SELECT resolved_at, alerted_at FROM unpriced_models WHERE tenant_id = $1",
                                      tenant)
    assert resolved["resolved_at"] is not None and resolved["alerted_at"] is None

    again = await reprice(pg_pool, catalogue, start=datetime(2026, 10, 1, tzinfo=UTC),
                          end=datetime(2026, 12, 1, tzinfo=UTC), tenant_id=tenant)
    assert again.rows_changed == 0
    runs = await pg_pool.fetch("SELECT rows_changed, dry_run, finished_at FROM billing_reprice_runs "
                               "WHERE tenant_id = $1 ORDER BY id", tenant)
    changed = len(november) + len(acme)
    assert [(r["rows_changed"], r["dry_run"]) for r in runs] == [(changed, True), (changed, False), (0, False)]
    assert all(r["finished_at"] is not None for r in runs)


async def test_reprice_with_unchanged_prices_changes_nothing(pg_pool: asyncpg.Pool, tenant: str) -> None:
    events = [make_event(occurred_at="2026-09-15T10:00:00Z", model=model, provider=provider,
                         usage={"input_tokens": 5000, "cache_read_input_tokens": 1000, "cache_write_input_tokens": 500,
                                "output_tokens": 300, "reasoning_tokens": 100})
              for model, provider in (("gpt-4o-mini", "openai"), ("claude-3-7-sonnet-20250219", "anthropic"),
                                      ("gemini-2.5-pro", "gemini"), ("o1", "openai"), ("azure/gpt-4o", None),
                                      ("bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", None))]
    await write_events(pg_pool, tenant, events)
    report = await reprice(pg_pool, builtin_catalogue(), start=datetime(2026, 9, 1, tzinfo=UTC),
                           end=datetime(2026, 10, 1, tzinfo=UTC), tenant_id=tenant)
    assert (report.rows_examined, report.rows_changed) == (6, 0)


def test_the_cli_imports_a_price_file_and_reprices(stack: CommonSettings, tmp_path: Path, tenant: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from llmops_shared import db

    model = f"clitest-{uuid.uuid4().hex[:8]}"
    price_file = tmp_path / "prices.json"
    price_file.write_text(json.dumps({model: {"litellm_provider": "openai", "mode": "chat",
                                              "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}}))

    async def write() -> None:
        pool = await db.create_pool(stack.database_url, max_size=1)
        try:
            await write_events(pool, tenant, [make_event(occurred_at="2026-08-10T00:00:00Z", model=model,
                                                         usage={"input_tokens": 10, "output_tokens": 1})])
        finally:
            await pool.close()

    async def cost() -> Any:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return await conn.fetchval("SELECT cost_total FROM usage_ledger WHERE tenant_id = $1", tenant)
        finally:
            await conn.close()

    asyncio.run(write())
    assert asyncio.run(cost()) is None  # unknown model: unpriced
    assert cli.main(["prices", "import", str(price_file), "--effective-from", "2026-01-01T00:00:00Z"]) == 0
    assert "added 1 price row(s)" in capsys.readouterr().out
    assert cli.main(["prices", "import", str(price_file), "--effective-from", "2026-01-01T00:00:00Z"]) == 0
    assert "1 unchanged" in capsys.readouterr().out  # importing again adds nothing
    assert cli.main(["reprice", "--from", "2026-08-01T00:00:00Z", "--to", "2026-09-01T00:00:00Z",
                     "--tenant", tenant]) == 0
    assert "changed 1" in capsys.readouterr().out
    assert asyncio.run(cost()) == D("0.000028")
    assert cli.main(["reprice", "--from", "2026-09-01T00:00:00Z", "--to", "2026-08-01T00:00:00Z"]) == 2
    assert capsys.readouterr().err == ("llmops billing: error: --to must be after --from "
                                       "(fix: see `llmops billing --help`)\n")  # one line, no traceback


async def test_reprice_of_every_tenant_covers_each_of_them(pg_pool: asyncpg.Pool) -> None:
    tenants = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    march = datetime(2031, 3, 1, tzinfo=UTC)
    for tenant in tenants:
        await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        await write_events(pg_pool, tenant, [
            make_event(occurred_at=f"2031-03-{d:02d}T12:00:00Z", usage={"input_tokens": 100 * d, "output_tokens": d})
            for d in range(1, 29, 3)])
    async with pg_pool.acquire() as conn, conn.transaction():
        await insert_prices(conn, prices=[
            ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=march, tenant_id=t, source="fix",
                       input_per_token=D("0.000001"), output_per_token=D("0.000002")) for t in tenants])
    catalogue = await load_catalogue(pg_pool, builtin_catalogue())
    report = await reprice(pg_pool, catalogue, start=march, end=datetime(2031, 4, 1, tzinfo=UTC), chunk_size=3)
    assert (report.rows_examined, report.rows_changed) == (20, 20)
    for tenant in tenants:
        await rollups_equal_ledger(pg_pool, tenant)
        total = await pg_pool.fetchval("SELECT sum(cost_total) FROM usage_ledger WHERE tenant_id = $1", tenant)
        assert total == sum((100 * d * D("0.000001") + d * D("0.000002") for d in range(1, 29, 3)), D(0))
