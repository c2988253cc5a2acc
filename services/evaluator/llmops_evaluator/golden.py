"""Golden-dataset regression runs: items through a target model, judged, compared with a baseline run.

A golden dataset is JSON Lines, one item per line:

    {"id": "refund-1", "input": "How do I get a refund?", "reference": "Within 30 days...",
     "context": ["Refunds are accepted within 30 days."], "tags": ["billing"]}

`input` is a string or a list of chat messages (as in the interaction contract); `reference` feeds the
correctness rubric, `context` the faithfulness rubric. `parse_golden` reports every bad line at once
(`line 3: input: Field required`), so a dataset is fixed in one go.

`run_golden` sends each item's input to the target model, judges the answer on every rubric (the judge's
retries, repair and cap apply), at most `max_concurrency` items at a time. `compare` summarises each rubric
(an item passes a rubric when its normalised score is at least the rubric's threshold; an error or an
unparseable answer fails it), and gates the run: the pass rate must reach `min_pass_rate` and must not
drop by more than `max_drop` from the baseline run's. `junit_xml` writes the outcome for CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops_evaluator.config import EnvVarName, JudgeEndpoint
from llmops_evaluator.judge_client import JudgeClient, JudgeResult, JudgeStatus, read_reply
from llmops_evaluator.retry import Failure, RetryPolicy, classify
from llmops_evaluator.rubrics import CustomRubricSpec, Rubric, RubricRef, resolve_rubric, storable_text
from llmops_shared.contract import MAX_TEXT_CHARS, Identifier, Interaction, Messages, Tag, Text, describe_errors

MAX_ITEMS = 10_000
_GOLDEN_NAMESPACE = uuid.UUID("0b6f3c52-6a1e-4d4e-9c59-3f1f8f0e2a11")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoldenItem(_Model):
    id: Identifier
    input: Messages | Text
    reference: Text | None = None
    context: Text | list[Text] | None = None
    tags: list[Tag] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class GoldenDatasetError(ValueError):
    """A dataset with bad lines; `errors` names each one."""

    def __init__(self, errors: list[str]) -> None:
        shown = "\n".join(errors[:20]) + (f"\n... and {len(errors) - 20} more" if len(errors) > 20 else "")
        super().__init__(f"{len(errors)} problem(s) in the golden dataset:\n{shown}")
        self.errors = errors


def parse_golden(text: str | bytes, *, max_items: int = MAX_ITEMS) -> list[GoldenItem]:
    """The items of a JSONL dataset; blank lines and lines starting with # are skipped."""
    raw = text.decode() if isinstance(text, bytes) else text
    items: list[GoldenItem] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(data, dict):
            errors.append(f"line {number}: an item must be a JSON object")
            continue
        try:
            item = GoldenItem.model_validate(data)
        except ValidationError as exc:
            errors.extend(f"line {number}: {problem}" for problem in describe_errors(exc))
            continue
        if item.id in seen:
            errors.append(f"line {number}: id {item.id!r} is already used on line {seen[item.id]}")
            continue
        seen[item.id] = number
        items.append(item)
    if len(items) > max_items:
        errors.append(f"{len(items)} items; the limit is {max_items}")
    if not items and not errors:
        errors.append("the dataset has no items")
    if errors:
        raise GoldenDatasetError(errors)
    return items


def dataset_sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# -- configuration ----------------------------------------------------------------------------------


class TargetSpec(_Model):
    """The model under test."""

    model: Identifier
    base_url: str
    api_key_env: EnvVarName
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=1, le=16_384)] = 1_024


class OperatorJudgeSpec(JudgeEndpoint):
    """The judge of a golden run. `llmops eval run` is the operator's command: its key is in the variable the
    operator names (`--judge-api-key-env`), not a tenant's credential (`config.JudgeSpec`)."""

    api_key_env: EnvVarName


