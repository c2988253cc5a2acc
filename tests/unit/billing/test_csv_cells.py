"""CSV exports never hand a spreadsheet a formula: the tenant's own text is neutralised, numbers are not."""

from __future__ import annotations

import pytest

from llmops_billing.usage import csv_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["0.00015", "-1.5", "12", "1e-7", "support-bot", "user-7", 42, 0.5])
def test_numbers_and_ordinary_text_are_left_alone(value: object) -> None:
    assert csv_cell(value) == value


def test_null_is_an_empty_cell() -> None:
    assert csv_cell(None) == ""
