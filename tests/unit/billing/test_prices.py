from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import pytest

from llmops_billing.prices import (
    MatchStep,
    ModelPrice,
    Override,
    PriceCatalogue,
    PriceTier,
    TenantDiscount,
)

D = Decimal
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JAN = datetime(2025, 1, 1, tzinfo=UTC)
JUN = datetime(2025, 6, 1, tzinfo=UTC)
NOW = datetime(2025, 9, 1, tzinfo=UTC)


def price(model: str = "gpt-4o", provider: str = "openai", *, at: datetime = EPOCH,
          input_: str = "0.0000025", output: str = "0.00001", **kw: Any) -> ModelPrice:
    return ModelPrice(model=model, provider=provider, effective_from=at, input_per_token=D(input_),
                      output_per_token=D(output), **kw)


def input_price(catalogue: PriceCatalogue, tenant: str | None, model: str, provider: str | None,
                at: datetime) -> Decimal:
    found = catalogue.price_for(tenant, model, provider, at)
    assert found is not None, f"{model} has no price"
    return found.input_per_token


# -- effective dates ---------------------------------------------------------------------------------


def test_a_price_change_applies_from_its_instant_and_never_rewrites_the_past() -> None:
    old = price(input_="0.000005", output="0.000015", at=EPOCH)
    new = price(input_="0.0000025", output="0.00001", at=JUN)
    catalogue = PriceCatalogue([new, old])  # order of rows does not matter
    before = catalogue.price_for(None, "gpt-4o", "openai", JUN - timedelta(microseconds=1))
    at_change = catalogue.price_for(None, "gpt-4o", "openai", JUN)
    after = catalogue.price_for(None, "gpt-4o", "openai", NOW)
    assert before is old and before.input_per_token == D("0.000005")
    assert at_change is new and after is new
    assert old.price_version != new.price_version


def test_the_effective_instant_is_compared_across_time_zones() -> None:
    catalogue = PriceCatalogue([price(at=EPOCH, input_="1"), price(at=JUN, input_="2")])
    # 2025-05-31T23:30-01:00 is 2025-06-01T00:30Z: after the change
    late_may_locally = datetime(2025, 5, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))
    assert input_price(catalogue, None, "gpt-4o", "openai", late_may_locally) == 2


def test_an_event_before_the_first_price_is_unpriced() -> None:
    catalogue = PriceCatalogue([price(at=JUN)])
    assert catalogue.price_for(None, "gpt-4o", "openai", JAN) is None


def test_a_row_that_ended_gives_way_to_the_earlier_one() -> None:
    base = price(input_="0.000002", at=EPOCH)
    promo = price(input_="0.000001", at=JAN, effective_until=JUN)
    catalogue = PriceCatalogue([base, promo])
    assert catalogue.price_for(None, "gpt-4o", "openai", JAN + timedelta(days=1)) is promo
    assert catalogue.price_for(None, "gpt-4o", "openai", JUN) is base


def test_two_rows_for_the_same_instant_are_refused() -> None:
    with pytest.raises(ValueError, match="two prices"):
        PriceCatalogue([price(at=JAN), price(at=JAN, input_="0.000001")])


# -- missing prices fall back, never to zero ---------------------------------------------------------


def test_missing_cache_and_reasoning_prices_fall_back_to_input_and_output() -> None:
    unit = price(input_="0.000003", output="0.000015").unit_prices()
    assert unit.cache_read == D("0.000003")
    assert unit.cache_write == D("0.000003")
    assert unit.reasoning == D("0.000015")
    assert unit.request_fee == 0


def test_explicit_cache_and_reasoning_prices_are_used() -> None:
    row = price(cache_read_per_token=D("3E-7"), cache_write_per_token=D("0.00000375"),
                reasoning_per_token=D("0.0000025"))
    unit = row.unit_prices()
    assert (unit.cache_read, unit.cache_write, unit.reasoning) == (D("3E-7"), D("0.00000375"), D("0.0000025"))


def test_a_long_context_tier_applies_above_its_threshold_only() -> None:
    row = price("gemini-2.5-pro", "vertex_ai", input_="0.00000125", output="0.00001",
                cache_read_per_token=D("1.25E-7"),
                tiers=(PriceTier(200_000, input_per_token=D("0.0000025"), output_per_token=D("0.000015")),))
    assert row.unit_prices(200_000).input == D("0.00000125")
    above = row.unit_prices(200_001)
    assert (above.input, above.output, above.tier_above_input_tokens) == (D("0.0000025"), D("0.000015"), 200_000)
    assert above.cache_read == D("1.25E-7")  # not named by the tier: the row's own
    assert above.reasoning == D("0.000015")  # reasoning falls back to the tier's output price


# -- look-up by model name ---------------------------------------------------------------------------


def test_a_dated_snapshot_falls_back_to_the_undated_model_when_unknown() -> None:
    catalogue = PriceCatalogue([price("gpt-4o")])
    match = catalogue.resolve(None, "gpt-4o-2024-08-06", "openai", NOW)
    assert match is not None and match.key == "gpt-4o" and match.step is MatchStep.UNDATED