class GoldenRunConfig(_Model):
    dataset: Identifier
    rubrics: Annotated[list[RubricRef], Field(min_length=1)]
    custom_rubrics: list[CustomRubricSpec] = Field(default_factory=list)
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)  # by rubric ref
    default_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    # The gate is safe by default: every item must pass. A team lowers it on purpose, for the run
    # (`--min-pass-rate`) or per rubric (`min_pass_rates` in the config file).
    min_pass_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    min_pass_rates: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)  # by rubric ref
    max_drop: Annotated[float, Field(ge=0, le=1)] = 0.05  # allowed fall in pass rate from the baseline
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    target: TargetSpec
    judge: OperatorJudgeSpec

    @model_validator(mode="after")
    def _known(self) -> GoldenRunConfig:
        for ref in self.rubrics:
            resolve_rubric(ref, self.custom_rubrics)
        unknown = set(self.thresholds) - set(self.rubrics)
        if unknown:
            raise ValueError(f"thresholds for rubrics the run does not use: {', '.join(sorted(unknown))}")
        unknown = set(self.min_pass_rates) - set(self.rubrics)
        if unknown:
            raise ValueError(f"min_pass_rates for rubrics the run does not use: {', '.join(sorted(unknown))}")
        return self

    def resolved_rubrics(self) -> list[Rubric]:
        return [resolve_rubric(ref, self.custom_rubrics) for ref in self.rubrics]

    def threshold(self, rubric: str) -> float:
        return self.thresholds.get(rubric, self.default_threshold)

    def min_pass_rate_for(self, rubric: str) -> float:
        return self.min_pass_rates.get(rubric, self.min_pass_rate)


# -- results ----------------------------------------------------------------------------------------


class ItemResult(_Model):
    item_id: str
    rubric: str
    status: JudgeStatus
    score: float | None = None
    label: str | None = None
    reasoning: str | None = None
    error_type: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


class RunResult(_Model):
    """A run's outcome; saved as JSON, it is the next run's baseline."""

    run_id: uuid.UUID
    dataset: str
    dataset_sha256: str
    target_model: str
    judge_model: str
    started_at: datetime
    items: list[ItemResult]


# -- the target model -------------------------------------------------------------------------------


class TargetError(RuntimeError):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class TargetClient:
    """The model under test, through openai.AsyncOpenAI with the suite's retry policy."""

    def __init__(self, *, spec: TargetSpec, api_key: str, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.spec = spec
        self.policy = policy or RetryPolicy()
        self._client = openai.AsyncOpenAI(base_url=spec.base_url, api_key=api_key, max_retries=0,
                                          timeout=self.policy.attempt_timeout_s)
        self._sleep = sleep
        self._rng = rng

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, item_input: list[Any] | str) -> str:
        """The target's answer to `item_input`, or `TargetError`; within the policy's total deadline, each
        attempt within its time-out (wall-clock totals, as the judge's: `judge_client`)."""
        if isinstance(item_input, str):
            messages: list[Any] = [{"role": "user", "content": item_input}]
        else:
            messages = [m.model_dump(exclude_none=True) for m in item_input]
        deadline = asyncio.timeout(self.policy.deadline_s)
        try:
            async with deadline:
                return await self._complete(messages)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TargetError("deadline", f"no answer within the {self.policy.deadline_s:g} s deadline") from None

    async def _complete(self, messages: list[Any]) -> str:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            attempt_timeout_s = min(self.policy.attempt_timeout_s,
                                    max(self.policy.deadline_s - (time.monotonic() - started), 0.001))
            try:
                async with asyncio.timeout(attempt_timeout_s):
                    completion: object = await self._client.chat.completions.create(
                        model=self.spec.model, messages=messages, temperature=self.spec.temperature,
                        max_tokens=self.spec.max_tokens,
                    )
            except (openai.APIError, TimeoutError) as exc:
                failure = (Failure("timeout", message=f"no complete answer within {attempt_timeout_s:g} s")
                           if isinstance(exc, TimeoutError) else classify(exc))
                if failure is None:
                    raise TargetError("bad_response", "the target's response was not valid") from exc
                delay = self.policy.next_delay(attempt, failure, elapsed_s=time.monotonic() - started,
                                               rng=self._rng)
                if delay is None:
                    raise TargetError(failure.error_type, failure.message or failure.error_type) from exc
                await self._sleep(delay)
                continue
            except (ValueError, RecursionError) as exc:
                raise TargetError("bad_response", "the target's response was not valid JSON") from exc
            reply = read_reply(completion)
            if reply.problem is not None:
                raise TargetError("bad_response", reply.problem)
            # As an interaction's output: no control character, within the contract's length.
            return storable_text(reply.content or "")[:MAX_TEXT_CHARS]


