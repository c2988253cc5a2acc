"""One tail line per span, pure: metadata only, coloured on request."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llmops_traces.tail import RED, YELLOW, line


def _span(**overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "occurred_at": datetime(2026, 11, 24, 12, 4, 7, 118000, tzinfo=UTC), "tenant_id": "acme",
        "app_id": "support-bot", "span_kind": "llm", "name": "chat", "model": "gpt-4o-mini", "status": "ok",
        "error_type": None, "latency_ms": 812.4, "input_tokens": 1200, "output_tokens": 210,
        "cost_total": Decimal("0.000310"), "trace_id": "tr-9f", "span_id": "sp-2", "finding_count": 0,
        "finding_types": []}
    span.update(overrides)
    return span


def test_a_line_has_the_span_s_metadata() -> None:
    text = line(_span(), colour=False)
    assert text.startswith("12:04:07.118  acme  support-bot  llm")
    for part in ("gpt-4o-mini", " ok ", "812 ms", "1200+210 tok", "$0.00031", "tr-9f/sp-2"):
        assert part in text


def test_errors_are_red_and_findings_yellow_when_coloured() -> None:
    text = line(_span(status="error", error_type="timeout", finding_count=2, finding_types=["EMAIL"],
                      cost_total=None), colour=True)
    assert f"{RED}ERROR" in text and "timeout" in text and f"{YELLOW}findings: EMAIL" in text and "$-" in text
    assert "\033" not in line(_span(status="error", error_type="timeout"), colour=False)
