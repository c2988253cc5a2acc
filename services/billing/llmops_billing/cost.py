"""The cost of one interaction: token counts times unit prices, as exact decimals, line by line.

What includes what (the event contract's convention): `input_tokens` includes the cache reads and the
cache writes, `output_tokens` includes the reasoning tokens. So each token is billed exactly once:

    input        = input_tokens - cache_read_input_tokens - cache_write_input_tokens   at the input price
    cache_read   = cache_read_input_tokens                                             at the cache-read price
    cache_write  = cache_write_input_tokens                                            at the cache-write price
    output       = output_tokens - reasoning_tokens                                    at the output price
    reasoning    = reasoning_tokens                                                    at the reasoning price
    request      = 1 request                                                           at the request fee

A long-context tier is chosen by `input_tokens` (the whole prompt, cached parts included) and prices every
line. Amounts are exact (`money.EXACT` raises rather than round); they are rounded only for display.
An interaction that cannot be priced gives a `Cost` with `unpriced=True` and no amounts at all: never a
silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from llmops_billing.money import EXACT, ZERO, check_scale, money_str
from llmops_billing.prices import ModelPrice


class TokenCounts(Protocol):
    """What pricing reads of usage: the contract's `Usage`, or billing's decoded `BilledUsage`."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_input_tokens(self) -> int: ...
    @property
    def cache_write_input_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...


class Line(StrEnum):
    INPUT = "input"
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"
    OUTPUT = "output"
    REASONING = "reasoning"
    REQUEST = "request"


class UnpricedReason(StrEnum):
    UNKNOWN_MODEL = "unknown_model"  # the catalogue has no price for the model at that instant
    NO_MODEL = "no_model"  # the event reports usage but names no model
    NO_USAGE = "no_usage"  # an LLM call that reports no token counts


@dataclass(frozen=True, slots=True)
class LineItem:
    line: Line
    quantity: int  # tokens, or requests for the request fee
    unit_price: Decimal
    amount: Decimal

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line.value, "quantity": self.quantity,
                "unit_price": money_str(self.unit_price), "amount": money_str(self.amount)}


class Cost(NamedTuple):
    """The cost of one interaction: each line's quantity, unit price and amount (in `LINES` order) and their
    total; or `unpriced`, with no lines and no amounts (`total` is None). Immutable (a named tuple: the
    ledger builds one per event, and a tuple is the cheapest immutable record to build)."""

    quantities: tuple[int, ...]
    unit_prices: tuple[Decimal, ...]
    amounts: tuple[Decimal, ...]
    total: Decimal | None
    price_version: str | None
    unpriced_reason: UnpricedReason | None = None
    tier_above_input_tokens: int | None = None

    @property
    def unpriced(self) -> bool:
        return self.unpriced_reason is not None

    @property
    def items(self) -> tuple[LineItem, ...]:
        """The line items (none when unpriced)."""
        return tuple(LineItem(line, quantity, unit_price, amount) for line, quantity, unit_price, amount
                     in zip(LINES, self.quantities, self.unit_prices, self.amounts, strict=False))

    def amount(self, line: Line) -> Decimal | None:
        """The amount of one line, None when unpriced."""
        return self.amounts[_LINE_INDEX[line]] if self.amounts else None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready; money as strings, exact (round for display only)."""
        return {
            "currency": "USD",
            "unpriced": self.unpriced,
            "unpriced_reason": None if self.unpriced_reason is None else self.unpriced_reason.value,
            "total": None if self.total is None else money_str(self.total),
            "price_version": self.price_version,
            "tier_above_input_tokens": self.tier_above_input_tokens,
            "items": [item.as_json() for item in self.items],
        }


def unpriced(reason: UnpricedReason) -> Cost:
    return Cost(quantities=(), unit_prices=(), amounts=(), total=None, price_version=None, unpriced_reason=reason)


LINES = (Line.INPUT, Line.CACHE_READ, Line.CACHE_WRITE, Line.OUTPUT, Line.REASONING, Line.REQUEST)
_LINE_INDEX = {line: i for i, line in enumerate(LINES)}


def price_usage(usage: TokenCounts, price: ModelPrice | None,
                reason_if_unpriced: UnpricedReason = UnpricedReason.UNKNOWN_MODEL) -> Cost:
    """The cost of `usage` at `price`; `price` None gives an unpriced cost (never zero).

    The one place an interaction is priced: the ledger (worker and re-pricing) and everything else call
    it. Each line's amount is quantity x unit price, exact (`money.EXACT` raises rather than rounds); the
    unit prices come resolved from the price (`ModelPrice.unit_prices`, worked out once per tier)."""
    if price is None:
        return unpriced(reason_if_unpriced)
    unit = price.unit_prices(usage.input_tokens)
    quantities = line_quantities(usage)
    unit_prices = unit.by_line
    multiply, add = EXACT.multiply, EXACT.add
    amounts = (multiply(quantities[0], unit_prices[0]), multiply(quantities[1], unit_prices[1]),
               multiply(quantities[2], unit_prices[2]), multiply(quantities[3], unit_prices[3]),
               multiply(quantities[4], unit_prices[4]), multiply(quantities[5], unit_prices[5]))
    total = add(add(add(add(add(add(ZERO, amounts[0]), amounts[1]), amounts[2]), amounts[3]), amounts[4]), amounts[5])
    return Cost(quantities, unit_prices, amounts, check_scale(total, what="total"), price.price_version, None,
                unit.tier_above_input_tokens)


def line_quantities(usage: TokenCounts) -> tuple[int, int, int, int, int, int]:
    """The quantity of each line of `LINES` (see the module docstring)."""
    uncached = usage.input_tokens - usage.cache_read_input_tokens - usage.cache_write_input_tokens
    visible_output = usage.output_tokens - usage.reasoning_tokens
    if uncached < 0 or visible_output < 0:  # the contract validates this; a hand-made Usage might not
        raise ValueError("cache tokens exceed input_tokens, or reasoning tokens exceed output_tokens")
    return (uncached, usage.cache_read_input_tokens, usage.cache_write_input_tokens, visible_output,
            usage.reasoning_tokens, 1)
