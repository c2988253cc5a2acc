"""Experiments' rules, pure: what a valid set of variants is, and which variant a unit gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from llmops_prompts.assignment import HOLDOUT, assign

__all__ = ["HOLDOUT", "MAX_WINDOW", "assigned", "variant_problems"]

MAX_WINDOW = timedelta(days=400)  # the longest window a report covers (it reads the window hour by hour)


def variant_problems(variants: Sequence[Mapping[str, Any]], labels: Mapping[str, int],
                     versions: set[int]) -> list[tuple[list[str | int], str]]:
    """(location in the body, message) for each variant that cannot be served; empty when all can."""
    problems: list[tuple[list[str | int], str]] = []
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        where: list[str | int] = ["variants", i]
        if variant["name"] in seen or variant["name"] == HOLDOUT:
            problems.append(([*where, "name"], f"variant name {variant['name']!r} is taken"))
        seen.add(variant["name"])
        if (variant.get("version") is None) == (variant.get("label") is None):
            problems.append((where, "give a version or a label, exactly one"))
        elif variant.get("version") is not None and variant["version"] not in versions:
            problems.append(([*where, "version"], f"no version {variant['version']}"))
        elif variant.get("label") is not None and variant["label"] not in labels:
            problems.append(([*where, "label"], f"no label {variant['label']!r}"))
    return problems


def assigned(experiment: Mapping[str, Any], unit_id: str) -> dict[str, Any] | None:
    """The served variant (`{name, weight, prompt}`) of this unit, or None for the holdout."""
    variants = experiment["variants"]
    name = assign(experiment["id"], unit_id, [(v["name"], v["weight"]) for v in variants], experiment["holdout"])
    if name == HOLDOUT:
        return None
    chosen: dict[str, Any] = next(v for v in variants if v["name"] == name)
    return chosen
