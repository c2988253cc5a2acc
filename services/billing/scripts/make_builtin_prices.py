"""Regenerate the built-in price list from a LiteLLM price-map snapshot.

    .venv/bin/python services/billing/scripts/make_builtin_prices.py \
        ../shared/data/pricing/model_prices_and_context_window.json 2026-07-24

writes `services/billing/llmops_billing/data/builtin_litellm_prices.json`: the snapshot's entries in the
modes billing prices (chat, completion, responses, embedding), trimmed to the fields the importer reads,
still in LiteLLM's format. Numbers are copied as the JSON floats they are (no arithmetic happens here,
so nothing is rounded); the importer reads them with `parse_float=Decimal`. Then update `SNAPSHOT_DATE`
in `llmops_billing/builtin_prices.py` and run the billing unit tests. The list's rows keep the fixed
`BASELINE_EFFECTIVE_FROM`; a price change after the first import is a new dated row, not an edit here.

Run it by hand when a newer snapshot is vetted; the service itself never fetches prices.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from llmops_billing.litellm_import import PRICED_MODES

KEEP = re.compile(
    r"^(litellm_provider|mode|source"
    r"|input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost"
    r"|output_cost_per_reasoning_token|input_cost_per_token_cache_hit|input_cost_per_request)"
    r"(_above_\d+k_tokens)?$"
)
OUT = Path(__file__).resolve().parents[1] / "llmops_billing" / "data" / "builtin_litellm_prices.json"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    snapshot = json.loads(Path(argv[1]).read_text())
    trimmed = {
        key: {field: value for field, value in entry.items() if KEEP.match(field)}
        for key, entry in sorted(snapshot.items())
        if key != "sample_spec" and isinstance(entry, dict) and entry.get("mode") in PRICED_MODES
    }
    OUT.write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
    print(f"{len(trimmed)} of {len(snapshot)} entries -> {OUT} (snapshot of {argv[2]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
