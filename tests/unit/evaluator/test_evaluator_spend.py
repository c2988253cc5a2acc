"""The pure half of the spend cap: cost, estimate, micro-dollars, the day. The cap itself runs in Redis:
tests/integration/evaluator/test_evaluator_spend_ledger.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from llmops_evaluator.spend import (
    JudgePrice,
    cost_usd,
    estimate_cost_usd,
    estimate_input_tokens,
    from_micros,
    spend_day,
    to_micros,
)

PRICE = JudgePrice(input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60"))


def test_cost_is_tokens_times_price_per_million() -> None:
    # 1000 x 0.15 / 1e6 + 200 x 0.60 / 1e6 = 0.00015 + 0.00012
    assert cost_usd(1_000, 200, PRICE) == Decimal("0.00027")
    assert cost_usd(0, 0, PRICE) == 0


def test_the_estimate_is_characters_over_four_plus_the_output_budget() -> None:
    messages = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 401}]
    assert estimate_input_tokens(messages) == 217  # ceil(801 / 4) = 201, plus 8 for each of 2 messages
    assert estimate_cost_usd(messages, 500, PRICE) == cost_usd(217, 500, PRICE)


def test_micro_dollars_round_up() -> None:
    assert to_micros(Decimal("0.00027")) == 270
    assert to_micros(Decimal("0.0000001")) == 1
    assert from_micros(270) == Decimal("0.00027")


def test_the_day_is_the_utc_day() -> None:
    late_in_new_york = datetime(2025, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert spend_day(late_in_new_york) == "2025-03-02"
    assert spend_day(datetime(2025, 3, 1, 0, 0, tzinfo=UTC)) == "2025-03-01"
