"""The billing API's request and response bodies, in families (`BudgetCreate`, `BudgetUpdate`, `BudgetPublic`).

Requests are validated here (unknown fields refused); responses describe what the routes return, so the
OpenAPI reference (`GET /docs`) shows every answer's shape. Money is a decimal string in USD, exact (20
decimal places at most, trailing zeros dropped): never a JSON number. Instants are ISO 8601 strings.
Errors are `llmops_shared.problems.Problem` (RFC 9457) on every route.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, StringConstraints, field_validator

from llmops_billing import budgets
from llmops_billing.budgets import Enforcement, Period
from llmops_billing.cost import Line
from llmops_billing.prices import MatchStep, Override
from llmops_billing.usage_query import Granularity, GroupField, Source
from llmops_shared.contract import IDENTIFIER_PATTERN

Money = Annotated[str, Field(description="USD, an exact decimal string", examples=["0.00000015"])]
Instant = Annotated[str, Field(description="ISO 8601 with a time zone", json_schema_extra={"format": "date-time"})]
AppScope = Annotated[str, StringConstraints(strict=True, max_length=128, pattern=f"^$|{IDENTIFIER_PATTERN}")]
"""An app id (`llmops_shared.contract.Identifier`), or empty: every app of the tenant."""
Currency = Literal["USD"]

# --------------------------------------------------------------------------------------------------
# Usage


class UsageRow(BaseModel):
    """One bucket and group: the group columns asked for (`group_by`), then the measures. A column not
    asked for is absent; `user_id` and `tag` are null for events without one."""

    bucket: Instant | None = Field(None, description="start of the UTC bucket; absent without a granularity")
    app_id: str | None = None
    environment: str | None = None
    model: str | None = Field(None, description="the catalogue key")
    provider: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_variant: str | None = None
    user_id: str | None = Field(None, description="the user's pseudonym (`u_` and 20 hex digits), never the "
                                "app's own id")
    tag: str | None = Field(None, description="the tag, with personal data and credentials masked")
    event_count: int
    unpriced_count: int = Field(description="events whose costs are missing from this row's cost sums")
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    reasoning_tokens: int
    cost_input: Money
    cost_cache_read: Money
    cost_cache_write: Money
    cost_output: Money
    cost_reasoning: Money
    cost_request: Money
    cost_total: Money


class UsageOthers(BaseModel):
    groups: int = Field(description="how many groups over the range are not in the top")
    rows: list[UsageRow] = Field(description="their sums per bucket (one row without a granularity), no group "
                                 "columns")


class UsagePage(BaseModel):
    from_: Instant = Field(alias="from")
    to: Instant
    granularity: Granularity | None
    group_by: list[GroupField]
    currency: Currency
    source: Source = Field(description="what answered: a rollup or the ledger (all give the same numbers)")
    rows: list[UsageRow]
    next_cursor: str | None = Field(description="the next page's `cursor`; null on the last page")
    others: UsageOthers | None = Field(None, description="with `top`: the groups left out; null without")


class UnpricedModelPublic(BaseModel):
    provider: str
    model: str
    model_key: str
    reason: str
    first_seen_at: Instant
    last_seen_at: Instant
    event_count: int
    alerted_at: Instant | None
    resolved_at: Instant | None


class UnpricedModels(BaseModel):
    models: list[UnpricedModelPublic]


# --------------------------------------------------------------------------------------------------
# Budgets


class BudgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: AppScope = Field("", description="one app of the tenant; empty: every app")
    period: Period
    amount: StrictStr = Field(description="USD, a decimal string such as \"250.00\"")
    thresholds: list[int] = Field(default_factory=lambda: list(budgets.DEFAULT_THRESHOLDS),
                                  description="percent of the amount, each 1..1000")
    enforcement: Enforcement = Enforcement.SOFT
    name: str = Field("", max_length=200)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str) -> str:
        budgets.validate_amount(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        return list(budgets.validate_thresholds(value))


class BudgetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr | None = None
    thresholds: list[int] | None = None
    enforcement: Enforcement | None = None
    name: str | None = Field(None, max_length=200)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str | None) -> str | None:
        if value is not None:
            budgets.validate_amount(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else list(budgets.validate_thresholds(value))


class BudgetPeriodStatus(BaseModel):
    start: Instant
    end: Instant
    spent: Money = Field(description="priced spend in the period (unpriced events are counted apart)")
    percent: str = Field(description="spent / amount x 100, two decimals")
    events: int
    unpriced_events: int
    thresholds_reached: list[int]
    alerts_sent: list[int]
    state: Literal["ok", "warning", "exceeded"]
    blocked: bool = Field(description="a hard budget whose spend reached its amount")


class BudgetPublic(BaseModel):
    id: int
    app_id: str | None = Field(description="null: every app of the tenant")
    period: Period
    amount: Money
    currency: Currency
    thresholds: list[int]
    enforcement: Enforcement
    name: str
    created_at: Instant
    updated_at: Instant
    archived_at: Instant | None
    current_period: BudgetPeriodStatus


class BudgetsPublic(BaseModel):
    budgets: list[BudgetPublic]


# --------------------------------------------------------------------------------------------------
# Summary and statements


class UsageSummary(BaseModel):
    from_: Instant = Field(alias="from")
    to: Instant
    currency: Currency
    source: Source
    totals: UsageRow
    cost_total_display: Money = Field(description="cost_total for people: cents, and at least three significant "
                                              "digits, so a real cost never reads 0 (0.004123 -> 0.00412)")
    top_models: list[UsageRow] = Field(description="the ten largest by cost, by provider and model")
    top_apps: list[UsageRow]
    by_provider: list[UsageRow]
    budgets: list[BudgetPublic]


class StatementPeriod(BaseModel):
    from_: Instant = Field(alias="from")
    to: Instant


class StatementItem(BaseModel):
    provider: str
    model: str
    price_version: str
    line: Line
    quantity: int
    unit: Literal["token", "request"]
    unit_price: Money
    amount: Money = Field(description="quantity x unit_price, exactly")
    amount_rounded: Money
    events: int


class StatementUnpriced(BaseModel):
    provider: str
    model: str
    reason: str
    events: int
    input_tokens: int
    output_tokens: int


class Statement(BaseModel):
    tenant_id: str
    month: str = Field(examples=["2026-11"])
    currency: Currency
    period: StatementPeriod
    status: Literal["open", "closed"]
    items: list[StatementItem]
    total: Money = Field(description="the sum of the items; equals ledger_total")
    total_rounded: Money
    ledger_total: Money
    events: int
    unpriced_events: int
    input_tokens: int
    output_tokens: int
    unpriced: list[StatementUnpriced] = Field(description="events without a price: not in the total")


# --------------------------------------------------------------------------------------------------
# Prices


class PriceTierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    above_input_tokens: int = Field(ge=0)
    input_per_token: StrictStr | None = None
    output_per_token: StrictStr | None = None
    cache_read_per_token: StrictStr | None = None
    cache_write_per_token: StrictStr | None = None
    reasoning_per_token: StrictStr | None = None


class PriceCreate(BaseModel):
    """A negotiated price of the calling tenant (list prices are managed with `llmops billing prices import`)."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1, max_length=200)
    provider: StrictStr = Field("", max_length=64)
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    input_per_token: StrictStr
    output_per_token: StrictStr
    cache_read_per_token: StrictStr | None = None
    cache_write_per_token: StrictStr | None = None
    reasoning_per_token: StrictStr | None = None
    request_fee: StrictStr = "0"
    tiers: list[PriceTierIn] = Field(default_factory=list)


