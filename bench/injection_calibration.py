"""Operating-point rules for the learned injection model, compared on the `dev` rows' out-of-fold logits only.

    .venv/bin/python bench/injection_calibration.py [--eighth] [--oof OUT.npy | --load OOF.npy]

The out-of-fold logits are `train_injection.out_of_fold` on the dev rows (leave-one-batch-out, the script's own
fits and seed; about five minutes of CPU; `--oof` saves them, `--load` reuses a saved file). `--eighth`: the
data with the eighth batch (`build_injection_set.rows(eighth=True)`, rows `y:NNN`, its own fold). The test split
is never read.

Each rule maps out-of-fold logits to a cut. The **nested check** scores a rule the way the test split meets it:
for each generated batch B, the rule picks its cut on the other rows alone and B's benign and attack rows are
counted at that cut (B's frames and phrases are new to the fold model that scored them, and its benign rows were
not there to calibrate on). Printed per rule: the held batches' pooled FPR, their largest FPR, their recall
(rows pooled and the batches' mean), each batch's false positives and recall, and the rule on all dev rows (its
target, the out-of-fold FPR and recall at its cut).

Rules: `target` (the training script's since the sixth attempt: the largest target at which every batch,
calibrated without it, keeps the FPR within a bound; on the script's four targets or a finer grid; the bound on
the largest batch, on the batches pooled, or on the second largest) and `template` (`template_cut`: the lowest
cut at which a quantile of the FPR over resamples of the benign *templates* stays within a bound; a test split's
false positives come in templates, 10 rows of one template at once).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
GUARDRAILS = ROOT / "services/guardrails"
Mask = npt.NDArray[np.bool_]
Rule = Callable[[Mask], float]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def template_cut(oof: npt.NDArray[np.float64], benign: Mask, templates: list[str], *, quantile: float,
                 bound: float, resamples: int = 2000, seed: int = 17) -> float:
    """The lowest logit at which the `quantile` of the FPR over `resamples` resamples of these benign rows'
    templates (drawn with replacement, each with all its rows) is <= `bound`. The candidates are the benign rows'
    own logits (a cut just above each); if none holds, the highest."""
    idx = np.flatnonzero(benign)
    scores = oof[idx]
    _, group = np.unique(np.array([templates[i] for i in idx]), return_inverse=True)
    size = np.bincount(group).astype(np.float64)
    cands = np.sort(scores)[::-1][: math.floor(2 * bound * len(scores)) + 2] + 1e-6
    fired = np.stack([np.bincount(group, weights=(scores >= c).astype(np.float64), minlength=len(size))
                      for c in cands], axis=1)  # templates x candidate cuts
    draws = np.random.default_rng(seed).multinomial(len(size), np.full(len(size), 1 / len(size)), size=resamples)
    fpr = (draws @ fired) / (draws @ size)[:, None]
    held = np.flatnonzero(np.quantile(fpr, quantile, axis=0) <= bound)
    return float(cands[held.max()]) if len(held) else float(cands[0])


class Rows:
    """The dev rows' labels, batches and templates beside their out-of-fold logits."""

    def __init__(self, rows: list[dict[str, Any]], oof: npt.NDArray[np.float64], batches: tuple[str, ...],
                 training_only: set[str]) -> None:
        self.oof = oof
        self.batches = batches
        self.attack = np.array([r["label"] == "attack" for r in rows])
        self.scored = np.array([r["source"] not in training_only for r in rows])
        prefix = [r["template"].split(":", 1)[0] for r in rows]
        self.batch = np.array([p if p in batches else "-" for p in prefix])
        self.templates = [r["template"] for r in rows]

    def cut_at(self, mask: Mask, fpr: float) -> float:
        scores = np.sort(self.oof[mask])[::-1]
        return float(scores[math.floor(fpr * len(scores))]) + 1e-6

    def fp(self, mask: Mask, cut: float) -> tuple[int, int]:
        return int((self.oof[mask] >= cut).sum()), int(mask.sum())

    def target_rule(self, targets: tuple[float, ...], bound: float, on: str = "max") -> Rule:
        def rule(avail: Mask) -> float:
            benign = avail & ~self.attack & self.scored
            present = [b for b in self.batches if (avail & (self.batch == b)).any()]
            for target in sorted(targets, reverse=True):
                counts = [self.fp(avail & ~self.attack & (self.batch == b),
                                  self.cut_at(benign & (self.batch != b), target)) for b in present]
                rates = sorted(f / n for f, n in counts)
                value = {"max": rates[-1], "second": rates[-2],
                         "pooled": sum(f for f, _ in counts) / sum(n for _, n in counts)}[on]
                if value <= bound:
                    return self.cut_at(benign, target)
            return self.cut_at(benign, min(targets))
        return rule

    def template_rule(self, quantile: float, bound: float) -> Rule:
        return lambda avail: template_cut(self.oof, avail & ~self.attack & self.scored, self.templates,
                                          quantile=quantile, bound=bound)

    def nested(self, rule: Rule) -> dict[str, Any]:
        per = {}
        for b in self.batches:
            cut = rule(self.batch != b)
            fp, n = self.fp(~self.attack & (self.batch == b), cut)
            tp, a = self.fp(self.attack & (self.batch == b), cut)
            per[b] = (fp, n, tp, a)
        cut = rule(np.ones(len(self.oof), dtype=bool))
        return {
            "pooled_fpr": sum(v[0] for v in per.values()) / sum(v[1] for v in per.values()),
            "max_fpr": max(v[0] / v[1] for v in per.values()),
            "recall": sum(v[2] for v in per.values()) / sum(v[3] for v in per.values()),
            "mean_recall": float(np.mean([v[2] / v[3] for v in per.values()])),
            "per_batch": per,
            "fpr_at_cut": float((self.oof[self.scored & ~self.attack] >= cut).mean()),
            "recall_at_cut": float((self.oof[self.scored & self.attack] >= cut).mean()),
        }


