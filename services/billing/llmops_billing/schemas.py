"""The billing API's request bodies (unknown fields refused). Money is a decimal string in USD."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, StringConstraints, field_validator

from llmops_billing import budgets
from llmops_billing.budgets import Enforcement, Period
from llmops_shared.contract import IDENTIFIER_PATTERN

AppScope = Annotated[str, StringConstraints(strict=True, max_length=128, pattern=f"^$|{IDENTIFIER_PATTERN}")]
"""An app id (`llmops_shared.contract.Identifier`), or empty: every app of the tenant."""


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


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: StrictStr = Field(description="more than 0, at most 100")
    provider: StrictStr = Field("", max_length=64, description="empty: every provider")
    model: StrictStr = Field("", max_length=200, description="empty: every model")
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    note: str = Field("", max_length=500)