class PriceTierPublic(BaseModel):
    above_input_tokens: int
    input_per_token: Money | None
    output_per_token: Money | None
    cache_read_per_token: Money | None
    cache_write_per_token: Money | None
    reasoning_per_token: Money | None


class PricePublic(BaseModel):
    model: str
    model_key: str
    provider: str
    tenant_id: str | None = Field(description="null: the list price")
    effective_from: Instant
    effective_until: Instant | None
    currency: Currency
    input_per_token: Money
    output_per_token: Money
    cache_read_per_token: Money | None = Field(description="null: billed at the input price")
    cache_write_per_token: Money | None = Field(description="null: billed at the input price")
    reasoning_per_token: Money | None = Field(description="null: billed at the output price")
    request_fee: Money
    tiers: list[PriceTierPublic]
    source: str
    price_version: str


class PriceCreated(PricePublic):
    note: str = Field(description="whether events already priced need a re-pricing run")


class PricesPage(BaseModel):
    prices: list[PricePublic]
    next_cursor: str | None


class QuoteDiscount(BaseModel):
    discount_id: str
    percent: str


class Quote(BaseModel):
    model: str
    provider: str | None
    at: Instant
    matched_key: str
    match: MatchStep
    override: Override
    discount: QuoteDiscount | None
    price: PricePublic = Field(description="what the tenant pays (the discount applied)")


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: StrictStr = Field(description="more than 0, at most 100")
    provider: StrictStr = Field("", max_length=64, description="empty: every provider")
    model: StrictStr = Field("", max_length=200, description="empty: every model")
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    note: str = Field("", max_length=500)


class DiscountPublic(BaseModel):
    discount_id: str
    percent: str
    provider: str = Field(description="empty: every provider")
    model_key: str = Field(description="empty: every model")
    effective_from: Instant
    effective_until: Instant | None


class DiscountCreated(DiscountPublic):
    note: str = Field(description="whether events already priced need a re-pricing run")


class Discounts(BaseModel):
    discounts: list[DiscountPublic]
