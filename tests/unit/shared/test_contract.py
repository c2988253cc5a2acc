from __future__ import annotations

import uuid

import orjson
import pytest
from pydantic import ValidationError

from llmops_shared.contract import (
    MAX_METADATA_KEYS,
    BadEvent,
    Interaction,
    UnsupportedSchemaVersion,
    decode_interaction,
    field_errors,
    interaction_json_schema,
)
from tests.support.events import make_event


def valid(**overrides: object) -> dict:
    return {**make_event(), "tenant_id": "acme", **overrides}


def errors_of(event: dict) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as info:
        Interaction.model_validate(event)
    return field_errors(info.value)


def test_a_complete_event_round_trips_through_the_wire_form() -> None:
    event = Interaction.model_validate(valid(
        prompt={"name": "support", "version": "7", "variant": "b"},
        usage={"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 60,
               "cache_write_input_tokens": 10, "reasoning_tokens": 12},
        output=[{"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "name": "lookup", "arguments": "{\"id\": 1}"}]}],
    ))
    again = decode_interaction(event.to_json())
    assert again == event
    assert again.usage is not None and again.usage.total_tokens == 140


def test_unknown_top_level_field_is_rejected_by_name() -> None:
    assert {"field": "colour", "message": "unknown field"} in errors_of(valid(colour="red"))


@pytest.mark.parametrize(
    ("path", "patch"),
    [
        ("usage.input_tokens", {"usage": {"input_tokens": -1}}),
        ("usage.output_tokens", {"usage": {"output_tokens": "12"}}),  # strict: no strings for counts
        ("occurred_at", {"occurred_at": "2026-11-24T09:00:00"}),  # naive datetime
        ("event_id", {"event_id": "not-a-uuid"}),
        ("span_kind", {"span_kind": "banana"}),
        ("app_id", {"app_id": ""}),
        ("tags", {"tags": ["x"] * 65}),
    ],
)
def test_invalid_fields_are_named(path: str, patch: dict) -> None:
    fields = [e["field"] for e in errors_of(valid(**patch))]
    assert path in fields


def test_cached_tokens_cannot_exceed_input_tokens() -> None:
    errors = errors_of(valid(usage={"input_tokens": 10, "cache_read_input_tokens": 11}))
    assert any("cache_read_input_tokens" in e["message"] for e in errors)


def test_reasoning_tokens_are_part_of_output_tokens() -> None:
    errors = errors_of(valid(usage={"output_tokens": 1, "reasoning_tokens": 5}))
    assert any("reasoning_tokens exceed output_tokens" in e["message"] for e in errors)


def test_status_and_error_must_agree() -> None:
    assert any("no error is given" in e["message"] for e in errors_of(valid(status="error")))
    assert any("status is 'ok'" in e["message"] for e in errors_of(valid(error={"type": "Timeout"})))
    ok = Interaction.model_validate(valid(status="error", error={"type": "RateLimitError", "message": "429"}))
    assert ok.error is not None


def test_metadata_is_bounded_in_keys_and_bytes() -> None:
    too_many = {f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)}
    assert any(e["field"] == "metadata" for e in errors_of(valid(metadata=too_many)))
    too_big = {"blob": "x" * 20_000}
    assert any("bytes as JSON" in e["message"] for e in errors_of(valid(metadata=too_big)))


def test_message_count_is_bounded() -> None:
    messages = [{"role": "user", "content": "hi"}] * 1001
    assert any(e["field"].startswith("input") for e in errors_of(valid(input=messages)))


def test_decode_rejects_bad_json_and_non_objects() -> None:
    with pytest.raises(BadEvent) as info:
        decode_interaction(b"{not json")
    assert info.value.reason == "bad_json"
    with pytest.raises(BadEvent):
        decode_interaction(b"[1, 2]")
    with pytest.raises(BadEvent):
        decode_interaction(None)


def test_decode_dead_letters_a_newer_schema_version_rather_than_guess() -> None:
    with pytest.raises(UnsupportedSchemaVersion):
        decode_interaction(orjson.dumps(valid(schema_version=2, brand_new_field=1)))


def test_decode_reports_schema_violations_with_field_names() -> None:
    with pytest.raises(BadEvent) as info:
        decode_interaction(orjson.dumps(valid(event_id=str(uuid.uuid4()), usage={"input_tokens": -5})))
    assert info.value.reason == "schema_violation"
    assert "usage.input_tokens" in info.value.detail


def test_json_schema_is_exported_for_other_languages() -> None:
    schema = interaction_json_schema()
    assert schema["additionalProperties"] is False
    assert {"event_id", "occurred_at", "trace_id", "span_id", "app_id"} <= set(schema["required"])


def test_the_published_json_schema_is_in_step_with_the_model() -> None:
    from pathlib import Path

    published = Path(__file__).resolve().parents[3] / "docs" / "interaction.schema.json"
    assert orjson.loads(published.read_bytes()) == interaction_json_schema(), (
        "docs/interaction.schema.json is stale: run `llmops schema > docs/interaction.schema.json`")


@pytest.mark.parametrize("overrides", [
    {"output": "a\x00b"}, {"tags": ["x\x01"]}, {"metadata": {"k": "v\x00"}}, {"metadata": {"k\x1f": "v"}},
    {"input": [{"role": "user", "content": "hi\x0b"}]}, {"user_id": "u\x07"},
])
def test_control_characters_are_refused_at_the_contract_naming_the_field(overrides: dict[str, object]) -> None:
    with pytest.raises(BadEvent) as refused:
        decode_interaction(orjson.dumps({**make_event(**overrides), "tenant_id": "acme"}))
    field = next(iter(overrides))
    assert refused.value.reason == "schema_violation" and field in refused.value.detail
    assert "control character" in refused.value.detail


def test_tab_newline_and_an_escaped_backslash_u0000_are_fine() -> None:
    event = decode_interaction(orjson.dumps({**make_event(output="a\tb\nc\r", metadata={"k": "a\\u0000"}),
                                             "tenant_id": "acme"}))
    assert event.output == "a\tb\nc\r" and event.metadata == {"k": "a\\u0000"}
