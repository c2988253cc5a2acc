"""The built-in price list: what billing knows with no prices loaded into the database.

Two files in LiteLLM's format, inside the package, read through the same importer as any other file:

- `data/builtin_litellm_prices.json`: every chat, completion, responses and embedding entry of the
  LiteLLM price-map snapshot of `SNAPSHOT_DATE` (OpenAI, Anthropic, Gemini/Vertex, xAI, DeepSeek and a
  few others), trimmed to the price fields by `scripts/make_builtin_prices.py`;
- `data/builtin_manual_prices.json`: a few retired but still-common models the snapshot no longer lists
  (Claude 3.5 Sonnet/Haiku, Gemini 1.5 Pro/Flash), each with its `source` note. It may not repeat a
  model of the snapshot.

Every built-in row is in force from `BASELINE_EFFECTIVE_FROM` (1970): the list is the earliest price
billing knows, so it prices any older event too. A later price change is a new, dated row (in the
database, or a newer import with a later `effective_from`), never an edit of this list: history stays.
Nothing here is fetched at run time; the files are read on first use, not at import.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib import resources

from llmops_billing.litellm_import import LiteLLMImport, parse_litellm_prices
from llmops_billing.prices import ModelPrice, PriceCatalogue

SNAPSHOT_DATE = "2026-07-24"
SNAPSHOT_SOURCE = f"litellm-{SNAPSHOT_DATE}"
MANUAL_SOURCE = "builtin-manual"
BASELINE_EFFECTIVE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
SNAPSHOT_FILE = "builtin_litellm_prices.json"
MANUAL_FILE = "builtin_manual_prices.json"


def _read(name: str) -> bytes:
    return resources.files("llmops_billing").joinpath("data", name).read_bytes()


@functools.cache
def builtin_imports() -> tuple[LiteLLMImport, LiteLLMImport]:
    """The snapshot's import and the manual list's import (with what each skipped)."""
    snapshot = parse_litellm_prices(_read(SNAPSHOT_FILE), effective_from=BASELINE_EFFECTIVE_FROM,
                                    source=SNAPSHOT_SOURCE)
    manual = parse_litellm_prices(_read(MANUAL_FILE), effective_from=BASELINE_EFFECTIVE_FROM,
                                  source=MANUAL_SOURCE)
    overlap = set(snapshot.by_key()) & set(manual.by_key())
    if overlap:
        raise ValueError(f"{MANUAL_FILE} repeats models of the snapshot: {sorted(overlap)}")
    return snapshot, manual


def builtin_prices() -> tuple[ModelPrice, ...]:
    snapshot, manual = builtin_imports()
    return (*snapshot.prices, *manual.prices)


@functools.cache
def builtin_catalogue() -> PriceCatalogue:
    """The built-in list prices as a catalogue (no tenant overrides)."""
    return PriceCatalogue(builtin_prices())
