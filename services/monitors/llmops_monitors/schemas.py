"""The monitors API's request and response models (`MonitorCreate` what a client sends, `MonitorPublic` what
the API shows). A bad definition is a 422 naming the field: an unknown metric (`metric`), an aggregation
the metric has not (`aggregation`), an impossible window (`window`), a threshold that is not a number
(`condition.threshold`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llmops_monitors.metrics import METRICS
from llmops_monitors.windows import BY_NAME, parse_window
from llmops_shared.alerts import Severity
from llmops_shared.contract import Identifier
from llmops_shared.timestamps import Timestamp

Number = StrictInt | StrictFloat
Dimension = Literal["environment", "model", "prompt"]
Op = Literal[">", ">=", "<", "<="]


class Condition(BaseModel):
    """When a window breaches: `value op threshold`, or `value op factor * baseline`, the baseline being the
    mean of this monitor's values for the group in the same window of each of the last `days` days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Op = Field(description="how the value compares with the threshold or the baseline")
    threshold: Number | None = Field(None, description="a fixed threshold (a JSON number)")
    baseline: Literal["same_window_previous_days"] | None = Field(
        None, description="compare with the same window of previous days instead of a fixed threshold")
    factor: Number = Field(1.0, gt=0, description="the baseline is multiplied by this (2: twice the usual)")
    days: int = Field(7, ge=1, le=28, description="how many previous days the baseline averages")

    @model_validator(mode="after")
    def _one_reference(self) -> Condition:
        if (self.threshold is None) == (self.baseline is None):
            raise ValueError("give either threshold or baseline")
        return self


class MonitorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
    metric: str = Field(description=f"one of {', '.join(METRICS)} (or latency_p50, latency_p95, latency_p99, "
                        "latency_mean)")
    aggregation: str | None = Field(None, validate_default=True,
                                    description="how the metric is aggregated over the window: latency p50, p95, "
                                    "p99 or mean; the others have one (sum, ratio or mean)")
    window: str = Field(description=f"one of {', '.join(BY_NAME)} (size, or size/step for hopping windows)")
    app_id: Identifier | None = Field(None, description="only this app; unset: each app of the tenant")
    group_by: list[Dimension] = Field(default_factory=list, max_length=3,
                                      description="groups within tenant and app")
    condition: Condition
    min_samples: int = Field(10, ge=0, le=1_000_000,
                             description="a window with fewer observations is not evaluated (counts as clear)")
    severity: Severity = "warning"
    channels: list[int] = Field(default_factory=list, max_length=20,
                                description="the notifier's channel ids; empty: every channel of the tenant")
    resolve_after: int = Field(3, ge=1, le=1000, description="clear windows in a row that resolve a firing")
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`latency_p95` is `metric: latency, aggregation: p95`."""
        if isinstance(data, dict) and isinstance(data.get("metric"), str) and data["metric"].startswith("latency_"):
            return {**data, "metric": "latency", "aggregation": data.get("aggregation") or data["metric"][8:]}
        return data

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRICS)}")
        return value

    @field_validator("window")
    @classmethod
    def _known_window(cls, value: str) -> str:
        return parse_window(value).name

    @field_validator("group_by")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a dimension is named twice")
        return value

    @field_validator("aggregation")
    @classmethod
    def _aggregation_of_metric(cls, value: str | None, info: ValidationInfo) -> str | None:
        metric = METRICS.get(info.data.get("metric", ""))
        if metric is None:
            return value  # the metric's own error says it
        if value is None:
            return metric.aggregations[0]
        if value not in metric.aggregations:
            raise ValueError(f"{metric.name} has {', '.join(metric.aggregations)}, not {value!r}")
        return value


class MonitorPublic(MonitorCreate):
    model_config = ConfigDict(extra="ignore", frozen=True)

    monitor_id: int
    created_at: Timestamp
    updated_at: Timestamp


class MonitorsPublic(BaseModel):
    monitors: list[MonitorPublic]


class FiringPublic(BaseModel):
    firing_id: int
    monitor_id: int
    group: dict[str, str] = Field(description="the group's tenant, app and the monitor's dimensions")
    window_end: Timestamp = Field(description="the end of the window that opened it")
    value: float | None
    reference: float | None = Field(description="the threshold, or the baseline times its factor")
    status: Literal["firing", "resolved"]
    resolved_window_end: Timestamp | None
    opened_at: Timestamp
    resolved_at: Timestamp | None


class FiringsPublic(BaseModel):
    firings: list[FiringPublic]
