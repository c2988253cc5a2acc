from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmops_billing.cost import LINES, Cost, Line, UnpricedReason, price_usage
from llmops_billing.money import EXACT, display_money, money_str, round_money
from llmops_billing.prices import ModelPrice, PriceCatalogue, PriceTier, TenantDiscount
from llmops_shared.contract import Usage

D = Decimal
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SONNET = ModelPrice(
    model="claude-3-7-sonnet-20250219", provider="anthropic", effective_from=EPOCH,
    input_per_token=D("3E-6"), output_per_token=D("1.5E-5"),
    cache_read_per_token=D("3E-7"), cache_write_per_token=D("3.75E-6"),
)
FLASH = ModelPrice(
    model="gemini-2.5-flash", provider="gemini", effective_from=EPOCH,
    input_per_token=D("3E-7"), output_per_token=D("2.5E-6"), cache_read_per_token=D("3E-8"),
    reasoning_per_token=D("3.5E-6"),
)


def items(cost_lines: dict[Line, tuple[int, str]], cost: Cost) -> None:
    for line, (quantity, amount) in cost_lines.items():
        item = next(i for i in cost.items if i.line is line)
        assert (item.quantity, item.amount) == (quantity, D(amount)), line


def test_cache_reads_and_cache_writes_are_billed_apart_from_uncached_input() -> None:
    usage = Usage(input_tokens=10_000, cache_read_input_tokens=6_000, cache_write_input_tokens=3_000,
                  output_tokens=500)
    cost = price_usage(usage, SONNET)
    items({
        Line.INPUT: (1_000, "0.003"),          # 10,000 - 6,000 - 3,000 at $3/MTok
        Line.CACHE_READ: (6_000, "0.0018"),    # at $0.30/MTok
        Line.CACHE_WRITE: (3_000, "0.01125"),  # at $3.75/MTok
        Line.OUTPUT: (500, "0.0075"),
        Line.REASONING: (0, "0"),
        Line.REQUEST: (1, "0"),
    }, cost)
    assert cost.total == D("0.02355")
    assert not cost.unpriced and cost.price_version == SONNET.price_version


def test_reasoning_tokens_are_output_tokens_billed_at_the_reasoning_price() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_000)
    cost = price_usage(usage, FLASH)
    items({Line.OUTPUT: (1_000, "0.0025"), Line.REASONING: (2_000, "0.007"), Line.INPUT: (1_000, "0.0003")}, cost)
    assert cost.total == D("0.0098")


def test_reasoning_without_its_own_price_costs_the_output_price_not_zero() -> None:
    usage = Usage(input_tokens=0, output_tokens=3_000, reasoning_tokens=2_000)
    cost = price_usage(usage, SONNET)
    assert cost.amount(Line.REASONING) == D("0.03")
    assert cost.total == D("0.045")


def test_cache_reads_without_a_cache_price_cost_the_input_price() -> None:
    plain = ModelPrice(model="m", provider="p", effective_from=EPOCH, input_per_token=D("1E-6"),
                       output_per_token=D("2E-6"))
    cost = price_usage(Usage(input_tokens=100, cache_read_input_tokens=40, cache_write_input_tokens=10), plain)
    assert cost.amount(Line.CACHE_READ) == D("0.00004")
    assert cost.amount(Line.CACHE_WRITE) == D("0.00001")
    assert cost.total == D("0.0001")


def test_a_request_fee_is_one_line() -> None:
    sonar = ModelPrice(model="sonar", provider="perplexity", effective_from=EPOCH, input_per_token=D("1E-6"),
                       output_per_token=D("1E-6"), request_fee=D("0.005"))
    cost = price_usage(Usage(input_tokens=10, output_tokens=10), sonar)
    items({Line.REQUEST: (1, "0.005")}, cost)
    assert cost.total == D("0.00502")


def test_a_long_prompt_is_billed_at_the_tier_for_every_line() -> None:
    pro = ModelPrice(model="gemini-2.5-pro", provider="vertex_ai", effective_from=EPOCH,
                     input_per_token=D("1.25E-6"), output_per_token=D("1E-5"), cache_read_per_token=D("1.25E-7"),
                     tiers=(PriceTier(200_000, D("2.5E-6"), D("1.5E-5"), D("2.5E-7")),))
    short = price_usage(Usage(input_tokens=200_000, output_tokens=1_000), pro)
    long = price_usage(Usage(input_tokens=250_000, cache_read_input_tokens=50_000, output_tokens=1_000), pro)
    assert short.total == D("0.26") and short.tier_above_input_tokens is None
    assert long.tier_above_input_tokens == 200_000
    items({Line.INPUT: (200_000, "0.5"), Line.CACHE_READ: (50_000, "0.0125"), Line.OUTPUT: (1_000, "0.015")}, long)


def test_arithmetic_is_exact_where_floats_drift() -> None:
    mini = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=EPOCH,
                      input_per_token=D("1.5E-7"), output_per_token=D("6E-7"))
    one = price_usage(Usage(input_tokens=1, output_tokens=1), mini)
    assert one.total == D("7.5E-7")
    assert sum([1.5e-07] * 10) != 1.5e-06  # ten one-token calls: the float way is already off
    total = D(0)
    for _ in range(10):
        one_token = price_usage(Usage(input_tokens=1), mini).total
        assert one_token is not None
        total += one_token
    assert total == D("0.0000015")
    big = price_usage(Usage(input_tokens=100_000_000, output_tokens=100_000_000, reasoning_tokens=99_999_999), mini)
    assert big.total == D("75")


