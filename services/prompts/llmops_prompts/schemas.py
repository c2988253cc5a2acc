"""The prompts API's request and response bodies. Instants are ISO 8601 in UTC; errors are RFC 9457
problem details (`llmops_shared.problems.Problem`) on every route."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
Label = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Instant = Annotated[str, Field(description="ISO 8601, UTC", json_schema_extra={"format": "date-time"})]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class PromptCreate(BaseModel):
    """A new version of a prompt (the prompt is created with its first version). Unchanged content (the
    same template and config as the latest version) creates nothing and answers the latest version."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    type: Literal["text", "chat"] = Field(description="fixed when the prompt is created")
    template: str | list[ChatMessage] = Field(description="text: a string; chat: messages. Placeholders are "
                                              "`{{ variable }}`")
    config: dict[str, Any] = Field(default_factory=dict, description="model, parameters, response format, tools, ...")
    commit_message: Annotated[str, StringConstraints(max_length=500)] = ""
    labels: list[Label] = Field(default_factory=list, max_length=20,
                                description="labels to move to this version (not `latest`, which is automatic)")


class PromptVersion(BaseModel):
    name: str
    type: str
    version: int
    template: str | list[dict[str, Any]]
    config: dict[str, Any]
    variables: list[str]
    labels: list[str] = Field(description="the labels on this version, `latest` included")
    commit_message: str
    author: str = Field(description="the id of the key that created it")
    created_at: Instant


class PromptCreated(PromptVersion):
    created: bool = Field(description="false: the content was unchanged, no version was made")


class VariantServed(BaseModel):
    name: str
    weight: float
    prompt: PromptVersion


class ExperimentServed(BaseModel):
    """The running experiment on the label asked for: the SDK assigns units itself (docs/prompts.md)."""

    id: str
    unit: str
    holdout: float
    variants: list[VariantServed]


class PromptServed(PromptVersion):
    experiment: ExperimentServed | None = Field(None, description="a running experiment on this label")
    variant: str | None = Field(None, description="with `unit_id=`: the variant this unit was assigned")


class PromptSummary(BaseModel):
    name: str
    type: str
    latest_version: int
    labels: dict[str, int]
    created_at: Instant


class PromptList(BaseModel):
    items: list[PromptSummary]


class VersionList(BaseModel):
    items: list[PromptVersion]


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(ge=1, description="the version the label points at; null removes the label")


class LabelState(BaseModel):
    name: str
    label: str
    version: int | None


class LabelHistoryEntry(BaseModel):
    label: str
    from_version: int | None
    to_version: int | None
    moved_by: str
    moved_at: Instant


class LabelHistory(BaseModel):
    items: list[LabelHistoryEntry]


class ConfigChange(BaseModel):
    key: str
    old: Any
    new: Any


class PromptDiff(BaseModel):
    name: str
    from_version: int
    to_version: int
    template_diff: list[str] = Field(description="a unified diff, one line per item")
    config_changes: list[ConfigChange]
    variables_added: list[str]
    variables_removed: list[str]


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    version: int | None = Field(None, ge=1)
    label: Label | None = None
    weight: float = Field(gt=0)


class ExperimentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Name
    prompt: Name
    label: Label = "production"
    unit: Literal["user", "session", "trace"] = "user"
    variants: list[VariantSpec] = Field(min_length=2, max_length=10)
    holdout: float = Field(0.0, ge=0, lt=1)
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class Experiment(BaseModel):
    id: str
    prompt: str
    label: str
    unit: str
    variants: list[dict[str, Any]]
    holdout: float
    status: str
    description: str
    created_by: str
    created_at: Instant
    started_at: Instant | None
    stopped_at: Instant | None


class ExperimentList(BaseModel):
    items: list[Experiment]


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = Field(None, description="default: production")
    version: int | None = Field(None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)


class Rendered(BaseModel):
    name: str
    version: int
    type: str
    rendered: str | list[dict[str, Any]]
    config: dict[str, Any]


class ExperimentReport(BaseModel):
    """docs/prompts.md explains every field; `trustworthy` is false when the sample ratio is off."""

    model_config = ConfigDict(populate_by_name=True)

    experiment_id: str
    from_: Instant = Field(alias="from")
    to: Instant
    control: str
    variants: dict[str, dict[str, Any]] = Field(description="per variant: calls, units, cost_per_call, "
                                                "latency_p50_ms, latency_p95_ms, error_rate, guardrail_finding_rate, "
                                                "scores per rubric")
    comparisons: dict[str, list[dict[str, Any]]] = Field(description="per variant other than the control, one "
                                                         "entry per metric: difference, ci95, p values, verdict, "
                                                         "more_per_variant_needed")
    sample_ratio: dict[str, Any]
    trustworthy: bool
    alpha: float
    correction: str


class Recommendations(BaseModel):
    """Money is USD as a number here (an estimate, not a statement)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Instant = Field(alias="from")
    to: Instant
    models: list[dict[str, Any]] = Field(description="per app and prompt: models in use (calls, cost per call, "
                                         "judge score) and a recommendation (replace, with, monthly_saving, "
                                         "score_ci95) or null")
    prompt_cache: list[dict[str, Any]] = Field(description="per model: input tokens and the share read from the "
                                               "provider's prompt cache")
    exact_repeats: list[dict[str, Any]] = Field(description="per app and model: calls repeating an earlier one "
                                                "exactly, their spend, and the monthly saving of a response cache")