def test_a_known_dated_snapshot_is_priced_exactly() -> None:
    catalogue = PriceCatalogue([
        price("claude-3-5-sonnet-20240620", "anthropic", input_="0.000003"),
        price("claude-3-5-sonnet-20241022", "anthropic", input_="0.000004"),
        price("claude-3-5-sonnet", "anthropic", input_="0.000009"),
    ])
    match = catalogue.resolve(None, "claude-3-5-sonnet-20241022", "anthropic", NOW)
    assert match is not None and match.step is MatchStep.EXACT and match.price.input_per_token == D("0.000004")


def test_provider_prefixes_and_bedrock_spellings_are_normalised() -> None:
    catalogue = PriceCatalogue([price("claude-3-5-sonnet-20241022", "anthropic", input_="0.000003")])
    match = catalogue.resolve(None, "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", None, NOW)
    assert match is not None and match.step is MatchStep.NORMALISED and match.key == "claude-3-5-sonnet-20241022"


def test_an_undated_or_latest_alias_takes_the_newest_dated_snapshot() -> None:
    catalogue = PriceCatalogue([
        price("claude-3-7-sonnet-20250219", "anthropic", input_="0.000003"),
        price("o1-2024-12-17", input_="0.000015"),
        price("o1-preview-2024-09-12", input_="0.000099"),
        price("gpt-4o-2024-05-13", input_="0.000005"),
        price("gpt-4o-2024-11-20", input_="0.0000025"),
    ])
    latest = catalogue.resolve(None, "claude-3-7-sonnet-latest", "anthropic", NOW)
    assert latest is not None and latest.key == "claude-3-7-sonnet-20250219" and latest.step is MatchStep.SNAPSHOT
    bare = catalogue.resolve(None, "o1", "openai", NOW)
    assert bare is not None and bare.key == "o1-2024-12-17"
    newest = catalogue.resolve(None, "gpt-4o", "openai", NOW)
    assert newest is not None and newest.key == "gpt-4o-2024-11-20"


def test_an_unknown_model_has_no_price() -> None:
    catalogue = PriceCatalogue([price("gpt-4o")])
    assert catalogue.price_for(None, "my-private-llm", "openai", NOW) is None
    assert catalogue.price_for(None, "gpt-4o-mini", "openai", NOW) is None  # not a snapshot of gpt-4o
    assert catalogue.price_for(None, None, "openai", NOW) is None
    assert catalogue.price_for(None, "  ", None, NOW) is None


def test_the_events_provider_row_wins_and_a_reseller_without_one_gets_the_first_hand_price() -> None:
    openai = price("gpt-4o", "openai", input_="0.0000025")
    azure = price("gpt-4o", "azure", input_="0.00000275")
    catalogue = PriceCatalogue([openai, azure])
    assert catalogue.price_for(None, "gpt-4o", "azure", NOW) is azure
    assert catalogue.price_for(None, "azure/gpt-4o", None, NOW) is azure  # provider from the prefix
    assert catalogue.price_for(None, "gpt-4o", "openai", NOW) is openai
    assert catalogue.price_for(None, "gpt-4o", None, NOW) is openai  # home provider first
    assert catalogue.price_for(None, "gpt-4o", "some-gateway", NOW) is openai


def test_a_provider_row_beats_a_more_specific_key_at_another_provider() -> None:
    dated_openai = price("gpt-4o-2024-08-06", "openai", input_="0.0000025")
    undated_azure = price("gpt-4o", "azure", input_="0.00000275")
    catalogue = PriceCatalogue([dated_openai, undated_azure])
    assert catalogue.price_for(None, "gpt-4o-2024-08-06", "azure", NOW) is undated_azure


# -- tenant overrides --------------------------------------------------------------------------------


def test_a_tenant_price_row_overrides_the_list_price_for_that_tenant_only() -> None:
    listed = price("gpt-4o", input_="0.0000025")
    negotiated = price("gpt-4o", input_="0.000002", tenant_id="acme", at=JAN)
    catalogue = PriceCatalogue([listed, negotiated])
    match = catalogue.resolve("acme", "gpt-4o-2024-08-06", "openai", NOW)
    assert match is not None and match.price is negotiated and match.override is Override.TENANT_PRICE
    assert catalogue.price_for("globex", "gpt-4o", "openai", NOW) is listed
    assert catalogue.price_for("acme", "gpt-4o", "openai", JAN - timedelta(seconds=1)) is listed  # not yet
    assert "acme" in negotiated.price_version


def test_a_tenant_price_for_any_provider_beats_the_providers_list_price() -> None:
    listed = price("gpt-4o", "openai", input_="0.0000025")
    negotiated = price("gpt-4o", "", input_="0.000002", tenant_id="acme")
    catalogue = PriceCatalogue([listed, negotiated])
    assert catalogue.price_for("acme", "gpt-4o", "openai", NOW) is negotiated
    assert catalogue.price_for("acme", "gpt-4o", "azure", NOW) is negotiated


