"""`store.findings.insert_findings` stores exactly the rows it is given, every column, whatever the order and mix of
events (it sends each run of one event's rows with the event's columns once, `split_rows`, and each finding column as
one array literal written by orjson, `array_literal`), and exactly what the statement before it
(`insert_findings_arrays`, one array parameter per column) stores."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from llmops_guardrails import screening
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.pii_eval import load_samples
from llmops_guardrails.policy import default_policy
from llmops_guardrails.screening import FindingRow
from llmops_guardrails.store.findings import array_literal, insert_findings, insert_findings_arrays, split_rows
from llmops_shared.contract import Interaction

pytestmark = pytest.mark.integration

PII_DATA = Path(__file__).resolve().parents[3].parent / "shared/data/pii/synth_dataset_v2.json"
COLUMNS = ("event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector, entity_type, "
           "rule_id, start_offset, end_offset, score, value_hash, policy_version")


def rows_of(tenant: str) -> list[FindingRow]:
    recent = datetime(2026, 11, 30, 8, 15, 2, 654321, tzinfo=UTC)  # fixed instants: no row depends on the clock
    old = datetime(2019, 5, 5, 12, 30, 1, 123456, tzinfo=UTC)
    shared_id, other = uuid.uuid4(), uuid.uuid4()
    rows: list[FindingRow] = []
    # the same event id under two tenants, two months, an event whose rows come in two runs, None columns
    for event_id, ten, app, at, version, numbers in (
            (shared_id, tenant, "bot", recent, "t1", range(3)),
            (shared_id, f"{tenant}-b", "bot/eu", recent, "t2", range(2)),
            (other, tenant, "bot", old, "default", range(1)),
            (shared_id, tenant, "bot", recent, "t1", range(3, 5))):
        for n in numbers:
            rows.append((event_id, n, ten, app, at, None if n % 2 else n, "input" if n % 3 else "output",
                         None if n == 4 else "user", "pii", f"KIND_{n}", None if n == 1 else f"rule-{n}", n, n + 7,
                         0.5 + n / 10, f"hash-{n}-{ten}", version))
    return rows


async def test_every_row_is_stored_as_given_and_only_once(pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = rows_of(tenant)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == len(rows)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == 0
        assert await insert_findings(conn, rows=rows[2:5]) == 0
    stored = await pg_pool.fetch(f"SELECT {COLUMNS} FROM guardrail_findings WHERE tenant_id = ANY($1)",  # noqa: S608
                                 [tenant, f"{tenant}-b"])
    assert sorted(tuple(r) for r in stored) == sorted(rows)


PLAIN_TEXTS = ["émigré ✓ 😀 𝔘", "\u2028\u2029 separators", "", "x" * 300, "{a,b}", " spaced ", "NULL", "null", "'; --",
               "\x7f\u0085 del", "[x]"]
ESCAPED_TEXTS = ['say "hi"', "back\\slash", "tab\tnew\nline\rcr", "\u001f unit separator", "\\u0041 not an escape"]


def crafted_rows(tenant: str, texts: list[str]) -> list[FindingRow]:
    """Rows with every value shape a literal could get wrong: None columns, offsets and microseconds, far years, floats
    that print long or in exponent form, and `texts` in every text column."""
    zones = [timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
             timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-45))]
    instants = [datetime(2026, 3, 1, 0, 0, 0, 0, tzinfo=zones[0]),
                datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=zones[1]),
                datetime(1, 1, 2, 0, 0, tzinfo=UTC), datetime(9999, 12, 30, 23, 59, 59, 1, tzinfo=zones[2]),
                datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=zones[3]),
                datetime(2026, 12, 5, 9, 41, 7, 2345, tzinfo=UTC)]
    scores = [0.0, 1.0, 0.1 + 0.2, 1e-7, 5e-324, 1 / 3, 0.9999999999999999, 2.5e-5, 0.85]
    rows: list[FindingRow] = []
    for e, at in enumerate(instants):
        event_id = uuid.uuid4()
        for n in range(len(texts) + 2):
            t = texts[(n + e) % len(texts)]
            rows.append((event_id, n, tenant, f"app/{e}", at, None if n % 3 == 0 else n * 1000, t or "input",
                         None if n % 4 == 1 else t, "pii", t or "KIND", None if n % 2 else t, n, 2**31 - 1 - n,
                         scores[(n + e) % len(scores)], t + str(n), t if e % 2 else "default"))
    return rows


def engine_rows(engine: PolicyEngine, tenant: str, n: int) -> list[FindingRow]:
    """Rows of the engine's own findings on the PII set's texts (events like the pipeline bench's name-dense ones)."""
    texts = [s.text for s in load_samples(PII_DATA)]
    events = []
    for i in range(n):
        user = " ".join(texts[(3 * i + k) % len(texts)] for k in range(3))
        events.append(Interaction.model_validate({
            "event_id": str(uuid.uuid4()), "occurred_at": f"2026-11-{1 + i % 28:02d}T10:{i % 60:02d}:00.{i:06d}+01:00",
            "tenant_id": tenant, "app_id": f"app-{i % 3}", "trace_id": f"tr-{i}", "span_id": "s",
            "input": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": user}],
            "output": texts[(7 * i) % len(texts)]}))
    policy = default_policy()
    scans = engine.scan_many(events, policy)
    return [row for event, scan in zip(events, scans, strict=True)
            for row in screening.finding_rows(event, scan, f"t{event.app_id[-1]}")]


async def stored_both_ways(pool: asyncpg.Pool, tenant: str, rows: list[FindingRow]) -> None:
    """`rows` stored by `insert_findings` and, under another tenant, by `insert_findings_arrays`: the same rows, every
    column as stored (and the score and time as Postgres prints them), each row as given, and each only once."""
    other = f"{tenant}-arrays"
    reference = [(*r[:2], other, *r[3:]) for r in rows]
    async with pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == len(rows)
        assert await insert_findings_arrays(conn, rows=reference) == len(rows)
    async with pool.acquire() as conn, conn.transaction():  # idempotent both ways: each path sees the other's rows
        assert await insert_findings(conn, rows=reference) == 0
        assert await insert_findings_arrays(conn, rows=rows) == 0
    stored = await pool.fetch(
        f"SELECT {COLUMNS}, score::text AS score_text, occurred_at::text AS at_text "  # noqa: S608
        "FROM guardrail_findings WHERE tenant_id = ANY($1) ORDER BY event_id, finding_no, tenant_id", [tenant, other])
    assert len(stored) == 2 * len(rows)
    for from_literals, from_arrays in zip(stored[0::2], stored[1::2], strict=True):
        assert (from_literals["tenant_id"], from_arrays["tenant_id"]) == (tenant, other)
        assert {**from_literals, "tenant_id": other} == dict(from_arrays)
    as_given = {(r[0], r[1]): r for r in rows}
    assert all(tuple(r)[:16] == as_given[(r["event_id"], r["finding_no"])] for r in stored[0::2])


async def test_the_literals_store_what_the_column_arrays_stored(pg_pool: asyncpg.Pool, tenant: str,
                                                                guardrails_engine: PolicyEngine) -> None:
    """The engine's findings on name-dense events and crafted rows, all sent as literals (nothing to escape): stored as
    the statement before stored them."""
    rows = [*engine_rows(guardrails_engine, tenant, 120), *crafted_rows(tenant, PLAIN_TEXTS)]
    assert len(rows) > 500
    assert all(array_literal(column) is not None for column in split_rows(rows)[1])
    await stored_both_ways(pg_pool, tenant, rows)


async def test_rows_with_escapes_go_as_arrays_and_are_stored_alike(pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = crafted_rows(tenant, ESCAPED_TEXTS)
    assert None in [array_literal(column) for column in split_rows(rows)[1]]
    await stored_both_ways(pg_pool, tenant, rows)


async def test_array_literals_read_back_as_their_values(pg_pool: asyncpg.Pool) -> None:
    """Random strings of the characters a literal treats specially (braces, commas, quotes, spaces, NULL), numbers and
    None: every literal orjson writes reads back in Postgres as the values, and one with an escape is never sent."""
    rng = random.Random(22)
    alphabet = ["{", "}", ",", " ", "\t", '"', "\\", "NULL", "null", "a", "é", "😀", "'", "[", "]", "\u3000"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    texts += [None] * 50
    rng.shuffle(texts)
    sent = 0
    for start in range(0, len(texts), 4):
        chunk = texts[start:start + 4]
        literal = array_literal(chunk)
        if literal is None:
            assert any(t is not None and ('"' in t or "\\" in t or "\t" in t) for t in chunk)
            continue
        sent += 1
        assert await pg_pool.fetchval("SELECT $1::text::text[]", literal) == chunk
    floats = [rng.random() * 10 ** rng.randint(-12, 0) for _ in range(2000)] + [0.0, 1.0, 5e-324, 1e-7, 0.1 + 0.2]
    ints = [rng.randint(-(2**31), 2**31 - 1) for _ in range(2000)] + [None, 0]
    assert await pg_pool.fetchval("SELECT $1::text::float8[]", array_literal(floats)) == floats
    assert await pg_pool.fetchval("SELECT $1::text::int[]", array_literal(ints)) == ints
    assert sent >= 100


async def test_a_value_orjson_refuses_fails_as_it_did(pg_pool: asyncpg.Pool, tenant: str) -> None:
    """A value orjson refuses (an integer past 64 bits) sends the rows as column arrays, as before: the error the
    statement before the literals gives, not another."""
    row = crafted_rows(tenant, PLAIN_TEXTS)[0]
    bad = (*row[:11], 2**70, *row[12:])
    assert array_literal([2**70]) is None
    errors = []
    async with pg_pool.acquire() as conn:
        for insert in (insert_findings_arrays, insert_findings):
            with pytest.raises(Exception) as caught:
                async with conn.transaction():
                    await insert(conn, rows=[bad])
            errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
