"""Deterministic assignment of a unit (a user, a session or a trace) to an experiment's variant.

`bucket(experiment_id, unit_id)` is a number in [0, 1) from SHA-256 of both ids: the same unit gets the
same number in every process and every language that implements it (the SDK does, in
`llmops_sdk.prompts`), and different experiments split the same units independently. The first `holdout`
of [0, 1) is the holdout (callers get the label's own version, outside the experiment); the rest is cut
in proportion to the variants' weights, in their order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

HOLDOUT = "holdout"


def bucket(experiment_id: str, unit_id: str) -> float:
    digest = hashlib.sha256(json.dumps([experiment_id, unit_id]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment_id: str, unit_id: str, weights: Sequence[tuple[str, float]], holdout: float = 0.0) -> str:
    """The variant name of this unit, or `HOLDOUT`."""
    point = bucket(experiment_id, unit_id)
    if point < holdout:
        return HOLDOUT
    total = sum(weight for _, weight in weights)
    scaled = (point - holdout) / (1 - holdout) * total
    for name, weight in weights:
        if scaled < weight:
            return name
        scaled -= weight
    return weights[-1][0]