def rules(rows: Rows) -> dict[str, Rule]:
    four = (0.015, 0.01, 0.0075, 0.005)
    grid = tuple(round(0.005 + 0.00125 * i, 5) for i in range(13))  # 0.5% to 2%
    out = {
        "target, 4 targets, every batch <= 1.5% (shipped)": rows.target_rule(four, 0.015),
        "target, 4 targets, every batch <= 2%": rows.target_rule(four, 0.02),
        "target, grid, every batch <= 1.5%": rows.target_rule(grid, 0.015),
        "target, grid, every batch <= 2%": rows.target_rule(grid, 0.02),
        "target, grid, batches pooled <= 1%": rows.target_rule(grid, 0.01, "pooled"),
        "target, grid, batches pooled <= 1.25%": rows.target_rule(grid, 0.0125, "pooled"),
        "target, grid, batches pooled <= 1.5%": rows.target_rule(grid, 0.015, "pooled"),
        "target, grid, second largest batch <= 1.5%": rows.target_rule(grid, 0.015, "second"),
    }
    for quantile in (0.8, 0.9, 0.95):
        for bound in (0.015, 0.02):
            out[f"template, q{quantile} <= {bound:.1%}"] = rows.template_rule(quantile, bound)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eighth", action="store_true", help="the data with the eighth batch (six folds)")
    parser.add_argument("--oof", type=Path, default=None, help="save the out-of-fold logits here")
    parser.add_argument("--load", type=Path, default=None, help="out-of-fold logits saved by --oof")
    args = parser.parse_args(argv)
    train = _load("train_injection", GUARDRAILS / "scripts/train_injection.py")
    if args.eighth:
        sys.path.insert(0, str(GUARDRAILS / "llmops_guardrails/data"))
        builder = _load("build_injection_set", GUARDRAILS / "llmops_guardrails/data/build_injection_set.py")
        data = builder.rows(eighth=True)
        train.BATCHES, train.FOLDS = (*train.BATCHES, "y"), train.FOLDS + 1
    else:
        data = train.load_rows()
    dev = [r for r in data if r["split"] == "dev"]
    oof = np.load(args.load) if args.load else train.out_of_fold(dev, train.BITS)
    if args.oof:
        np.save(args.oof, oof)
    rows = Rows(dev, oof, train.BATCHES, train.TRAINING_ONLY)
    print("| rule | held batches pooled FPR | largest | recall (rows) | batches' mean | per batch fp/benign recall "
          "| all dev rows: FPR, recall at the cut |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, rule in rules(rows).items():
        r = rows.nested(rule)
        per = ", ".join(f"{b} {fp}/{n} {tp / a:.3f}" for b, (fp, n, tp, a) in r["per_batch"].items())
        print(f"| {name} | {r['pooled_fpr']:.2%} | {r['max_fpr']:.2%} | {r['recall']:.3f} | {r['mean_recall']:.3f} "
              f"| {per} | {r['fpr_at_cut']:.2%}, {r['recall_at_cut']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