def test_a_discount_takes_an_exact_percentage_off_every_list_price() -> None:
    listed = price("gpt-4o-mini", input_="1.5E-7", output="6E-7", cache_read_per_token=D("7.5E-8"),
                   request_fee=D("0.001"))
    discount = TenantDiscount("acme", D("12.5"), JAN, provider="openai", model="gpt-4o-mini")
    catalogue = PriceCatalogue([listed], [discount])
    match = catalogue.resolve("acme", "gpt-4o-mini", "openai", NOW)
    assert match is not None and match.override is Override.DISCOUNT and match.discount == discount
    billed = match.price
    assert billed.input_per_token == D("1.3125E-7")
    assert billed.output_per_token == D("5.25E-7")
    assert billed.cache_read_per_token == D("6.5625E-8")
    assert billed.reasoning_per_token is None  # still falls back to the (discounted) output price
    assert billed.unit_prices().reasoning == D("5.25E-7")
    assert billed.request_fee == D("0.000875")
    assert billed.price_version == f"{listed.price_version}+{discount.discount_id}"
    assert billed.tenant_id == "acme"
    assert catalogue.price_for("acme", "gpt-4o-mini", "openai", JAN - timedelta(days=1)) is listed
    assert catalogue.price_for("globex", "gpt-4o-mini", "openai", NOW) is listed


def test_the_most_specific_discount_applies_and_discounts_do_not_stack() -> None:
    listed = price("gpt-4o", input_="0.000002")
    everything = TenantDiscount("acme", D("10"), EPOCH)
    openai_only = TenantDiscount("acme", D("20"), EPOCH, provider="openai")
    this_model = TenantDiscount("acme", D("30"), EPOCH, model="gpt-4o")
    catalogue = PriceCatalogue([listed, price("gpt-4o", "azure", input_="0.000002")],
                               [everything, openai_only, this_model])
    assert input_price(catalogue, "acme", "gpt-4o", "openai", NOW) == D("0.0000014")
    without_model = PriceCatalogue([listed], [everything, openai_only])
    assert input_price(without_model, "acme", "gpt-4o", "openai", NOW) == D("0.0000016")
    assert input_price(without_model, "acme", "gpt-4o", "azure", NOW) == D("0.0000018")


def test_a_discount_on_a_model_covers_its_dated_snapshots() -> None:
    catalogue = PriceCatalogue([price("gpt-4o-2024-08-06", input_="0.000002")],
                               [TenantDiscount("acme", D("50"), EPOCH, model="openai/gpt-4o")])
    assert input_price(catalogue, "acme", "gpt-4o-2024-08-06", "openai", NOW) == D("0.000001")


def test_a_discount_never_applies_on_top_of_a_tenant_price() -> None:
    negotiated = price("gpt-4o", input_="0.000002", tenant_id="acme")
    catalogue = PriceCatalogue([price("gpt-4o"), negotiated], [TenantDiscount("acme", D("50"), EPOCH)])
    assert catalogue.price_for("acme", "gpt-4o", "openai", NOW) is negotiated


def test_a_later_discount_replaces_an_earlier_one_of_the_same_scope() -> None:
    catalogue = PriceCatalogue([price("gpt-4o", input_="0.000002")],
                               [TenantDiscount("acme", D("10"), EPOCH), TenantDiscount("acme", D("25"), JUN)])
    assert input_price(catalogue, "acme", "gpt-4o", "openai", JAN) == D("0.0000018")
    assert input_price(catalogue, "acme", "gpt-4o", "openai", NOW) == D("0.0000015")


@pytest.mark.parametrize("percent", ["0", "-5", "100.5"])
def test_a_discount_is_between_0_and_100_percent(percent: str) -> None:
    with pytest.raises(ValueError, match="discount"):
        TenantDiscount("acme", D(percent), EPOCH)


# -- validation --------------------------------------------------------------------------------------


def test_floats_are_refused_for_money() -> None:
    with pytest.raises(TypeError, match="float"):
        ModelPrice(model="gpt-4o", provider="openai", effective_from=EPOCH,
                   input_per_token=cast(Any, 1.5e-07), output_per_token=D("0.00001"))


def test_prices_need_an_aware_effective_instant_and_at_most_20_decimals() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        price(at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="decimal places"):
        price(input_="0.000000000000000000001")  # 21 places
    with pytest.raises(ValueError, match="negative"):
        price(input_="-0.000001")
    with pytest.raises(ValueError, match="timezone-aware"):
        PriceCatalogue([price()]).price_for(None, "gpt-4o", "openai", datetime(2025, 1, 1))


def test_a_price_is_json_with_money_as_strings() -> None:
    row = price("gpt-4o-mini", input_="1.5E-7", output="6E-7")
    data = row.as_json()
    assert data["input_per_token"] == "0.00000015"
    assert data["output_per_token"] == "0.0000006"
    assert data["cache_read_per_token"] is None
    assert data["currency"] == "USD"
    assert data["model_key"] == "gpt-4o-mini"
