"""The writer's decoder (`decode_span`) against the full contract (`decode_interaction` then `span_row`).

Billing's corpus (each field it reads set, alone and in seeded random combinations, to values the contract
takes and refuses, `tests/unit/billing/test_billable.py`), extended with the fields only the trace store
reads (messages, parts, tool calls, error, latencies, session, name, parent, metadata), decoded both ways:
the same accept or reject, the same reason, the same span row.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmops_shared.contract import BadEvent, decode_interaction
from llmops_traces import decoding
from llmops_traces.decoding import decode_span
from llmops_traces.spans import SpanRow, span_row
from tests.unit.billing.test_billable import _ABSENT, IDENTIFIERS, base, dumps, field_corpus
from tests.unit.billing.test_billable import VALUES as BILLED_VALUES

_LONG = "x" * 500_000
TRACES_VALUES: dict[str, list[Any]] = {
    "parent_span_id": [*IDENTIFIERS, _ABSENT],
    "name": [None, "chat", "a" * 256, "a" * 257, "", "x\x01", "a\n", "é" * 256, "é" * 257, 5, _ABSENT],
    "session_id": [None, "s-1", "a" * 256, "a" * 257, "", "\t", "\ud83d\ude00" * 256, _ABSENT],
    "latency_ms": [None, 0, 0.5, 12, 86_400_000, 86_400_000.5, -1, "12", True, 1e400, _ABSENT],
    "time_to_first_token_ms": [None, 0, 3.5, 86_400_001, -0.1, "3", _ABSENT],
    "error": [None, {"type": "RateLimitError", "message": "429", "code": "rate_limit"}, {"type": "t"},
              {"type": ""}, {"type": "t", "message": "m" * 4096}, {"type": "t", "message": "m" * 4097},
              {"type": "t", "message": "a\x00b"}, {"type": "t", "message": "a\x0bb"}, {"type": "t", "message": "\r\n"},
              {"type": "t", "code": ""}, {"type": "t", "extra": 1}, {"message": "m"}, "boom", _ABSENT],
    "input": [None, "", "plain text", "tab\tnew\nline", "bell\x07", "form\x0cfeed", "back\x08space", "x\x7f\x85",
              _LONG, _LONG + "x", [], [{"role": "user"}], [{"role": "user", "content": "hi"}],
              [{"role": "wizard", "content": "hi"}], [{"role": "user", "content": None, "name": None}],
              [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "url": "http://x"}]}],
              [{"role": "user", "content": [{"type": "text", "text": None, "url": None}]}],
              [{"role": "user", "content": [{"type": ""}]}], [{"role": "user", "content": [{"type": "t", "x": 1}]}],
              [{"role": "user", "content": [{"type": "t", "url": "u" * 4097}]}],
              [{"role": "user", "content": []}], [{"role": "user", "content": 5}],
              [{"role": "assistant", "tool_calls": [{"name": "f"}]}],
              [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "name": "f", "arguments": "{}"}]}],
              [{"role": "assistant", "tool_calls": [{"name": "f", "type": "code"}]}],
              [{"role": "assistant", "tool_calls": [{"name": ""}]}],
              [{"role": "assistant", "tool_calls": [{"name": "f"}] * 128}],
              [{"role": "assistant", "tool_calls": [{"name": "f"}] * 129}],
              [{"role": "tool", "content": "r", "tool_call_id": "c1", "name": "lookup"}],
              [{"role": "tool", "tool_call_id": ""}], [{"role": "user", "content": "a\x00"}],
              [{"role": "user", "content": "hi"}] * 1000, [{"role": "user", "content": "hi"}] * 1001,
              [{"role": "user", "content": "hi", "extra": True}], {"role": "user"}, 5, _ABSENT],
    "output": [None, "", "It ships today.", "\ud83d\ude00 é", [{"role": "assistant", "content": "ok"}], [], 3.5,
               "a\x1f", _ABSENT],
    "metadata": [{}, {"k": "v"}, {"guardrails": {"findings": 2, "by_type": {"EMAIL": 1, "PHONE": 1}}},
                 {"guardrails": {"findings": -1, "by_type": ["EMAIL"]}, "source": "x"}, {"guardrails": "none"},
                 {f"k{i}": i for i in range(64)}, {f"k{i}": i for i in range(65)}, {"big": "x" * 16_370},
                 {"big": "x" * 16_400}, {"nested": {"a": [1, 2.5, None, True, "s"]}}, {"k": "a\x01"}, {"k\x02": 1},
                 {"k": "tab\t"}, {"n": 1.0}, {"n": -0.0}, {"n": 10**18}, None, [], "meta", _ABSENT],
}
VALUES = {**BILLED_VALUES, **TRACES_VALUES}


def _outcome(decode: Any, payload: bytes | None) -> tuple[str, Any]:
    try:
        return "ok", decode(payload)
    except BadEvent as exc:
        return "bad", exc.reason


def _contract(payload: bytes | None) -> SpanRow:
    return span_row(decode_interaction(payload), metadata_only=False)


def assert_same(payload: bytes | None) -> str:
    full_kind, full = _outcome(_contract, payload)
    narrow_kind, narrow = _outcome(decode_span, payload)
    assert (narrow_kind, narrow if narrow_kind == "bad" else None) == (
        full_kind, full if full_kind == "bad" else None), (payload[:300] if payload else payload, full, narrow)
    if full_kind == "ok":
        assert narrow == full, payload[:300] if payload else payload
        assert narrow.occurred_at.utcoffset() == full.occurred_at.utcoffset()
    return full_kind


def corpus() -> list[bytes | None]:
    plain = dumps(base())
    latencies = [dumps(base(latency_ms=lat, time_to_first_token_ms=ttft))
                 for lat in (None, 5, 5.0, 100) for ttft in (None, 5, 5.5, 99.9)]
    return field_corpus(VALUES, seed=23, most=6, extra=[*latencies,
        dumps(base(colour="red")),
        plain.replace(b'"app_id":"support-bot"', b'"app_id":"a","app_id":"b"'),  # a duplicate key
        plain.replace(b'"tags":["test"]', b'"tags":["\\ud800"]'),  # a lone surrogate
        plain.replace(b'"tags":["test"]', b'"tags":["\\ud83d\\ude00"]'),  # a pair, escaped
        plain.replace(b'"tags":["test"]', b'"tags":["a\\u0000"]'),
        plain.replace(b'"tags":["test"]', b'"tags":["a\\u000a", "\\u0041"]'),
        plain.replace(b'"tags":["test"]', b'"tags":["a\\\\b", "a\\\\u0001"]'),  # escaped backslashes
        plain.replace(b'"tags":["test"]', b'"tags":["a\\b"]'),
        plain.replace(b'"tags":["test"]', b'"tags":["a\ttab"]'),  # a raw control character in a string
        plain.replace(b'"tags":["test"]', b'"tags":["a\x01"]'),
        plain.replace(b'"output":"It ships today."', b'"output":"It ships \\u00e9"'),
        plain.replace(b"It ships today.", b"It ships \xff today."),  # not UTF-8
        plain.replace(b'"metadata":{', b'"metadata":{"k":1,"k":2,'),
        b'\xef\xbb\xbf' + plain, plain + b" ", plain + b" x", plain[:-1], b" " + plain + b"\n",
    ])


def test_the_writer_s_decoder_takes_refuses_and_rows_as_the_contract_does() -> None:
    outcomes = [assert_same(p) for p in corpus()]
    accepted, refused = outcomes.count("ok"), outcomes.count("bad")
    assert accepted > 250 and refused > 1000, (accepted, refused)  # the corpus has both in numbers


def test_the_fast_path_takes_plain_events_and_leaves_the_rest_to_the_contract() -> None:
    taken = [dumps(base(input=[{"role": "user", "content": [{"type": "text", "text": "a"}]},
                              {"role": "assistant", "tool_calls": [{"name": "f"}]}], latency_ms=12,
                        metadata={"guardrails": {"findings": 1, "by_type": {"EMAIL": 1}}, "k": [1]})),
             dumps(base(status="error", error={"type": "t"}, output=None, usage=None, prompt={"name": "p"}))]
    for payload in taken:
        fast = decoding._fast(payload)
        assert fast is not None and fast == _contract(payload)
    for form in (base(event_id="urn:uuid:0b7c63d4-5a2e-4c1e-9f3a-6d2b8e4f1a90"), base(occurred_at=1764000000),
                 base(app_id="a\n"), base(latency_ms="12"), base(tags=["a\x01"]), base(metadata={"k": "\x00"})):
        assert decoding._fast(dumps(form)) is None


@pytest.mark.parametrize("payload", [None, b"{not json", b"[1]", b'{"schema_version": 2}'])
def test_bad_messages_get_the_contracts_reasons(payload: bytes | None) -> None:
    with pytest.raises(BadEvent) as narrow:
        decode_span(payload)
    with pytest.raises(BadEvent) as full:
        decode_interaction(payload)
    assert narrow.value.reason == full.value.reason
