"""The agreement report: the judge vs people on one rubric of a tenant, overall and per evaluator.

One pair per person's rating of an event the judge scored `ok` on the same rubric version, both on the
rubric's integer scale; the statistics are `agreement.py`'s (pure). The pairs come from `feedback_store`.
"""

from __future__ import annotations

import asyncpg

from llmops_evaluator import feedback_store
from llmops_evaluator.agreement import agreement
from llmops_evaluator.evaluators import tenant_rubric
from llmops_evaluator.feedback import scale_score
from llmops_evaluator.rubrics import Rubric
from llmops_evaluator.schemas import AgreementReport, AgreementStats, EvaluatorAgreement


def _stats(pairs: list[tuple[int, int]], rubric: Rubric) -> AgreementStats:
    result = agreement([j for j, _ in pairs], [h for _, h in pairs],
                       categories=list(range(rubric.scale_min, rubric.scale_max + 1)))
    return AgreementStats(count=result.items, percent_agreement=result.percent_agreement, cohens_kappa=result.kappa,
                          weighted_kappa=result.weighted_kappa, spearman=result.spearman)


async def agreement_report(*, conn: asyncpg.Connection, tenant_id: str, rubric_ref: str,
                           evaluator_id: str | None = None) -> AgreementReport:
    """Judge vs people on one rubric (of one evaluator, or all the tenant's)."""
    rubric = await tenant_rubric(conn=conn, tenant_id=tenant_id, ref=rubric_ref, field="rubric", location="query")
    rows = await feedback_store.agreement_pairs(conn=conn, tenant_id=tenant_id, rubric=rubric.ref,
                                                rubric_name=rubric.name, rubric_version=rubric.version,
                                                evaluator_id=evaluator_id)
    by_evaluator: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        pair = (row["raw_score"], scale_score(rubric, row["human_score"]))
        by_evaluator.setdefault(row["evaluator_id"], []).append(pair)
    everything = [pair for pairs in by_evaluator.values() for pair in pairs]
    return AgreementReport(
        rubric=rubric.ref, scale=[rubric.scale_min, rubric.scale_max], evaluator_id=evaluator_id,
        **_stats(everything, rubric).model_dump(),
        by_evaluator=[EvaluatorAgreement(evaluator_id=ev, **_stats(pairs, rubric).model_dump())
                      for ev, pairs in by_evaluator.items()],
    )
