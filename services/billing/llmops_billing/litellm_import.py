"""Import LiteLLM's `model_prices_and_context_window.json` format into `ModelPrice` rows.

The format is one JSON object keyed by model name (`gpt-4o`, `azure/gpt-4o`,
`bedrock/anthropic.claude-...`, `gemini/gemini-2.0-flash`), each entry giving `litellm_provider`, `mode`
and prices in USD per token. Fields read:

| LiteLLM field                                   | ModelPrice                |
|-------------------------------------------------|---------------------------|
| `input_cost_per_token`                          | `input_per_token`         |
| `output_cost_per_token`                         | `output_per_token`        |
| `cache_read_input_token_cost` (or DeepSeek's `input_cost_per_token_cache_hit`) | `cache_read_per_token` |
| `cache_creation_input_token_cost`               | `cache_write_per_token`   |
| `output_cost_per_reasoning_token`               | `reasoning_per_token`     |
| `input_cost_per_request`                        | `request_fee`             |
| `<any of the above>_above_<N>k_tokens`          | a `PriceTier` above N*1000 input tokens |

Not read (the event contract has no quantity to multiply them by): service tiers (`*_priority`,
`*_flex`, `*_batches`), one-hour cache writes (`*_above_1hr`), audio/image/video/character/second prices,
web-search fees (`search_context_cost_per_query`).

Kept modes: `chat`, `completion`, `responses` (text generation) and `embedding` (input tokens only; an
embedding entry without an output price gets output 0, which is right for embeddings). Skipped, with the
reason recorded: `sample_spec`, image generation, audio transcription and speech, realtime (audio-token
pricing), and any entry without a usable input or output price. Numbers are parsed as `Decimal`
(`parse_float=Decimal`), so `1.5e-07` stays exactly 0.00000015.

After normalisation two keys can name the same model at the same provider (`gemini/gemini-2.5-pro` and
`vertex_ai/gemini-2.5-pro` are different providers, but `bedrock/anthropic.claude-x` and
`bedrock/us.anthropic.claude-x` are one): the entry whose key already is the canonical key wins, else the
first in key order; the others are reported as skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmops_billing.money import ZERO
from llmops_billing.normalise import normalise_model, normalise_provider, provider_of_prefix
from llmops_billing.prices import ModelPrice, PriceTier

PRICED_MODES = frozenset({"chat", "completion", "responses", "embedding"})

_FIELDS = {
    "input_cost_per_token": "input_per_token",
    "output_cost_per_token": "output_per_token",
    "cache_read_input_token_cost": "cache_read_per_token",
    "cache_creation_input_token_cost": "cache_write_per_token",
    "output_cost_per_reasoning_token": "reasoning_per_token",
}
_TIER_FIELD = re.compile(r"^(?P<field>" + "|".join(_FIELDS) + r")_above_(?P<k>\d+)k_tokens$")


@dataclass(frozen=True, slots=True)
class Skipped:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class LiteLLMImport:
    prices: tuple[ModelPrice, ...]
    skipped: tuple[Skipped, ...]

    def by_key(self) -> dict[tuple[str, str], ModelPrice]:
        """Rows by (provider, model_key)."""
        return {(p.provider, p.model_key): p for p in self.prices}


class BadPriceFile(ValueError):
    """The file is not in LiteLLM's format at all (not a JSON object of entries)."""


def parse_litellm_prices(raw: str | bytes | Mapping[str, Any], *, effective_from: datetime, source: str,
                         modes: frozenset[str] = PRICED_MODES) -> LiteLLMImport:
    """Rows for every priceable entry, all in force from `effective_from`, tagged with `source`.

    `raw` is the file's text, or an already parsed mapping (its floats are converted through `str`, which
    gives their shortest exact spelling).
    """
    if isinstance(raw, str | bytes):
        try:
            data = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise BadPriceFile(f"not valid JSON: {exc}") from exc
    else:
        data = raw
    if not isinstance(data, Mapping):
        raise BadPriceFile("a LiteLLM price file is a JSON object keyed by model name")

    candidates: list[tuple[str, ModelPrice]] = []
    skipped: list[Skipped] = []
    for key in sorted(data):
        entry = data[key]
        reason, price = _entry_to_price(str(key), entry, effective_from=effective_from, source=source, modes=modes)
        if price is None:
            skipped.append(Skipped(str(key), reason))
        else:
            candidates.append((str(key), price))

    chosen: dict[tuple[str, str], tuple[str, ModelPrice]] = {}
    for key, price in candidates:
        identity = (price.provider, price.model_key)
        incumbent = chosen.get(identity)
        if incumbent is None:
            chosen[identity] = (key, price)
            continue
        canonical = key.strip().lower() == price.model_key and incumbent[0].strip().lower() != price.model_key
        loser, winner = (incumbent, (key, price)) if canonical else ((key, price), incumbent)
        chosen[identity] = winner
        same = _same_prices(loser[1], winner[1])
        skipped.append(Skipped(loser[0], f"same model as {winner[0]!r} after normalisation"
                                         f"{' (same prices)' if same else ' (different prices: kept the other)'}"))
    prices = tuple(price for _key, price in sorted(chosen.values(), key=lambda kp: kp[0]))
    return LiteLLMImport(prices=prices, skipped=tuple(sorted(skipped, key=lambda s: s.key)))


