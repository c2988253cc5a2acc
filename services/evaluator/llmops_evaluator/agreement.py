"""How well the judge agrees with people: percent agreement, Cohen's kappa (plain and weighted), Spearman.

Pure functions over two equally long sequences, the judge's and the humans' ratings of the same items.
Labels are compared for agreement and kappa; normalised scores (or the rubric's integer scores) for
Spearman and weighted kappa. A statistic that is undefined for the data (no items, a rater who gives
everyone the same rating) is `None`, never a misleading number.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal


def _check(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"the two raters rated {len(a)} and {len(b)} items: pair them first")


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """The share of items both raters gave the same rating."""
    _check(a, b)
    if not a:
        return None
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cohens_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa: (observed agreement - chance agreement) / (1 - chance agreement)."""
    _check(a, b)
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if chance == 1:
        return None  # both raters used one and the same category throughout
    return (observed - chance) / (1 - chance)


def weighted_kappa(a: Sequence[int], b: Sequence[int], *, categories: Sequence[int] | None = None,
                   weights: Literal["linear", "quadratic"] = "quadratic") -> float | None:
    """Cohen's weighted kappa for ordinal ratings (a 1-5 scale): near misses count as partial agreement.

    kappa_w = 1 - sum(w * observed) / sum(w * expected), with w_ij = |i - j| / (k - 1) (linear) or its
    square (quadratic) over the `categories` (default: every value either rater used, sorted).
    """
    _check(a, b)
    n = len(a)
    cats = sorted(set(categories) if categories is not None else set(a) | set(b))
    if n == 0 or len(cats) < 2:
        return None
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)

    def weight(i: int, j: int) -> float:
        w = abs(i - j) / (k - 1)
        return w * w if weights == "quadratic" else w

    observed = sum(weight(index[x], index[y]) for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(index[x] for x in a), Counter(index[y] for y in b)
    expected = sum(count_a[i] * count_b[j] * weight(i, j) for i in range(k) for j in range(k)) / (n * n)
    if expected == 0:
        return None
    return 1 - observed / expected


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for position in range(start, end + 1):
            out[order[position]] = average
        start = end + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    _check(x, y)
    n = len(x)
    if n < 2:
        return None
    mean_x, mean_y = sum(x) / n, sum(y) / n
    dx = [v - mean_x for v in x]
    dy = [v - mean_y for v in y]
    sxx, syy = sum(d * d for d in dx), sum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return None
    return sum(p * q for p, q in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged)."""
    _check(x, y)
    return pearson(ranks(x), ranks(y))


@dataclass(frozen=True)
class Agreement:
    items: int
    percent_agreement: float | None
    kappa: float | None
    weighted_kappa: float | None
    spearman: float | None


def agreement(judge_scores: Sequence[int], human_scores: Sequence[int], *,
              categories: Sequence[int] | None = None) -> Agreement:
    """All the statistics for paired integer ratings on one rubric's scale."""
    return Agreement(
        items=len(judge_scores),
        percent_agreement=percent_agreement(judge_scores, human_scores),
        kappa=cohens_kappa(judge_scores, human_scores),
        weighted_kappa=weighted_kappa(judge_scores, human_scores, categories=categories),
        spearman=spearman([float(s) for s in judge_scores], [float(s) for s in human_scores]),
    )
