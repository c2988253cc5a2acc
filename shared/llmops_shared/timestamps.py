"""`Timestamp`: an API model's time with its offset, written as Python writes it (`2026-03-01T12:00:00+00:00`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, PlainSerializer, WithJsonSchema


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[AwareDatetime, PlainSerializer(_iso, return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