def load_litellm_file(path: Path, *, effective_from: datetime, source: str,
                      modes: frozenset[str] = PRICED_MODES) -> LiteLLMImport:
    """`parse_litellm_prices` of a file (the one I/O wrapper here)."""
    return parse_litellm_prices(path.read_bytes(), effective_from=effective_from, source=source, modes=modes)


def _entry_to_price(key: str, entry: Any, *, effective_from: datetime, source: str,
                    modes: frozenset[str]) -> tuple[str, ModelPrice | None]:
    if key == "sample_spec":
        return "LiteLLM's documentation entry, not a model", None
    if not isinstance(entry, Mapping):
        return "entry is not an object", None
    mode = entry.get("mode")
    if mode not in modes:
        return f"mode {mode!r} is not priced per text token", None
    try:
        values = {name: _number(entry.get(field_name)) for field_name, name in _FIELDS.items()}
        if values["cache_read_per_token"] is None:
            values["cache_read_per_token"] = _number(entry.get("input_cost_per_token_cache_hit"))
        request_fee = _number(entry.get("input_cost_per_request"))
        tiers = _tiers(entry)
    except ValueError as exc:
        return str(exc), None
    input_price, output_price = values["input_per_token"], values["output_per_token"]
    if input_price is None:
        return "no input_cost_per_token", None
    if output_price is None:
        if mode != "embedding":
            return "no output_cost_per_token", None
        output_price = ZERO
    provider = normalise_provider(str(entry.get("litellm_provider") or "")) or provider_of_prefix(key)
    try:
        price = ModelPrice(
            model=key,
            provider=provider,
            effective_from=effective_from,
            input_per_token=input_price,
            output_per_token=output_price,
            cache_read_per_token=values["cache_read_per_token"],
            cache_write_per_token=values["cache_write_per_token"],
            reasoning_per_token=values["reasoning_per_token"],
            request_fee=ZERO if request_fee is None else request_fee,
            tiers=tiers,
            source=source,
        )
    except (TypeError, ValueError) as exc:
        return f"unusable price: {exc}", None
    if not normalise_model(key):
        return "empty model name", None
    return "", price


def _tiers(entry: Mapping[str, Any]) -> tuple[PriceTier, ...]:
    by_threshold: dict[int, dict[str, Decimal | None]] = {}
    for field_name, value in entry.items():
        match = _TIER_FIELD.match(str(field_name))
        if match is None:
            continue
        threshold = int(match["k"]) * 1000
        by_threshold.setdefault(threshold, {})[_FIELDS[match["field"]]] = _number(value)
    return tuple(PriceTier(threshold, **fields) for threshold, fields in sorted(by_threshold.items()))


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"a price cannot be {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))  # shortest round-trip spelling: 1.5e-07 -> Decimal('1.5E-7')
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError as exc:
            raise ValueError(f"price {value!r} is not a number") from exc
    else:
        raise ValueError(f"price {value!r} is not a number")
    if not result.is_finite() or result < 0:
        raise ValueError(f"price {value!r} is not a non-negative number")
    return result


def _same_prices(a: ModelPrice, b: ModelPrice) -> bool:
    fields = ("input_per_token", "output_per_token", "cache_read_per_token", "cache_write_per_token",
              "reasoning_per_token", "request_fee", "tiers")
    return all(getattr(a, f) == getattr(b, f) for f in fields)
