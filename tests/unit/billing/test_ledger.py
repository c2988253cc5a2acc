"""Ledger rows (pure): what is billed, how it is priced, what it adds to the rollups; re-pricing a row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from llmops_billing.cost import price_usage
from llmops_billing.ledger import (
    COLUMNS,
    dimension_deltas,
    ledger_row,
    narrow_deltas,
    pricing_changed,
    repriced,
    rollup_deltas,
    usage_record,
)
from llmops_billing.prices import ModelPrice, PriceCatalogue, TenantDiscount
from llmops_shared.contract import Interaction
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym, scrub_all
from llmops_shared.usage_events import UsageMessage
from tests.support.events import make_event

D = Decimal
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRICED_AT = datetime(2026, 11, 24, 12, tzinfo=UTC)
CATALOGUE = PriceCatalogue(
    [
        ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=EPOCH, input_per_token=D("1.5E-7"),
                   output_per_token=D("6E-7"), cache_read_per_token=D("7.5E-8")),
        ModelPrice(model="gpt-4o-mini-2024-07-18", provider="openai", effective_from=EPOCH,
                   input_per_token=D("1E-7"), output_per_token=D("5E-7")),
    ],
    [TenantDiscount("acme", D("10"), EPOCH, model="gpt-4o-mini")],
)


def event(**overrides: Any) -> Interaction:
    raw = make_event(**overrides)
    raw.setdefault("tenant_id", "globex")
    return Interaction.model_validate(raw)


def test_a_priced_llm_call_becomes_one_ledger_row() -> None:
    interaction = event(usage={"input_tokens": 1000, "cache_read_input_tokens": 400, "output_tokens": 100},
                        prompt={"name": "triage", "version": "3"}, tags=["a", "b"], user_id="u-1",
                        occurred_at="2026-11-24T10:15:00+01:00")
    row = ledger_row(interaction, CATALOGUE, priced_at=PRICED_AT)
    assert row is not None
    assert (row.tenant_id, row.app_id, row.provider, row.model, row.model_key) == (
        "globex", "support-bot", "openai", "gpt-4o-mini", "gpt-4o-mini")
    assert (row.prompt_name, row.prompt_version, row.prompt_variant) == ("triage", "3", "")
    assert row.cost_input == D("0.00009") and row.cost_cache_read == D("0.00003")
    assert row.cost_output == D("0.00006") and row.cost_total == D("0.00018")
    assert not row.unpriced and row.unpriced_reason is None
    assert row.price_version == CATALOGUE.prices[0].price_version
    assert row.tags == ("a", "b") and row.user_id == pseudonym("globex", "u-1", DEV_PSEUDONYM_KEY)
    assert row.priced_at == PRICED_AT
    assert list(COLUMNS)[:2] == ["event_id", "occurred_at"]


def test_a_row_holds_the_users_pseudonym_and_scrubbed_tags_never_the_raw_values() -> None:
    # Fixed ids and time: the search of the row's text below must not meet "0199" in a random id.
    raw = event(user_id="jane.doe@example.com", tags=["vip", "mail jane.doe@example.com", "+1 415 555 0199"],
                usage={"input_tokens": 10, "output_tokens": 1}, event_id="5e0c2f4a-7b1d-4c3e-9a8b-6d5f4e3c2b1a",
                trace_id="tr-pseudonym", span_id="sp-pseudonym", occurred_at="2026-11-24T10:15:00+00:00")
    row = ledger_row(raw, CATALOGUE, priced_at=PRICED_AT, pseudonym_key=b"operator-secret")
    assert row is not None
    assert row.user_id == pseudonym("globex", "jane.doe@example.com", b"operator-secret")
    assert row.user_id != pseudonym("globex", "jane.doe@example.com", DEV_PSEUDONYM_KEY)  # the key is used
    assert row.tags == ("vip", "mail [EMAIL_ADDRESS]", "[PHONE_NUMBER]")
    assert "jane" not in repr(row) and "0199" not in repr(row)
    # An event from the clean topic carries the pseudonym already: it is not hashed again.
    clean = event(user_id=row.user_id, usage={"input_tokens": 10, "output_tokens": 1})
    again = ledger_row(clean, CATALOGUE, priced_at=PRICED_AT, pseudonym_key=b"operator-secret")
    assert again is not None and again.user_id == row.user_id
    assert ledger_row(event(), CATALOGUE, priced_at=PRICED_AT).user_id is None  # type: ignore[union-attr]


def test_repeated_users_and_tags_get_the_pseudonym_and_scrubbing_of_their_own_tenant_and_key() -> None:
    """The worker keeps recent pseudonyms and scrubbed tag sets (they repeat in a stream): a repeat gives what
    `pseudonym` and `scrub_all` give for ITS tenant, user, key and tags, whatever came before it."""
    cases = [(tenant, user, key, tags) for tenant in ("globex", "acme") for user in ("u-1", "jane@example.com")
             for key in (b"k1", b"k2") for tags in ([], ["vip"], ["mail jane@example.com", "vip"])]
    for _ in range(2):
        for tenant, user, key, tags in cases:
            row = ledger_row(event(tenant_id=tenant, user_id=user, tags=tags,
                                   usage={"input_tokens": 10, "output_tokens": 1}),
                             CATALOGUE, priced_at=PRICED_AT, pseudonym_key=key)
            assert row is not None
            assert row.user_id == pseudonym(tenant, user, key)
            assert row.tags == scrub_all(tags) and isinstance(row.tags, tuple)


@pytest.mark.parametrize("usage", [
    {"input_tokens": 1000, "cache_read_input_tokens": 400, "cache_write_input_tokens": 100, "output_tokens": 100,
     "reasoning_tokens": 40},
    {"input_tokens": 0, "output_tokens": 0},
])
@pytest.mark.parametrize("tenant", ["globex", "acme"])  # list price, and a discounted one
def test_the_ledger_prices_with_price_usage(usage: dict[str, int], tenant: str) -> None:
    interaction = event(tenant_id=tenant, usage=usage)
    row = ledger_row(interaction, CATALOGUE, priced_at=PRICED_AT)
    match = CATALOGUE.resolve(tenant, interaction.model, interaction.provider, interaction.occurred_at)
    assert row is not None and match is not None and interaction.usage is not None
    cost = price_usage(interaction.usage, match.price)
    assert (row.cost_input, row.cost_cache_read, row.cost_cache_write, row.cost_output, row.cost_reasoning,
            row.cost_request) == cost.amounts
    assert (row.cost_total, row.price_version, row.price_tier) == (cost.total, cost.price_version,
                                                                   cost.tier_above_input_tokens)


def test_the_served_snapshot_is_priced_before_the_requested_alias() -> None:
    row = ledger_row(event(model="gpt-4o-mini", response_model="gpt-4o-mini-2024-07-18",
                           usage={"input_tokens": 10, "output_tokens": 10}), CATALOGUE, priced_at=PRICED_AT)
    assert row is not None and row.model_key == "gpt-4o-mini-2024-07-18" and row.cost_total == D("0.000006")


def test_a_tenant_discount_is_in_the_ledger_amount_and_price_version() -> None:
    row = ledger_row(event(tenant_id="acme", usage={"input_tokens": 1000, "output_tokens": 0}), CATALOGUE,
                     priced_at=PRICED_AT)
    assert row is not None and row.cost_total == D("0.000135") and row.price_version is not None
    assert "+discount/acme/" in row.price_version


def test_an_unknown_model_is_recorded_unpriced_with_its_tokens() -> None:
    row = ledger_row(event(model="mystery-9000", provider="acme-ai", usage={"input_tokens": 5, "output_tokens": 7}),
                     CATALOGUE, priced_at=PRICED_AT)
    assert row is not None and row.unpriced and row.unpriced_reason == "unknown_model"
    assert row.cost_total is None and row.cost_input is None and row.price_version is None
    assert (row.input_tokens, row.output_tokens, row.model_key) == (5, 7, "mystery-9000")


def test_usage_without_a_model_is_unpriced() -> None:
    raw = make_event(usage={"input_tokens": 5, "output_tokens": 7}, tenant_id="globex")
    del raw["model"]
    row = ledger_row(Interaction.model_validate(raw), CATALOGUE, priced_at=PRICED_AT)
    assert row is not None and row.unpriced_reason == "no_model"


def test_an_llm_call_without_usage_is_unpriced_not_free() -> None:
    raw = make_event(tenant_id="globex")
    del raw["usage"]
    row = ledger_row(Interaction.model_validate(raw), CATALOGUE, priced_at=PRICED_AT)
    assert row is not None and row.unpriced_reason == "no_usage" and row.input_tokens == 0


def test_a_failed_call_without_usage_is_not_billed() -> None:
    raw = make_event(tenant_id="globex", status="error", error={"type": "RateLimitError"})
    del raw["usage"]
    assert ledger_row(Interaction.model_validate(raw), CATALOGUE, priced_at=PRICED_AT) is None


@pytest.mark.parametrize("kind", ["chain", "agent", "tool", "retriever"])
def test_non_model_spans_are_not_billed_even_with_usage(kind: str) -> None:
    assert ledger_row(event(span_kind=kind), CATALOGUE, priced_at=PRICED_AT) is None


def test_rollups_sum_tokens_of_all_rows_and_costs_of_priced_rows_per_hour_and_day() -> None:
    rows = [
        ledger_row(event(occurred_at="2026-11-24T10:05:00Z", usage={"input_tokens": 100, "output_tokens": 10}),
                   CATALOGUE, priced_at=PRICED_AT),
        ledger_row(event(occurred_at="2026-11-24T10:55:00Z", usage={"input_tokens": 200, "output_tokens": 20}),
                   CATALOGUE, priced_at=PRICED_AT),
        ledger_row(event(occurred_at="2026-11-24T11:00:00Z", usage={"input_tokens": 300, "output_tokens": 30}),
                   CATALOGUE, priced_at=PRICED_AT),
        ledger_row(event(occurred_at="2026-11-24T10:30:00Z", model="mystery", usage={"input_tokens": 7}),
                   CATALOGUE, priced_at=PRICED_AT),
    ]
    hourly, daily = rollup_deltas([r for r in rows if r is not None])
    ten = hourly[("globex", datetime(2026, 11, 24, 10, tzinfo=UTC), "support-bot", "test", "openai", "gpt-4o-mini",
                  "", "", "")]
    assert (ten.event_count, ten.unpriced_count, ten.tokens[0], ten.tokens[1]) == (2, 0, 300, 30)
    assert ten.costs[-1] == D("0.000063")
    day = daily[("globex", date(2026, 11, 24), "support-bot", "test", "openai", "gpt-4o-mini", "", "", "")]
    assert (day.event_count, day.tokens[0], day.costs[-1]) == (3, 600, D("0.000126"))
    mystery = daily[("globex", date(2026, 11, 24), "support-bot", "test", "openai", "mystery", "", "", "")]
    assert (mystery.event_count, mystery.unpriced_count, mystery.tokens[0], mystery.costs[-1]) == (1, 1, 7, 0)
    assert len(hourly) == 3 and len(daily) == 2


# -- re-pricing a row ---------------------------------------------------------------------------------

NOV = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
OLD = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=EPOCH, input_per_token=D("0.00000015"),
                 output_per_token=D("0.0000006"))
NEW = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=NOV, input_per_token=D("0.0000002"),
                 output_per_token=D("0.0000008"), source="correction")


def row_for(catalogue: PriceCatalogue, **overrides: Any) -> Any:
    event = Interaction.model_validate({**make_event(occurred_at="2026-11-10T10:00:00Z",
                                                     usage={"input_tokens": 1000, "output_tokens": 100}),
                                        "tenant_id": "acme", **overrides})
    return ledger_row(event, catalogue, priced_at=NOW)


@pytest.mark.parametrize("overrides", [
    {}, {"provider": None, "model": "openai/gpt-4o-mini"}, {"response_model": "gpt-4o-mini-2024-07-18"},
    {"model": "mystery"}, {"model": None, "response_model": None}, {"usage": None},
])
def test_repricing_with_the_same_catalogue_changes_nothing(overrides: dict[str, Any]) -> None:
    catalogue = PriceCatalogue([OLD])
    row = row_for(catalogue, **overrides)
    assert not pricing_changed(row, repriced(row, catalogue, priced_at=NOW + timedelta(days=1)))


def test_repricing_follows_a_correction_and_the_rollup_delta_moves_the_difference() -> None:
    row = row_for(PriceCatalogue([OLD]))
    new = repriced(row, PriceCatalogue([OLD, NEW]), priced_at=NOW)
    assert new.cost_total == 1000 * D("0.0000002") + 100 * D("0.0000008")
    assert new.price_version == NEW.price_version and new.priced_at == NOW and pricing_changed(row, new)
    _hourly, daily = rollup_deltas([new], removed=[row])
    [(_key, delta)] = daily.items()
    assert delta.event_count == 0 and delta.tokens == [0] * 5
    assert delta.costs[-1] == new.cost_total - row.cost_total
    unknown = row_for(PriceCatalogue([OLD]), model="acme-chat-2025-01-01", provider="acme")
    priced = repriced(unknown, PriceCatalogue([OLD, ModelPrice(model="acme-chat", provider="acme",
                                                               effective_from=EPOCH, input_per_token=D("1"),
                                                               output_per_token=D("1"))]), priced_at=NOW)
    assert unknown.unpriced and not priced.unpriced and priced.model_key == "acme-chat"
    moved, _ = rollup_deltas([priced], removed=[unknown])
    assert sorted(d.event_count for d in moved.values()) == [-1, 1]  # out of the old key, into the new one
    users, tags = dimension_deltas([priced], removed=[unknown])
    assert sorted(d.event_count for d in users.values()) == [-1, 1]
    assert sorted(d.event_count for d in tags.values()) == [-1, 1]


def test_the_by_user_and_by_tag_deltas_count_an_event_under_each_tag() -> None:
    catalogue = PriceCatalogue([OLD])
    tagged = row_for(catalogue, user_id=None, tags=["a", "b"])
    untagged = row_for(catalogue, user_id="u-1", tags=[])
    users, tags = dimension_deltas([tagged, untagged])
    assert sorted(key[2] for key in users) == ["", pseudonym("acme", "u-1", DEV_PSEUDONYM_KEY)]
    assert sorted(key[2] for key in tags) == ["", "a", "b"]
    assert all(d.event_count == 1 and d.costs[-1] == tagged.cost_total for d in tags.values())
    day = tagged.occurred_at.date()
    assert ("acme", day, "a", tagged.app_id, tagged.environment, tagged.provider, tagged.model_key) in tags


@pytest.mark.parametrize("overrides", [
    {"usage": {"input_tokens": 1000, "output_tokens": 100}, "prompt": {"name": "triage", "version": "3",
                                                                      "variant": "b"}},
    {"model": "mystery-model", "occurred_at": "2026-11-24T10:15:00.123456+01:00"},  # unpriced; microseconds
    {"environment": "staging", "occurred_at": "2026-11-24T00:00:00Z"},
])
def test_the_usage_record_reads_back_as_the_usage_message_of_its_row(overrides: dict[str, Any]) -> None:
    row = ledger_row(event(**overrides), CATALOGUE, priced_at=PRICED_AT)
    assert row is not None
    record = usage_record(row)
    assert record.key == f"{row.tenant_id}/{row.app_id}".encode()
    assert UsageMessage.model_validate_json(record.value) == UsageMessage(
        tenant_id=row.tenant_id, app_id=row.app_id, event_id=row.event_id, occurred_at=row.occurred_at,
        environment=row.environment, provider=row.provider, model=row.model, prompt_name=row.prompt_name,
        prompt_version=row.prompt_version, prompt_variant=row.prompt_variant, input_tokens=row.input_tokens,
        output_tokens=row.output_tokens, cost_total=None if row.cost_total is None else str(row.cost_total),
        unpriced=row.unpriced)


def test_narrow_deltas_are_per_tenant_hour_and_per_tenant_month_user() -> None:
    rows = [ledger_row(event(occurred_at=f"2026-11-30T23:{m:02d}:00Z", user_id=user,
                             usage={"input_tokens": 10, "output_tokens": 1}), CATALOGUE, priced_at=PRICED_AT)
            for m, user in ((0, "u-1"), (10, "u-1"), (20, None))]
    december = ledger_row(event(occurred_at="2026-12-01T00:00:00Z", user_id="u-1",
                                usage={"input_tokens": 10, "output_tokens": 1}), CATALOGUE, priced_at=PRICED_AT)
    assert all(rows) and december is not None
    totals, users = narrow_deltas([*(r for r in rows if r), december])
    assert {k: v.event_count for k, v in totals.items()} == {
        ("globex", datetime(2026, 11, 30, 23, tzinfo=UTC)): 3, ("globex", datetime(2026, 12, 1, tzinfo=UTC)): 1}
    u1 = pseudonym("globex", "u-1", DEV_PSEUDONYM_KEY)
    assert {k: v.event_count for k, v in users.items()} == {
        ("globex", date(2026, 11, 1), u1): 2, ("globex", date(2026, 11, 1), ""): 1,
        ("globex", date(2026, 12, 1), u1): 1}
    moved, _ = narrow_deltas([december], removed=[december])  # re-priced to the same: nothing at all
    assert moved == {}


def test_a_row_built_by_its_slots_is_the_dataclass_s_row() -> None:
    """`ledger_row` builds rows by setting their slots (`_new_row`): equal, hashable and frozen as
    `LedgerRow(...)`'s, for a priced and an unpriced row."""
    import dataclasses

    from llmops_billing.ledger import COLUMNS, LedgerRow, _new_row

    priced = ledger_row(event(model="gpt-4o-mini", provider="openai"), CATALOGUE, priced_at=PRICED_AT)
    unknown = ledger_row(event(model="no-such-model", provider="openai"), CATALOGUE, priced_at=PRICED_AT)
    for row in (priced, unknown):
        assert row is not None
        values = [getattr(row, name) for name in COLUMNS]
        built, plain = _new_row(values), LedgerRow(*values)
        assert type(built) is LedgerRow and built == plain and hash(built) == hash(plain)
        with pytest.raises(dataclasses.FrozenInstanceError):
            built.model = "other"
    with pytest.raises(ValueError):
        _new_row(values[:-1])  # one value per column, no fewer
