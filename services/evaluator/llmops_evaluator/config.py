"""Evaluators: which interactions of a tenant are judged, on which rubrics, by which judge, within which caps.

An evaluator is stored as JSON (the `evaluators` table) and validated by `EvaluatorConfig`. Two pure
functions decide whether an interaction is judged: `matches` (the filters) and `sampled` (the rate).

Sampling is a function of the event id alone, so two evaluators with the same rate score the same subset
of events, and a lower rate picks a subset of what a higher rate picks (useful to compare two judges, or
a judge with human labels, on the same events).
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from llmops_evaluator.rubrics import CustomRubricSpec, RubricRef, parse_rubric_ref, resolve_rubric
from llmops_shared.contract import Identifier, Interaction, SpanKind, Status, Tag

JUDGE_TAG = "llmops:judge"  # carried by the judge's own usage events: never judged themselves

EnvVarName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1000000"), decimal_places=6)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeEndpoint(_Model):
    """A judge: an OpenAI-compatible endpoint and model, the call's parameters and the price of its tokens.

    How the key is found is the subclass's: a tenant's evaluator names an operator credential
    (`JudgeSpec`); the operator's own golden runs name a variable (`golden.OperatorJudgeSpec`)."""

    model: Identifier
    base_url: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]
    provider: Identifier = "openai"  # for the usage events billing prices
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=16, le=16_384)] = 512
    seed: int | None = None
    # Price of the judge's tokens, per million, to enforce the daily spend cap.
    input_usd_per_mtok: Money = Decimal(0)
    output_usd_per_mtok: Money = Decimal(0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL, e.g. https://api.openai.com/v1")
        if parts.username or parts.password:
            raise ValueError("base_url must not carry credentials")
        return value.rstrip("/")

    def parameters(self) -> dict[str, Any]:
        """The call parameters that change a judgment (and so belong in its cache key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}


class JudgeSpec(JudgeEndpoint):
    """A tenant's judge: an endpoint, and the name of the operator credential whose key it is sent
    (`llmops_evaluator.credentials`). The credential must be granted to the tenant and be for `base_url`."""

    credential: Identifier
    # Gone: an evaluator named the variable holding its key, and so could have any variable of the worker
    # sent anywhere. Refused with a message that says what to do instead (migration evaluator/0005 moved
    # stored configs to `credential`).
    api_key_env: Annotated[None, Field(exclude=True)] = None

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _no_key_variables(cls, value: Any) -> None:
        raise ValueError("not accepted: name a judge credential the operator granted you in `credential`")


class PromptFilter(_Model):
    """A prompt name, and optionally one version of it."""

    name: Identifier
    version: Identifier | None = None

    def accepts(self, interaction: Interaction) -> bool:
        prompt = interaction.prompt
        if prompt is None or prompt.name != self.name:
            return False
        return self.version is None or prompt.version == self.version


class EvaluatorConfig(_Model):
    """One evaluator of one tenant. Empty filters accept everything; `tags` must all be present."""

    id: Identifier
    tenant_id: Identifier
    enabled: bool = True
    apps: list[Identifier] = Field(default_factory=list)
    models: list[Identifier] = Field(default_factory=list)
    prompt_versions: list[PromptFilter] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    environments: list[Identifier] = Field(default_factory=list)
    rubrics: Annotated[list[RubricRef], Field(min_length=1, max_length=16)]
    custom_rubrics: list[CustomRubricSpec] = Field(default_factory=list)
    sample_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    judge: JudgeSpec
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    daily_spend_cap_usd: Money
    # The review queue (human feedback): the share of this evaluator's judged interactions handed to people
    # (an independent, deterministic sample), and a normalised score below which a judgment is queued too.
    review_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    review_below_score: Annotated[float, Field(ge=0, le=1)] | None = None

    @field_validator("prompt_versions", mode="before")
    @classmethod
    def _prompt_shorthand(cls, value: Any) -> Any:
        # "name" or "name@version" in YAML; a name containing "@" needs the {name, version} form.
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                name, _, version = item.rpartition("@") if "@" in item else (item, "", "")
                out.append({"name": name, "version": version or None})
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _rubrics_resolve(self) -> Self:
        names = [spec.name for spec in self.custom_rubrics]
        if len(names) != len(set(names)):
            raise ValueError("custom_rubrics: each name once")
        if len(self.rubrics) != len(set(self.rubrics)):
            raise ValueError("rubrics: each name@version once")
        for ref in self.rubrics:
            resolve_rubric(ref, self.custom_rubrics)  # raises ValueError naming the unknown rubric
        return self

    def rubric_refs(self) -> list[tuple[str, int]]:
        return [parse_rubric_ref(ref) for ref in self.rubrics]


JUDGE_SAMPLE = b"llmops-sample:"
REVIEW_SAMPLE = b"llmops-review:"  # independent of the judge's sample


def sampled(event_id: uuid.UUID | str, rate: float, *, salt: bytes = JUDGE_SAMPLE) -> bool:
    """Whether `event_id` falls in the sample of rate `rate`: a hash of the event id only.

    The event's position in [0, 1) is fixed by its id, so an evaluator at rate 0.1 scores a subset of
    what one at 0.5 scores, and two evaluators at the same rate score the same events. Another `salt`
    gives a sample independent of this one (the review queue's).
    """
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    raw = event_id.bytes if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)).bytes
    digest = hashlib.sha256(salt + raw).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def matches(config: EvaluatorConfig, interaction: Interaction) -> bool:
    """Whether `config` judges `interaction` (before sampling): tenant, filters, and a judgeable LLM answer."""
    if not config.enabled or interaction.tenant_id != config.tenant_id:
        return False
    if JUDGE_TAG in interaction.tags:
        return False  # the judge's own usage events: never judge the judge
    if interaction.span_kind is not SpanKind.LLM or interaction.status is not Status.OK:
        return False
    if interaction.output is None or interaction.output == "":
        return False
    if config.apps and interaction.app_id not in config.apps:
        return False
    if config.environments and interaction.environment not in config.environments:
        return False
    if config.models and not ({interaction.model, interaction.response_model} & set(config.models)):
        return False
    if config.prompt_versions and not any(f.accepts(interaction) for f in config.prompt_versions):
        return False
    return all(tag in interaction.tags for tag in config.tags)


def selects(config: EvaluatorConfig, interaction: Interaction) -> bool:
    """`matches` and `sampled` together: this evaluator judges this interaction."""
    return matches(config, interaction) and sampled(interaction.event_id, config.sample_rate)
