"""Agreement statistics, checked against values computed by hand (worked out in the comments)."""

from __future__ import annotations

import math

import pytest

from llmops_evaluator.agreement import (
    agreement,
    cohens_kappa,
    percent_agreement,
    ranks,
    spearman,
    weighted_kappa,
)


def two_by_two() -> tuple[list[str], list[str]]:
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    return a, b


def test_percent_agreement() -> None:
    a, b = two_by_two()
    assert percent_agreement(a, b) == 35 / 50 == 0.7


def test_cohens_kappa() -> None:
    # observed 0.7; chance = P(A yes) P(B yes) + P(A no) P(B no) = 0.5 x 0.6 + 0.5 x 0.4 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    a, b = two_by_two()
    assert cohens_kappa(a, b) == pytest.approx(0.4)


def test_kappa_of_perfect_and_of_chance_agreement() -> None:
    assert cohens_kappa([1, 2, 3, 1], [1, 2, 3, 1]) == 1.0
    # observed 0.5; chance = 0.5 x 0.5 + 0.5 x 0.5 = 0.5 -> 0
    assert cohens_kappa(["x", "x", "y", "y"], ["x", "y", "x", "y"]) == 0.0


def test_undefined_statistics_are_none() -> None:
    assert cohens_kappa([], []) is None
    assert cohens_kappa(["ok", "ok"], ["ok", "ok"]) is None  # one category: chance agreement is 1
    assert percent_agreement([], []) is None
    assert spearman([1.0], [2.0]) is None
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # no variation
    assert weighted_kappa([3, 3], [3, 3]) is None


def test_quadratic_weighted_kappa() -> None:
    # Categories 1..3, w = (i - j)^2 / 4. Pairs (1,1) (2,2) (3,3) (1,2) (2,3) (3,1):
    # observed weighted disagreement = (0 + 0 + 0 + 1/4 + 1/4 + 1) / 6 = 0.25.
    # Marginals are 1/3 each for both raters; the 9 cells' weights sum to 4 x 1/4 + 2 x 1 = 3, so the
    # expected disagreement is 3 / 9 = 1/3. kappa_w = 1 - 0.25 / (1/3) = 0.25.
    a, b = [1, 2, 3, 1, 2, 3], [1, 2, 3, 2, 3, 1]
    assert weighted_kappa(a, b) == pytest.approx(0.25)


def test_linear_weighted_kappa() -> None:
    # Same pairs, w = |i - j| / 2: observed = (1/2 + 1/2 + 1) / 6 = 1/3; the weights sum to
    # 4 x 1/2 + 2 x 1 = 4, expected = 4 / 9. kappa_w = 1 - (1/3) / (4/9) = 0.25.
    a, b = [1, 2, 3, 1, 2, 3], [1, 2, 3, 2, 3, 1]
    assert weighted_kappa(a, b, weights="linear") == pytest.approx(0.25)


def test_weighted_kappa_counts_a_near_miss_as_partial_agreement() -> None:
    human = [1, 2, 3, 4, 5]
    near = weighted_kappa([2, 2, 3, 4, 5], human, categories=range(1, 6))
    far = weighted_kappa([5, 2, 3, 4, 5], human, categories=range(1, 6))
    assert near is not None and far is not None and near > far


def test_ranks_average_ties() -> None:
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_spearman_without_ties() -> None:
    # The textbook example: IQ against hours of TV a week; sum of squared rank differences 194,
    # rho = 1 - 6 x 194 / (10 x 99) = -29/165.
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    assert spearman(iq, tv) == pytest.approx(-29 / 165)


def test_spearman_with_ties() -> None:
    # ranks x = 1..5, y = [1, 2, 3.5, 5, 3.5]; deviations from 3: dx = [-2, -1, 0, 1, 2],
    # dy = [-2, -1, 0.5, 2, 0.5]; sum dx dy = 8, sum dx^2 = 10, sum dy^2 = 9.5 -> 8 / sqrt(95)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_unpaired_ratings_are_refused() -> None:
    with pytest.raises(ValueError, match="pair them first"):
        cohens_kappa([1, 2], [1])


def test_the_report() -> None:
    # observed 4/5; the judge used 5, 4, 4, 2, 1 and the humans 5, 4, 3, 2, 1, so chance agreement is
    # (1x1 + 2x1 + 1x1 + 1x1) / 25 = 0.2 and kappa = (0.8 - 0.2) / 0.8 = 0.75.
    # Ranks: judge [5, 3.5, 3.5, 2, 1], humans [5, 4, 3, 2, 1]; sum dx dy = 9.5, sum dx^2 = 9.5,
    # sum dy^2 = 10 -> rho = 9.5 / sqrt(95).
    report = agreement([5, 4, 4, 2, 1], [5, 4, 3, 2, 1], categories=range(1, 6))
    assert report.items == 5 and report.percent_agreement == 0.8
    assert report.kappa == pytest.approx(0.75)
    assert report.spearman == pytest.approx(9.5 / math.sqrt(95))
    assert report.weighted_kappa is not None and report.weighted_kappa > 0.75