# -- the run ----------------------------------------------------------------------------------------


def item_interaction(item: GoldenItem, output: str, *, dataset: str) -> Interaction:
    """The item and the target's answer as an interaction, so the production rubrics judge it."""
    metadata: dict[str, Any] = {}
    if item.context is not None:
        metadata["context"] = item.context
    if item.reference is not None:
        metadata["reference"] = item.reference
    event_id = uuid.uuid5(_GOLDEN_NAMESPACE, f"{dataset}:{item.id}")
    return Interaction(
        event_id=event_id, occurred_at=datetime.now(UTC), tenant_id="golden", app_id=dataset,
        environment="golden", trace_id=f"golden:{event_id.hex}", span_id=f"item:{event_id.hex[:16]}",
        input=item.input, output=output, tags=list(item.tags), metadata=metadata,
    )


async def run_golden(items: Sequence[GoldenItem], config: GoldenRunConfig, *, target: TargetClient,
                     judge: JudgeClient, dataset_hash: str = "", run_id: uuid.UUID | None = None,
                     on_item: Callable[[GoldenItem, list[ItemResult]], None] | None = None) -> RunResult:
    """Every item through the target and the judge, at most `config.max_concurrency` items at once.

    `on_item` is called with each item's results as it completes (progress).
    """
    rubrics = config.resolved_rubrics()
    gate = asyncio.Semaphore(config.max_concurrency)
    started_at = datetime.now(UTC)

    async def one(item: GoldenItem) -> list[ItemResult]:
        async with gate:
            started = time.monotonic()
            try:
                output = await target.complete(item.input)
            except TargetError as exc:
                return [ItemResult(item_id=item.id, rubric=r.ref, status=JudgeStatus.ERROR,
                                   error_type=f"target_{exc.error_type}", error=str(exc)) for r in rubrics]
            interaction = item_interaction(item, output, dataset=config.dataset)
            results = []
            for rubric in rubrics:
                missing = rubric.missing(interaction)
                if missing is not None:
                    results.append(ItemResult(item_id=item.id, rubric=rubric.ref, status=JudgeStatus.SKIPPED,
                                              error_type="not_applicable", error=missing))
                    continue
                judged = await judge.judge(rubric, rubric.render(interaction))
                results.append(_item_result(item.id, judged, time.monotonic() - started))
            return results

    async def reported(item: GoldenItem) -> list[ItemResult]:
        results = await one(item)
        if on_item is not None:
            on_item(item, results)
        return results

    per_item = await asyncio.gather(*(reported(item) for item in items))
    return RunResult(run_id=run_id or uuid.uuid4(), dataset=config.dataset, dataset_sha256=dataset_hash,
                     target_model=config.target.model, judge_model=config.judge.model, started_at=started_at,
                     items=[r for results in per_item for r in results])


def _item_result(item_id: str, judged: JudgeResult, seconds: float) -> ItemResult:
    return ItemResult(item_id=item_id, rubric=judged.rubric, status=judged.status, score=judged.score,
                      label=judged.label, reasoning=judged.reasoning, error_type=judged.error_type,
                      error=judged.error, input_tokens=judged.input_tokens, output_tokens=judged.output_tokens,
                      seconds=round(seconds, 3))


# -- the verdict ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RubricSummary:
    rubric: str
    threshold: float
    items: int  # judged or failed; `skipped` items (rubric not applicable) are not counted
    passed: int
    errors: int
    mean_score: float | None
    pass_rate: float | None
    baseline_pass_rate: float | None
    drop: float | None
    regressions: list[str] = field(default_factory=list)  # passed in the baseline, not now
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def item_passed(result: ItemResult, threshold: float) -> bool:
    return result.status is JudgeStatus.OK and result.score is not None and result.score >= threshold


