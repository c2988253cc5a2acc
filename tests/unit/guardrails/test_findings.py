from __future__ import annotations

import pytest

from llmops_guardrails.engine import Segment
from llmops_guardrails.findings import Detector, Finding, Hit, Side, finding_of, plain_place, value_hash


def test_value_hash_is_a_keyed_hmac() -> None:
    a = value_hash("jane@example.com", "salt-1")
    assert a == value_hash("jane@example.com", b"salt-1")
    assert a != value_hash("jane@example.com", "salt-2")
    assert a != value_hash("john@example.com", "salt-1")
    assert len(a) == 64 and "jane" not in a


@pytest.mark.parametrize("score", [-0.1, 1.01])
def test_scores_outside_unit_interval_are_refused(score: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        Hit(Detector.PII, "EMAIL_ADDRESS", 0, 3, score)


def test_value_hash_from_the_keyed_copy_is_the_plain_hmac() -> None:
    import hashlib
    import hmac

    values = ["", "jane@example.com", "Анна Берг", "\ud800 lone surrogate", "x" * 5000, "jane@example.com"]
    for salt in ("salt-1", b"salt-2", "", "k" * 63, "k" * 64, "k" * 65, "é" * 40, "k" * 200):
        key = salt.encode() if isinstance(salt, str) else salt
        for value in values * 2:  # the keyed object is reused, never updated itself
            assert value_hash(value, salt) == hmac.new(key, value.encode("utf-8", "surrogatepass"),
                                                       hashlib.sha256).hexdigest()


_Place = tuple[Side, int | None, int | None, int | None, str]


def _validated(hit: Hit, place: _Place, digest: str) -> Finding:
    side, message_index, part_index, tool_call_index, role = place
    return Finding(detector=hit.detector, kind=hit.kind, side=side, message_index=message_index,
                   part_index=part_index, tool_call_index=tool_call_index, role=role, start=hit.start, end=hit.end,
                   score=hit.score, value_hash=digest, signals=hit.signals)


_HITS = [Hit(Detector.PII, "PERSON", 3, 9, 0.85), Hit(Detector.SECRETS, "jwt", 0, 40, 1.0),
         Hit(Detector.INJECTION, "prompt_injection", 0, 0, 0.0, ("instruction_override", "learned_model")),
         Hit(Detector.PII, "PHONE_NUMBER", 2, 5, 1),  # an int score: validation makes it 1.0
         Hit(Detector.TERMS, "banned", 1, 2, 0.5, ["a", "b"]),  # type: ignore[arg-type]  # a list of signals
         Hit("pii", "EMAIL_ADDRESS", 1, 2, 0.5),  # type: ignore[arg-type]  # a plain string detector
         Hit(Detector.OUTPUT, "system_prompt_leak", True, 7, 0.9)]  # a bool start
_PLACES: list[_Place] = [("input", None, None, None, "user"), ("output", 2, None, None, "assistant"),
                         ("input", 0, 1, None, "tool"), ("input", 1, None, 0, "assistant"),
                         ("input", True, None, None, "user")]  # a bool index


@pytest.mark.parametrize("hit", _HITS)
@pytest.mark.parametrize("place", _PLACES)
def test_a_finding_made_from_a_hit_is_the_validated_finding(hit: Hit, place: _Place) -> None:
    where = Segment(*place, "text")
    fast, slow = finding_of(hit, where, "ab" * 32), _validated(hit, place, "ab" * 32)
    assert fast == slow and hash(fast) == hash(slow)
    assert fast.model_dump() == slow.model_dump() and fast.model_dump_json() == slow.model_dump_json()
    assert [type(v) for v in fast.__dict__.values()] == [type(v) for v in slow.__dict__.values()]
    assert list(fast.__dict__) == list(slow.__dict__)
    assert fast.model_fields_set == slow.model_fields_set and fast.model_extra == slow.model_extra
    assert fast.model_copy(update={"kind": "X"}).kind == "X" and fast.kind == hit.kind
    assert fast.model_fields_set is not finding_of(hit, where, "ab" * 32).model_fields_set
    checked = finding_of(hit, where, "ab" * 32, plain_place(where))  # the engine checks the place once per text
    assert checked == slow and checked.model_dump_json() == slow.model_dump_json()
    assert [type(v) for v in checked.__dict__.values()] == [type(v) for v in slow.__dict__.values()]


def test_a_finding_refuses_what_validation_refuses() -> None:
    with pytest.raises(ValueError):
        finding_of(Hit(Detector.PII, "PERSON", 0, 1, 0.5), Segment("sideways", None, None, None, "user", ""),  # type: ignore[arg-type]
                   "")


def test_split_rows_sends_each_events_columns_once_and_rebuilds_every_row() -> None:
    import uuid
    from datetime import UTC, datetime

    from llmops_guardrails.store.findings import split_rows

    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    at = datetime(2026, 1, 2, tzinfo=UTC)

    def row(event: uuid.UUID, n: int, tenant: str = "t") -> tuple:  # type: ignore[type-arg]
        return (event, n, tenant, "app", at, n, "input", "user", "pii", "PERSON", None, n, n + 1, 0.9, f"h{n}", "v")

    rows = [row(a, 0), row(a, 1), row(a, 0, "u"), row(b, 0), row(a, 2)]
    events, findings = split_rows(rows)
    assert events == [[a, a, b, a], ["t", "u", "t", "t"], ["app"] * 4, [at] * 4, ["v"] * 4]
    assert findings[-1] == [1, 1, 2, 3, 4]
    rebuilt = []
    for i, ev in enumerate(findings[-1]):
        e = [column[ev - 1] for column in events]
        f = [column[i] for column in findings[:-1]]
        rebuilt.append((e[0], f[0], e[1], e[2], e[3], *f[1:], e[4]))
    assert rebuilt == rows


def test_array_literal_is_orjsons_array_with_braces_or_none_when_anything_was_escaped() -> None:
    from llmops_guardrails.store.findings import array_literal

    assert array_literal([1, None, 3]) == "{1,null,3}"
    assert array_literal([0.1 + 0.2, 1e-7, 1.0]) == "{0.30000000000000004,1e-7,1.0}"
    assert array_literal(["a b", "{x,y}", "NULL", "", "é😀", None]) == '{"a b","{x,y}","NULL","","é😀",null}'
    for escaped in ('say "hi"', "back\\slash", "new\nline", "tab\t", "\x00", "\x1f", "\ud800"):
        assert array_literal(["ok", escaped]) is None, escaped
    assert array_literal([2**70]) is None
