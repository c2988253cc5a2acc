"""What to change to spend less, from production data, pure: cheaper models that judge not worse, and what
a response cache or better prompt caching would save.

`model_recommendations`: within one app and prompt, for every model used there, its calls, cost per call
and mean judge score; a model B is recommended instead of a model A when B costs less per call and the
95% Welch interval of score(B) - score(A) lies above -`margin` (B is not worse, within the interval and a
margin of `margin` on the 0..1 scale). The monthly saving is A's calls per day over the window * 30 * the
difference in cost per call, as if A's calls had been B's. A model without `MIN_SCORES` scores is not
compared (its quality is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from llmops_prompts import stats

MIN_SCORES = 30


@dataclass(frozen=True)
class ModelUse:
    model: str
    calls: int
    cost: float  # over the window, priced calls
    priced_calls: int
    scores: Sequence[float]

    @property
    def cost_per_call(self) -> float | None:
        return self.cost / self.priced_calls if self.priced_calls else None


def model_recommendations(groups: Mapping[tuple[str, str], Sequence[ModelUse]], *, days: float,
                          margin: float = 0.02) -> list[dict[str, object]]:
    """Per (app, prompt): the models in use and, where one applies, the best recommendation."""
    out: list[dict[str, object]] = []
    for (app_id, prompt), uses in sorted(groups.items()):
        models = [{"model": u.model, "calls": u.calls, "cost_per_call": u.cost_per_call,
                   "judge_score": float(np.mean(u.scores)) if len(u.scores) else None, "scores": len(u.scores)}
                  for u in sorted(uses, key=lambda u: -u.calls)]
        best: dict[str, object] | None = None
        for current in uses:
            for cheaper in uses:
                if (current is cheaper or current.cost_per_call is None or cheaper.cost_per_call is None
                        or cheaper.cost_per_call >= current.cost_per_call
                        or min(len(current.scores), len(cheaper.scores)) < MIN_SCORES):
                    continue
                d = stats.welch_diff(np.asarray(current.scores, dtype=float), np.asarray(cheaper.scores, dtype=float))
                if d.low < -margin:
                    continue
                saving = current.calls / days * 30 * (current.cost_per_call - cheaper.cost_per_call)
                if best is None or saving > float(best["monthly_saving"]):  # type: ignore[arg-type]
                    best = {"replace": current.model, "with": cheaper.model, "monthly_saving": saving,
                            "score_difference": d.diff, "score_ci95": [d.low, d.high],
                            "cost_per_call_change": cheaper.cost_per_call - current.cost_per_call}
        out.append({"app_id": app_id, "prompt": prompt or None, "models": models, "recommendation": best})
    return out
