"""Billing's narrow decoder (`decode_billable`) against the full contract (`decode_interaction`).

A corpus of valid and invalid events (each billed field set, alone and in seeded random combinations, to
values the contract takes and values it refuses, in the forms the fast path handles and the ones it leaves
to pydantic), decoded both ways: the same accept or reject, the same reason, the same values of every
billed field, and the same ledger row.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from llmops_billing import billable
from llmops_billing.billable import BILLED_FIELDS, Billable, decode_billable
from llmops_billing.ledger import ledger_row
from llmops_shared.contract import BadEvent, Interaction, Usage, decode_interaction
from tests.support.events import make_event
from tests.unit.billing.test_ledger import CATALOGUE, PRICED_AT

_UUID = "0b7c63d4-5a2e-4c1e-9f3a-6d2b8e4f1a90"
_ABSENT = object()

IDENTIFIERS = ["a", "gpt-4o-mini", "a" * 128, "a" * 129, "", "-a", "a b", "a\n", "\na", "é", "a/b:c@d.e_f",
               "Z9", None, 5, True, ["a"]]
VALUES: dict[str, list[Any]] = {
    "event_id": [_UUID, _UUID.upper(), _UUID.replace("-", ""), f"urn:uuid:{_UUID}", "{" + _UUID + "}",
                 _UUID + "\n", " " + _UUID, _UUID[:-1], "not-a-uuid", "", None, 123, _ABSENT],
    "occurred_at": ["2026-11-24T09:00:00Z", "2026-11-24T09:00:00+02:00", "2026-11-24T09:00:00-05:30",
                    "2026-11-24T09:00:00.123Z", "2026-11-24T09:00:00.123456+00:00", "2026-11-24T09:00:00.1234567Z",
                    "2026-11-24T09:00:00", "2026-11-24 09:00:00Z", "2026-11-24t09:00:00z", "2026-11-24",
                    "2026-11-24T09:00Z", "2026-11-24T09:00:00+0200", "2026-11-24T09:00:00+24:00",
                    "2026-11-24T09:00:00+14:00", "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z",
                    "2026-11-24T23:59:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                    "2026-11-24T09:00:00.Z", "2026-11-24T09:00:00Z\n", 1764000000, 1764000000.5, "1764000000",
                    "", None, _ABSENT],
    "schema_version": [1, 2, 0, "1", 1.0, True, None, _ABSENT],
    "tenant_id": [*IDENTIFIERS, _ABSENT],
    "app_id": IDENTIFIERS,
    "environment": [*IDENTIFIERS, _ABSENT],
    "trace_id": IDENTIFIERS,
    "span_id": IDENTIFIERS,
    "provider": [*IDENTIFIERS, _ABSENT],
    "model": [*IDENTIFIERS, _ABSENT],
    "response_model": [*IDENTIFIERS, _ABSENT],
    "span_kind": ["llm", "embedding", "chain", "tool", "retriever", "agent", "LLM", "banana", "", None, 1, _ABSENT],
    "status": ["ok", "error", "OK", "", None, 0, _ABSENT],
    "error": [{"type": "RateLimitError", "message": "429"}, None, _ABSENT],
    "usage": [None, {}, {"input_tokens": 20, "output_tokens": 5},
              {"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 60,
               "cache_write_input_tokens": 40, "reasoning_tokens": 40},
              {"input_tokens": 10, "cache_read_input_tokens": 6, "cache_write_input_tokens": 5},
              {"output_tokens": 1, "reasoning_tokens": 2}, {"input_tokens": -1}, {"input_tokens": "12"},
              {"input_tokens": 1.0}, {"input_tokens": 1.5}, {"input_tokens": True}, {"input_tokens": 100_000_000},
              {"input_tokens": 100_000_001}, {"input_tokens": 2**70}, {"input_tokens": None}, {"tokens": 5},
              [], "20", _ABSENT],
    "prompt": [None, {"name": "support"}, {"name": "support", "version": "7", "variant": "b"}, {"name": ""},
               {}, {"name": "p", "version": 3}, {"name": "p", "colour": "red"}, {"name": "a b"}, "support",
               _ABSENT],
    "user_id": [None, "u", "user@example.com", "a" * 256, "a" * 257, "", "x\x01", "a\n", "\t", "\ud83d\ude00",
                5, _ABSENT],
    "tags": [[], ["a"], ["a"] * 64, ["a"] * 65, [""], ["x" * 200], ["x" * 201], ["a\x00"], ["a\n", "b\tc"],
             ["ops@example.com"], None, "a", [1], _ABSENT],
}


def base(**overrides: Any) -> dict[str, Any]:
    event = {**make_event(event_id=_UUID, occurred_at="2026-11-24T09:00:00Z"), "tenant_id": "acme"}
    for name, value in overrides.items():
        if value is _ABSENT:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def dumps(event: dict[str, Any]) -> bytes:
    """orjson's wire form; the standard library's (escaped) for what orjson refuses (huge ints, surrogates)."""
    try:
        return orjson.dumps(event)
    except TypeError:
        return json.dumps(event).encode()


def _outcome(decode: Any, payload: bytes | None) -> tuple[str, Any]:
    try:
        return "ok", decode(payload)
    except BadEvent as exc:
        return "bad", exc.reason


def _values(event: Interaction | Billable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in BILLED_FIELDS:
        value = getattr(event, name)
        if name == "usage" and value is not None:
            value = tuple(getattr(value, f) for f in Usage.model_fields)
        elif name == "prompt" and value is not None:
            value = (value.name, value.version, value.variant)
        out[name] = value
    out["utcoffset"] = event.occurred_at.utcoffset()
    out["kinds"] = (type(event.span_kind), type(event.status), type(event.event_id))
    return out


def assert_same(payload: bytes | None) -> str:
    full_kind, full = _outcome(decode_interaction, payload)
    narrow_kind, narrow = _outcome(decode_billable, payload)
    refused = (narrow if narrow_kind == "bad" else None, full if full_kind == "bad" else None)
    assert (narrow_kind, refused[0]) == (full_kind, refused[1]), (payload, full, narrow)
    if full_kind == "ok":
        assert _values(narrow) == _values(full), payload
        assert ledger_row(narrow, CATALOGUE, priced_at=PRICED_AT) == ledger_row(full, CATALOGUE, priced_at=PRICED_AT)
    return full_kind


def field_corpus(values: dict[str, list[Any]], *, extra: list[bytes | None], seed: int, most: int
                 ) -> list[bytes | None]:
    """Payloads that are not an event, the base event, the base with each field of `values` set to each of its
    values, status and error together each way, `extra`, then 3,000 seeded combinations of 2 to `most` fields
    (the trace store's decoder test builds its corpus the same way, over more fields)."""
    payloads: list[bytes | None] = [None, b"", b"{not json", b"[1, 2]", b"null", b"17", b'"event"', b"{}"]
    payloads.append(dumps(base()))
    payloads += [dumps(base(**{name: value})) for name, choices in values.items() for value in choices]
    payloads += [dumps(base(status=s, error=e)) for s in ("ok", "error", _ABSENT)
                 for e in ({"type": "Timeout"}, None, _ABSENT)]
    payloads += extra
    rng = random.Random(seed)
    names = list(values)
    for _ in range(3000):
        chosen = rng.sample(names, rng.randint(2, most))
        payloads.append(dumps(base(**{name: rng.choice(values[name]) for name in chosen})))
    return payloads


def corpus() -> list[bytes | None]:
    return field_corpus(VALUES, seed=17, most=5, extra=[
        dumps(base(colour="red")),  # an unknown top-level field
        dumps(base(schema_version=2, brand_new_field=1)),
        dumps(base(input=None, output=None, metadata={}, tags=[])),
        dumps(base()).replace(b'"app_id":"support-bot"', b'"app_id":"a","app_id":"b"'),  # duplicate key
        dumps(base()).replace(b'"app_id":"support-bot"', b'"app_id":"x","app_id":""'),
        dumps(base()).replace(b'"tags":["test"]', b'"tags":["\\ud800"]'),  # a lone surrogate
        dumps(base()).replace(b'"tags":["test"]', b'"tags":["a\\u0000"]'),
        dumps(base()).replace(b'"tags":["test"]', b'"tags":["a\\n"]'),
        dumps(base()) + b" ",
        dumps(base()) + b" x",
        dumps(base())[:-1],
        dumps(base()).replace(b'"output":"It ships today."', b'"output":"It ships \\u00e9"'),
        b'\xef\xbb\xbf' + dumps(base()),  # a byte-order mark
        dumps(base()).replace(b"It ships today.", b"It ships \xff today."),  # not UTF-8
    ])


def test_the_narrow_decoder_takes_refuses_and_values_as_the_contract_does() -> None:
    outcomes = [assert_same(p) for p in corpus()]
    accepted, refused = outcomes.count("ok"), outcomes.count("bad")
    assert accepted > 250 and refused > 1000, (accepted, refused)  # the corpus has both in numbers


def test_the_fast_path_takes_the_plain_forms_and_leaves_the_rest_to_pydantic() -> None:
    plain = dumps(base(occurred_at="2026-11-24T09:00:00.5+02:00",
                              prompt={"name": "p", "version": "1"}, user_id="u-1", tags=["a", "b"]))
    fast = billable._fast(plain)
    assert fast is not None and _values(fast) == _values(decode_interaction(plain))
    for form in (base(event_id=f"urn:uuid:{_UUID}"), base(occurred_at=1764000000), base(app_id="a\n"),
                 base(usage={"input_tokens": 1, "cache_read_input_tokens": 2})):
        assert billable._fast(dumps(form)) is None


def test_an_event_bad_only_in_a_field_billing_does_not_read_is_billed() -> None:
    """The documented difference: guardrails dead-letters it, billing bills it (the ingest API refuses it)."""
    for patch in ({"input": [{"role": "wizard"}]}, {"latency_ms": -1}, {"metadata": {"k": "v\x00"}},
                  {"status": "error", "error": {"type": ""}}, {"latency_ms": 5, "time_to_first_token_ms": 9}):
        payload = dumps(base(**patch))
        assert _outcome(decode_interaction, payload)[0] == "bad"
        assert decode_billable(payload).event_id == uuid.UUID(_UUID)


def test_a_decoded_event_prices_like_the_contracts() -> None:
    payload = dumps(base(occurred_at=datetime(2026, 11, 24, 9, tzinfo=UTC).isoformat(), user_id="ann@x.io",
                                tags=["ops@example.com"], usage={"input_tokens": 1000, "output_tokens": 10}))
    row = ledger_row(decode_billable(payload), CATALOGUE, priced_at=PRICED_AT)
    assert row is not None and row.cost_total is not None and row.cost_total > 0
    assert row.user_id is not None and row.user_id.startswith("u_") and row.tags == ("[EMAIL_ADDRESS]",)


@pytest.mark.parametrize("payload", [None, b"{not json", b"[1]"])
def test_bad_messages_get_the_contracts_reasons(payload: bytes | None) -> None:
    with pytest.raises(BadEvent) as narrow:
        decode_billable(payload)
    with pytest.raises(BadEvent) as full:
        decode_interaction(payload)
    assert narrow.value.reason == full.value.reason


def test_the_fast_path_remembers_only_values_it_found_good_and_never_an_events_own_ids() -> None:
    known = billable._Known(billable._IDS, 8, limit=4)
    assert known.all_match(["tenant-a", "app-1"], ["trace-1", "span-1"])
    assert known.good == {"tenant-a", "app-1"}  # the trace and span ids are checked, not remembered
    assert not known.all_match(["tenant-a", "app-1"], ["bad id"])  # known values do not excuse the others
    assert not known.all_match(["app-1", "toolongvalue"])  # over the length limit
    assert not known.all_match(["app-1", ""]) and not known.all_match(["-lead"])
    assert known.good == {"tenant-a", "app-1"}  # nothing of a refused list is remembered
    assert known.all_match(["a", "b", "c"])  # full: emptied, then these
    assert known.good == {"a", "b", "c"}
    # Through the decoder: a tenant seen in a good event does not let a bad one through.
    good = {**make_event(app_id="app-remembered"), "tenant_id": "tenant-remembered"}
    assert decode_billable(orjson.dumps(good)).tenant_id == "tenant-remembered"
    with pytest.raises(BadEvent):
        decode_billable(orjson.dumps({**good, "trace_id": "no spaces allowed"}))
    with pytest.raises(BadEvent):
        decode_billable(orjson.dumps({**good, "user_id": "bell\x07"}))
