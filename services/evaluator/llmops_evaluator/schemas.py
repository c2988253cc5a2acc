"""What the evaluator API takes and answers, by resource: `...Create` / `Rating` / `ReviewNext` in, `...Public`
(and pages of them) out. The service functions return these models; the routes declare them as their
response models, so OpenAPI shows every answer's schema. Errors are problem details (`llmops_shared.problems`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.judge_client import JudgeStatus
from llmops_evaluator.rubrics import Rubric, RubricRef
from llmops_shared.contract import Identifier

Label = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Comment = Annotated[str, StringConstraints(strict=True, max_length=2000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- evaluators -------------------------------------------------------------------------------------
# The request body is an `EvaluatorConfig` whose `tenant_id` (and, for PUT, `id`) may be omitted: it is
# validated by `evaluators.config_from_body`, which fills them in from the key and the path.


class EvaluatorPublic(EvaluatorConfig):
    """An evaluator as stored: its config, whether it runs, and when it was created and last changed."""

    created_at: datetime
    updated_at: datetime


class EvaluatorList(BaseModel):
    items: list[EvaluatorPublic]


# -- human feedback ---------------------------------------------------------------------------------


class Rating(_Body):
    score: Annotated[int, Field(strict=True)] | None = Field(None, description="On the rubric's scale, e.g. 1-5")
    label: Label | None = Field(None, description="One of the rubric's labels, e.g. `relevant`")
    comment: Comment | None = None


class FeedbackCreate(Rating):
    event_id: uuid.UUID
    rubric: RubricRef


class FeedbackPublic(BaseModel):
    id: int
    event_id: uuid.UUID
    rubric: str = Field(description="name@version")
    score: int = Field(description="On the rubric's scale")
    normalised_score: float = Field(description="The score on [0, 1], as stored")
    label: str | None
    reviewer: str = Field(description="The id of the API key that rated: a reviewer is the key, never a name sent")
    comment: str | None
    created_at: datetime
    updated_at: datetime


# -- the review queue -------------------------------------------------------------------------------


class ReviewNext(_Body):
    lock_minutes: Annotated[int, Field(ge=1, le=240)] = 15
    rubric: RubricRef | None = None
    evaluator_id: Identifier | None = None


class RubricDetail(BaseModel):
    """What a reviewer needs to rate on a rubric (the judge's own instructions)."""

    ref: str
    criteria: str
    steps: list[str]
    scale_min: int
    scale_max: int
    labels: list[str]

    @classmethod
    def of(cls, rubric: Rubric) -> RubricDetail:
        return cls(ref=rubric.ref, criteria=rubric.criteria, steps=list(rubric.steps), scale_min=rubric.scale_min,
                   scale_max=rubric.scale_max, labels=list(rubric.labels))


class ReviewItemPublic(BaseModel):
    item_id: int
    event_id: uuid.UUID
    evaluator_id: str | None
    rubric: str = Field(description="name@version; empty for an item about the whole interaction")
    reason: str = Field(description="low_score, random_sample, ...")
    priority: int
    status: str = Field(description="pending, done or dismissed")
    lock_owner: str | None
    lock_expires_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None


class ReviewItemTaken(ReviewItemPublic):
    """An item locked for the caller, with its rubric (never the judge's score: the review is blind)."""

    rubric_detail: RubricDetail | None = Field(description="None for an overall item or a rubric since removed")


class ReviewSubmitted(BaseModel):
    item: ReviewItemPublic
    feedback: FeedbackPublic


# -- agreement --------------------------------------------------------------------------------------


class AgreementStats(BaseModel):
    count: int = Field(description="Pairs of (judge's score, person's score)")
    percent_agreement: float | None
    cohens_kappa: float | None
    weighted_kappa: float | None = Field(description="Quadratic weights over the whole scale")
    spearman: float | None


class EvaluatorAgreement(AgreementStats):
    evaluator_id: str


class AgreementReport(AgreementStats):
    rubric: str
    scale: list[int] = Field(description="[scale_min, scale_max]")
    evaluator_id: str | None
    by_evaluator: list[EvaluatorAgreement]


# -- results ----------------------------------------------------------------------------------------


class ResultPublic(BaseModel):
    """One judgment: one (event, evaluator, rubric version)."""

    event_id: uuid.UUID
    evaluator_id: str
    rubric: str = Field(description="The rubric's name")
    rubric_version: int
    tenant_id: str
    app_id: str
    occurred_at: datetime = Field(description="The judged interaction's time")
    status: JudgeStatus
    score: float | None = Field(description="Normalised to [0, 1]; `ok` results only")
    raw_score: int | None = Field(description="On the rubric's scale")
    label: str | None
    reasoning: str | None
    judge_model: str
    input_tokens: int
    output_tokens: int
    attempts: int
    from_cache: bool
    error_type: str | None
    error: str | None
    judged_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ResultList(BaseModel):
    items: list[ResultPublic]


class ResultPage(ResultList):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last page")
