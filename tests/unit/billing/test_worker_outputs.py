"""The worker's per-event Python gives exactly what it gave at 475b9d9 (before the per-event CPU pass of
issue 17, item 3, branch `billing9`): for a corpus of valid and invalid events (`test_billable.corpus`, ~4,000
payloads: every billed field in the forms the contract takes and refuses) and the billing benchmark's mix
(six models of four providers, users, prompts, an unknown model, a span that is not billed), each payload's
decode outcome (accepted or its `BadEvent` reason), its ledger row (every column), its staging record (what
the COPY sends) and its `billing.usage` message (key and JSON bytes), as the worker's `prepare` builds them.

The expected answers are digests (`data/worker_outputs.sha256`) written by this module run on the base tree:

    PYTHONPATH=<475b9d9's services/*, shared> python -m tests.unit.billing.test_worker_outputs --write

so any change to a decoded value, a priced amount, a record's bytes or a message's bytes fails here, with the
index of the first payload that differs.
"""

from __future__ import annotations

import hashlib
import random
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from llmops_billing.billable import decode_billable
from llmops_billing.ledger import COLUMNS
from llmops_billing.worker import Priced, _priced
from llmops_shared.contract import BadEvent
from tests.support.events import make_event
from tests.unit.billing.test_billable import corpus
from tests.unit.billing.test_ledger import CATALOGUE, PRICED_AT

DIGESTS = Path(__file__).parent / "data" / "worker_outputs.sha256"
KEY = b"pseudonym-key-for-the-outputs-test"
MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("o3-mini", "openai"), ("mystery-model", "openai"),
          ("claude-sonnet-4-20250514", "anthropic"), ("gemini-2.5-pro", "gemini"), ("deepseek-chat", "deepseek")]


def mix() -> list[bytes]:
    """The benchmark's mix (`bench/billing_throughput.realistic_events`), deterministic, with some variety more."""
    out = []
    for i in range(700):
        model, provider = MODELS[i % len(MODELS)]
        event = {**make_event(
            event_id=str(uuid.UUID(int=i + 1)), occurred_at=datetime(2026, 11, 24, i % 24, i % 60, tzinfo=UTC),
            app_id=f"app-{i % 7}", trace_id=f"tr-{i // 4:08d}", model=model, provider=provider,
            user_id=None if i % 11 == 0 else f"user-{i % 101}",
            prompt={"name": f"prompt-{i % 5}", "version": str(i % 3)},
            usage={"input_tokens": 180 + i % 50, "output_tokens": 40 + i % 30, "cache_read_input_tokens": 128,
                   "reasoning_tokens": i % 9}), "tenant_id": f"tenant-{i % 3}"}
        if i % 13 == 0:
            event["tags"] = ["ops@example.com", f"team-{i % 4}"]
        if i % 17 == 0:
            event["span_kind"] = "tool"
        if i % 19 == 0:
            event["usage"] = None
        out.append(orjson.dumps(event))
    return out


def outcome(payload: bytes | None) -> str:
    """One payload's outputs as the worker builds them, in a canonical text (`repr` of each value)."""
    try:
        event = decode_billable(payload)
    except BadEvent as exc:
        return f"bad {exc.reason}"
    priced = _priced(event, CATALOGUE, PRICED_AT, KEY)
    if not isinstance(priced, Priced):
        return "pricing raised"
    if priced.row is None:
        return "not billed"
    assert priced.staged is not None and priced.staged.row is priced.row and priced.staged.message is not None
    row: dict[str, Any] = {name: getattr(priced.row, name) for name in COLUMNS}
    message = priced.staged.message
    return repr((row, list(priced.staged.record), message.tenant_id, message.event_id, message.key, message.value))


@contextmanager
def seeded_uuid4() -> Iterator[None]:
    """`make_event` draws its trace and span ids from `uuid.uuid4`: seeded here, so the payloads repeat."""
    rng = random.Random(20261205)
    real = uuid.uuid4
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        uuid.uuid4 = real


def payloads() -> list[bytes | None]:
    with seeded_uuid4():
        return [*corpus(), *mix()]


def digests() -> list[str]:
    return [hashlib.sha256(outcome(p).encode()).hexdigest()[:16] for p in payloads()]


def test_each_payload_decodes_prices_stages_and_serialises_as_at_the_base() -> None:
    expected = DIGESTS.read_text().split()
    got = digests()
    assert len(got) == len(expected)
    differ = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not differ, f"{len(differ)} payloads differ from the base, the first #{differ[0]}"


def test_the_corpus_has_accepted_refused_billed_and_unpriced_payloads() -> None:
    outcomes = [outcome(p) for p in payloads()]
    assert sum(o.startswith("bad ") for o in outcomes) > 1000
    assert sum(o.startswith("(") for o in outcomes) > 900
    assert "not billed" in outcomes
    assert sum("'unpriced': True" in o for o in outcomes) > 100


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    DIGESTS.write_text("\n".join(digests()) + "\n")
    print(f"wrote {DIGESTS}")