def test_a_discounted_price_costs_exactly_the_discounted_amount() -> None:
    catalogue = PriceCatalogue([SONNET], [TenantDiscount("acme", D("15"), EPOCH, provider="anthropic")])
    discounted = catalogue.price_for("acme", "claude-3-7-sonnet-20250219", "anthropic",
                                         datetime(2026, 11, 24, tzinfo=UTC))
    cost = price_usage(Usage(input_tokens=1_000, output_tokens=1_000), discounted)
    assert cost.total == D("0.0153")  # 85% of (0.003 + 0.015)
    assert cost.price_version is not None and cost.price_version.endswith("@1970-01-01T00:00:00Z")


def test_an_unpriced_interaction_has_no_amounts_never_zero() -> None:
    cost = price_usage(Usage(input_tokens=1_000, output_tokens=10), None)
    assert cost.unpriced and cost.unpriced_reason is UnpricedReason.UNKNOWN_MODEL
    assert cost.total is None and cost.items == () and cost.amount(Line.INPUT) is None
    assert cost.as_json()["total"] is None and cost.as_json()["unpriced"] is True


def test_cost_json_has_money_as_strings() -> None:
    cost = price_usage(Usage(input_tokens=1, output_tokens=2), SONNET)
    data = json.loads(json.dumps(cost.as_json()))
    assert data["total"] == "0.000033"
    assert data["currency"] == "USD"
    assert all(isinstance(i["amount"], str) and isinstance(i["unit_price"], str) for i in data["items"])


def test_an_inconsistent_hand_made_usage_is_refused() -> None:
    usage = Usage.model_construct(input_tokens=1, output_tokens=0, cache_read_input_tokens=5,
                                  cache_write_input_tokens=0, reasoning_tokens=0)
    with pytest.raises(ValueError, match="exceed"):
        price_usage(usage, SONNET)


def test_unit_prices_are_kept_on_each_price_and_never_shared() -> None:
    pro = ModelPrice(model="gemini-2.5-pro", provider="vertex_ai", effective_from=EPOCH,
                     input_per_token=D("1.25E-6"), output_per_token=D("1E-5"),
                     tiers=(PriceTier(200_000, D("2.5E-6"), D("1.5E-5")),))
    assert pro.unit_prices(10) is pro.unit_prices(20)  # worked out once per tier
    assert pro.unit_prices(300_000) is not pro.unit_prices(10)
    assert pro.unit_prices(300_000).by_line == (D("2.5E-6"), D("2.5E-6"), D("2.5E-6"), D("1.5E-5"), D("1.5E-5"), 0)
    # An equal-looking price with other amounts (a corrected row of the same identity) has its own.
    corrected = replace(pro, input_per_token=D("2E-6"))
    assert corrected.unit_prices(10).input == D("2E-6") and pro.unit_prices(10).input == D("1.25E-6")
    for i in range(1, 4):  # objects come and go (and ids get reused): each price is priced with its own
        fresh = ModelPrice(model="m", provider="p", effective_from=EPOCH, input_per_token=D(i), output_per_token=D(1))
        assert price_usage(Usage(input_tokens=1), fresh).total == D(i)
        del fresh


def test_the_cost_has_one_line_per_line_kind_in_order() -> None:
    cost = price_usage(Usage(input_tokens=10, cache_read_input_tokens=4, output_tokens=6, reasoning_tokens=2), FLASH)
    assert [item.line for item in cost.items] == list(LINES)
    assert cost.quantities == (6, 4, 0, 4, 2, 1)
    assert cost.amounts == tuple(item.amount for item in cost.items)
    assert all(EXACT.multiply(q, u) == a for q, u, a in zip(cost.quantities, cost.unit_prices, cost.amounts,
                                                              strict=True))


def test_money_is_rounded_only_for_display() -> None:
    assert money_str(D("1.5E-7")) == "0.00000015"
    assert money_str(D("0E-20")) == "0"
    assert money_str(D("120")) == "120"
    assert round_money(D("0.125")) == D("0.12")  # half-even
    assert round_money(D("0.135")) == D("0.14")
    assert round_money(D("0.00000015"), 6) == D("0.000000")


def test_display_amounts_keep_three_significant_digits_and_never_hide_a_cost() -> None:
    assert display_money(D("0.004")) == "0.00400"  # was "0" in the summary: a real cost shown as nothing
    assert display_money(D("0.004123")) == "0.00412"
    assert display_money(D("0.0149")) == "0.0149"
    assert display_money(D("0.123456")) == "0.123"
    assert display_money(D("1.235")) == "1.24"  # half-even
    assert display_money(D("12.3456")) == "12.35"
    assert display_money(D("1234.5")) == "1234.50"
    assert display_money(D("0.00000015")) == "0.000000150"
    assert display_money(D("-0.004123")) == "-0.00412"
    assert display_money(D(0)) == "0.00"
