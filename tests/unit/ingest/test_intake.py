from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from llmops_ingest.intake import BodyError, TimeWindow, parse_body, validate_items
from tests.support.events import make_event


def test_a_single_event_body_is_one_item() -> None:
    items, batch = parse_body(orjson.dumps(make_event()), max_events=10)
    assert len(items) == 1 and not batch


def test_a_batch_body_gives_its_items() -> None:
    items, batch = parse_body(orjson.dumps({"interactions": [make_event(), make_event()]}), max_events=10)
    assert len(items) == 2 and batch


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "empty body"),
        (b"{oops", 400, "not valid JSON"),
        (b"[]", 400, "must be a JSON object"),
        (b'{"interactions": {}}', 400, "must be a list"),
        (b'{"interactions": []}', 400, "is empty"),
        (b'{"interactions": [], "extra": 1}', 400, "extra"),
    ],
)
def test_unusable_bodies_are_refused(body: bytes, status: int, words: str) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(body, max_events=10)
    assert info.value.status == status
    assert words in info.value.message


def test_too_many_events_is_413() -> None:
    with pytest.raises(BodyError) as info:
        parse_body(orjson.dumps({"interactions": [{}] * 11}), max_events=10)
    assert info.value.status == 413


def test_each_item_is_validated_on_its_own_and_tenant_comes_from_the_key() -> None:
    good = make_event()
    bad = make_event(usage={"input_tokens": -1})
    intake = validate_items([good, bad, "nope"], tenant_id="acme")
    assert [e.event_id for e in intake.accepted] == [__import__("uuid").UUID(good["event_id"])]
    assert intake.accepted[0].tenant_id == "acme"
    assert orjson.loads(intake.payloads[0])["tenant_id"] == "acme"
    assert [r["index"] for r in intake.rejected] == [1, 2]
    assert intake.rejected[0]["errors"][0]["field"] == "usage.input_tokens"


def test_a_body_claiming_another_tenant_is_rejected() -> None:
    intake = validate_items([make_event(tenant_id="someone-else")], tenant_id="acme")
    assert not intake.accepted
    assert intake.rejected[0]["errors"][0]["field"] == "tenant_id"


def test_the_same_tenant_in_the_body_is_accepted() -> None:
    assert validate_items([make_event(tenant_id="acme")], tenant_id="acme").accepted


NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
WINDOW = TimeWindow(now=NOW, max_age=timedelta(days=30), max_ahead=timedelta(days=1))


@pytest.mark.parametrize(("at", "accepted"), [
    (NOW, True),
    (NOW - timedelta(days=30), True),
    (NOW - timedelta(days=30, microseconds=1), False),
    (NOW + timedelta(days=1), True),
    (NOW + timedelta(days=1, microseconds=1), False),
    (datetime(1, 1, 1, tzinfo=UTC), False),
    (datetime(9999, 12, 31, tzinfo=UTC), False),
])
def test_occurred_at_must_fall_in_the_window_around_the_server_s_time(at: datetime, accepted: bool) -> None:
    intake = validate_items([make_event(occurred_at=at.isoformat())], tenant_id="acme", window=WINDOW)
    assert bool(intake.accepted) is accepted
    if not accepted:
        [error] = intake.rejected[0]["errors"]
        assert error["field"] == "occurred_at" and "server's time (2026-11-24T12:00:00Z)" in error["message"]


def test_the_window_is_compared_as_instants_whatever_the_time_zone() -> None:
    east = (NOW + timedelta(hours=20)).astimezone(timezone(timedelta(hours=14)))
    assert validate_items([make_event(occurred_at=east.isoformat())], tenant_id="acme", window=WINDOW).accepted
