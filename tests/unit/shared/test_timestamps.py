from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from llmops_shared.timestamps import Timestamp


class At(BaseModel):
    at: Timestamp


def test_a_timestamp_is_written_with_its_own_offset() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert At(at=at).model_dump_json() == '{"at":"2026-03-01T12:00:00+02:00"}'
    assert At(at=at.astimezone(UTC)).model_dump(mode="json") == {"at": "2026-03-01T10:00:00+00:00"}


def test_a_time_without_an_offset_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        At.model_validate({"at": "2026-03-01T12:00:00"})
    assert caught.value.errors()[0]["loc"] == ("at",)


def test_the_schema_says_date_time() -> None:
    assert At.model_json_schema()["properties"]["at"] == {"type": "string", "format": "date-time", "title": "At"}
