"""From the three source topics to observations: pure.

An observation is what one source message adds to the windows of its group: the group's key (tenant,
app, environment, model, prompt version), its event time and a sparse delta of the window vector
(`metrics`). Sources:

- `llm.interactions.clean` (the guardrails worker's redacted events): LLM and embedding spans only (a
  chain or agent span wraps model calls that are spans of their own): count, error, input + output
  tokens, latency into the histogram, and a finding when the guardrails summary
  (`metadata.guardrails.findings`) counts one or more;
- `evaluations.scores`: an `ok` result's score (the message names no model or prompt: scores group under
  the empty model and prompt);
- `billing.usage`: a priced row's cost (unpriced rows count as billed calls of no cost).

A message that can never be used raises `BadEvent` (dead-lettered by the worker).

An observation carries its **origin**: the source topic's code (`c`, `s`, `u`) and partition, and the
offset of the message it came from. The worker sends a batch's observations as one message per partition
of the observations topic (`encode_batch`), so a batch reaches each partition whole or not at all, and
a pane applies an origin's observations only above the offset it already applied (`panes`): a message
redelivered after a crash, and so observed twice, counts once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from llmops_monitors import metrics
from llmops_shared.contract import BadEvent, SpanKind, Status, decode_interaction
from llmops_shared.usage_events import UsageMessage

_SCORES = uuid.UUID("6f1d2c4e-5b7a-4e3f-9a1c-2d8e7f6a5b4c")  # the namespace of judge score ids
SEP = "|"  # not allowed in ids (IDENTIFIER_PATTERN), so a key splits back unambiguously
DIMENSIONS = ("environment", "model", "prompt")
COUNTED_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})


@dataclass(frozen=True)
class Observation:
    key: str  # tenant|app|environment|model|prompt
    t: float  # event time, epoch seconds
    delta: metrics.Delta
    origin: str = ""  # the source topic's code and partition ("c3"); "" for none (then never deduplicated)
    offset: int = -1  # the source message's offset in it
    event_id: str = ""  # what the message is about: a repeat of it from another message is dropped ("" never)

    def to_json(self) -> bytes:
        return orjson.dumps(self._wire())

    def _wire(self) -> dict[str, Any]:
        return {"k": self.key, "t": self.t, "d": {str(i): v for i, v in self.delta.items()}, "s": self.origin,
                "o": self.offset}


def encode_batch(observations: list[Observation]) -> bytes:
    """The observations topic's message: a batch's observations for one partition, in source order."""
    return orjson.dumps({"b": [o._wire() for o in observations]})


def decode_batch(payload: bytes | None) -> list[Observation]:
    """An observations topic message (`encode_batch`, or one observation as an earlier version sent it)."""
    try:
        raw = orjson.loads(payload or b"")
        items = raw.get("b", [raw])
        return [Observation(str(r["k"]), float(r["t"]), {int(i): float(v) for i, v in r["d"].items()},
                            str(r.get("s", "")), int(r.get("o", -1))) for r in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEvent("bad_observation", str(exc)[:300]) from exc


def group_key(tenant: str, app: str, environment: str = "", model: str = "", prompt: str = "") -> str:
    return SEP.join((tenant, app, environment, model, prompt))


def split_key(key: str) -> dict[str, str]:
    tenant, app, environment, model, prompt = key.split(SEP)
    return {"tenant_id": tenant, "app_id": app, "environment": environment, "model": model, "prompt": prompt}


def prompt_ref(name: str | None, version: str | None) -> str:
    if not name:
        return ""
    return f"{name}@{version}" if version else name


def from_clean(payload: bytes | None) -> Observation | None:
    """A clean interaction's observation; None for spans that are not model calls."""
    event = decode_interaction(payload)
    if event.span_kind not in COUNTED_KINDS:
        return None
    delta: metrics.Delta = {metrics.COUNT: 1.0}
    if event.status is Status.ERROR:
        delta[metrics.ERRORS] = 1.0
    if event.usage is not None:
        delta[metrics.TOKENS] = float(event.usage.total_tokens)
    if event.latency_ms is not None:
        delta[metrics.LAT_N] = 1.0
        delta[metrics.LAT_SUM] = float(event.latency_ms)
        delta[metrics.bucket_of(event.latency_ms)] = 1.0
    summary = event.metadata.get("guardrails")
    if isinstance(summary, dict) and isinstance(summary.get("findings"), int) and summary["findings"] > 0:
        delta[metrics.FINDINGS] = 1.0
    prompt = event.prompt
    key = group_key(event.tenant_id, event.app_id, event.environment, event.model or event.response_model or "",
                    prompt_ref(prompt.name, prompt.version) if prompt else "")
    return Observation(key, event.occurred_at.timestamp(), delta, event_id=str(event.event_id))


def from_score(payload: bytes | None) -> Observation | None:
    """A judge score's observation; None for a result that is not `ok` or has no score."""
    raw = _object(payload)
    try:
        tenant, app, environment = str(raw["tenant_id"]), str(raw["app_id"]), str(raw.get("environment") or "")
        occurred = datetime.fromisoformat(str(raw["occurred_at"]))
        score = raw.get("score")
        if occurred.tzinfo is None:
            raise ValueError("occurred_at has no offset")
    except (KeyError, ValueError) as exc:
        raise BadEvent("schema_violation", f"score message: {exc}"[:300]) from exc
    if raw.get("status") != "ok" or not isinstance(score, int | float) or isinstance(score, bool):
        return None
    return Observation(group_key(tenant, app, environment), occurred.timestamp(),
                       {metrics.SCORE_SUM: float(score), metrics.SCORE_N: 1.0}, event_id=score_id(raw))


def score_id(raw: dict[str, Any]) -> str:
    """A judge score's identity (UUIDv5 of event, evaluator, rubric and its version), "" without an event."""
    if not raw.get("event_id"):
        return ""
    parts = (raw.get("event_id"), raw.get("evaluator_id"), raw.get("rubric"), raw.get("rubric_version"))
    return str(uuid.uuid5(_SCORES, "/".join("" if p is None else str(p) for p in parts)))


def from_usage(payload: bytes | None) -> Observation:
    """A priced ledger row's observation (billing.usage)."""
    try:
        usage = UsageMessage.model_validate_json(payload or b"")
    except ValidationError as exc:
        raise BadEvent("schema_violation", f"usage message: {exc}"[:300]) from exc
    cost = float(usage.cost_total) if usage.cost_total is not None else 0.0
    key = group_key(usage.tenant_id, usage.app_id, usage.environment, usage.model,
                    prompt_ref(usage.prompt_name, usage.prompt_version))
    return Observation(key, usage.occurred_at.timestamp(), {metrics.COST: cost, metrics.COST_N: 1.0},
                       event_id=str(usage.event_id))


def _object(payload: bytes | None) -> dict[str, Any]:
    if not payload:
        raise BadEvent("empty", "message has no value")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadEvent("bad_json", str(exc)[:300]) from exc
    if not isinstance(raw, dict):
        raise BadEvent("bad_json", "a message must be a JSON object")
    return raw