def compare(run: RunResult, config: GoldenRunConfig, baseline: RunResult | None = None) -> list[RubricSummary]:
    """Per rubric: pass rate, mean score, the change from the baseline, and what fails the gate."""
    summaries = []
    for ref in config.rubrics:
        threshold = config.threshold(ref)
        counted = [r for r in run.items if r.rubric == ref and r.status is not JudgeStatus.SKIPPED]
        passed = [r for r in counted if item_passed(r, threshold)]
        scores = [r.score for r in counted if r.score is not None]
        pass_rate = len(passed) / len(counted) if counted else None
        base_rate = None
        regressions: list[str] = []
        if baseline is not None:
            base = [r for r in baseline.items if r.rubric == ref and r.status is not JudgeStatus.SKIPPED]
            base_passed = {r.item_id for r in base if item_passed(r, threshold)}
            base_rate = len(base_passed) / len(base) if base else None
            now_passed = {r.item_id for r in passed}
            regressions = sorted(i for i in base_passed - now_passed if any(r.item_id == i for r in counted))
        drop = base_rate - pass_rate if base_rate is not None and pass_rate is not None else None
        problems = []
        if pass_rate is None:
            problems.append("no item was judged on this rubric")
        elif pass_rate < config.min_pass_rate_for(ref) - 1e-12:
            problems.append(f"pass rate {pass_rate:.1%} is below the minimum {config.min_pass_rate_for(ref):.1%}")
        if drop is not None and drop > config.max_drop + 1e-12:
            problems.append(f"pass rate fell by {drop:.1%} from the baseline's {base_rate:.1%}; "
                            f"at most {config.max_drop:.1%} is allowed")
        summaries.append(RubricSummary(
            rubric=ref, threshold=threshold, items=len(counted), passed=len(passed),
            errors=sum(r.status is not JudgeStatus.OK for r in counted),
            mean_score=sum(scores) / len(scores) if scores else None, pass_rate=pass_rate,
            baseline_pass_rate=base_rate, drop=drop, regressions=regressions, problems=problems,
        ))
    return summaries


def junit_xml(run: RunResult, summaries: Sequence[RubricSummary]) -> str:
    """JUnit XML for CI: a suite per rubric, a case per item, and a case for the rubric's gate."""
    by_rubric: Mapping[str, RubricSummary] = {s.rubric: s for s in summaries}
    root = ET.Element("testsuites", name=f"llmops eval {run.dataset}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for ref, summary in by_rubric.items():
        suite = ET.SubElement(root, "testsuite", name=ref)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        properties = ET.SubElement(suite, "properties")
        for name, value in (("dataset_sha256", run.dataset_sha256), ("target_model", run.target_model),
                            ("judge_model", run.judge_model), ("threshold", summary.threshold),
                            ("pass_rate", summary.pass_rate), ("mean_score", summary.mean_score),
                            ("baseline_pass_rate", summary.baseline_pass_rate), ("drop", summary.drop)):
            if value is not None:
                ET.SubElement(properties, "property", name=name, value=_fmt(value))
        for result in (r for r in run.items if r.rubric == ref):
            case = ET.SubElement(suite, "testcase", classname=f"golden.{run.dataset}.{ref}", name=result.item_id,
                                 time=f"{result.seconds:.3f}")
            counts["tests"] += 1
            if result.status is JudgeStatus.SKIPPED:
                ET.SubElement(case, "skipped", message=result.error or "skipped")
                counts["skipped"] += 1
            elif result.status is not JudgeStatus.OK:
                error = ET.SubElement(case, "error", message=f"{result.error_type}: {result.error or ''}",
                                      type=result.error_type or result.status.value)
                error.text = result.error or ""
                counts["errors"] += 1
            elif not item_passed(result, summary.threshold):
                failure = ET.SubElement(case, "failure", type="below_threshold",
                                        message=f"score {result.score:.3f} ({result.label}) is below "
                                                f"the threshold {summary.threshold:.3f}")
                failure.text = result.reasoning or ""
                counts["failures"] += 1
        gate = ET.SubElement(suite, "testcase", classname=f"golden.{run.dataset}.{ref}", name="gate", time="0")
        counts["tests"] += 1
        if not summary.ok:
            failure = ET.SubElement(gate, "failure", type="gate", message="; ".join(summary.problems))
            if summary.regressions:
                failure.text = "regressed items: " + ", ".join(summary.regressions)
            counts["failures"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
