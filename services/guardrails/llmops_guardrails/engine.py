"""The policy engine: scan interactions (or texts) against a policy, decide, redact. No I/O.

Used by the stream worker (`scan_many` over a batch of events) and by the inline check API
(`check_text`). Each distinct message text is scanned once per detector configuration: findings are
cached by the SHA-256 of the text and the policy's detector fingerprint (a bounded LRU), since LLM
traffic repeats the same system prompts and templates. A batch sends all its distinct, uncached texts
through spaCy's `nlp.pipe` together.

Flow: interaction -> segments (one per message text, content part or tool-call arguments) -> hits per
distinct text (cached) + interaction-level checks (size limits, system-prompt leakage) -> findings (with
value hashes, no raw values) -> rules -> alerts, block, redactions -> a redacted copy of the interaction.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmops_guardrails import decision
from llmops_guardrails.detectors import injection_model
from llmops_guardrails.detectors.injection import InjectionDetector
from llmops_guardrails.detectors.output import LeakDetector, SystemPromptIndex, size_hits
from llmops_guardrails.detectors.pii import NerPipeline, PiiDetector
from llmops_guardrails.detectors.secrets import SecretsDetector
from llmops_guardrails.detectors.terms import TermsDetector
from llmops_guardrails.findings import Detector, Finding, Hit, Side
from llmops_guardrails.policy import Action, Policy, Severity
from llmops_guardrails.redact import redact
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.contract import ChatMessage, Interaction

TextOrMessages = str | Sequence[ChatMessage] | None


# --------------------------------------------------------------------------------------------------
# Results


class TriggeredRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    action: Action
    severity: Severity | None
    detector: Detector
    kinds: list[str]
    count: int
    max_score: float
    findings: list[int]  # indices into the scan's findings


class ScanOutcome(BaseModel):
    """What a scan found and decided; `InteractionScan` and `TextCheck` add the redacted content."""

    model_config = ConfigDict(frozen=True)

    policy_name: str
    findings: list[Finding]
    triggered: list[TriggeredRule]
    blocked: bool

    @property
    def alerts(self) -> list[TriggeredRule]:
        """Rules that raise an alert: `alert` ones, and `block` ones (the stream cannot block)."""
        return [t for t in self.triggered if t.action in (Action.ALERT, Action.BLOCK)]


class InteractionScan(ScanOutcome):
    interaction: Interaction  # a copy, redacted per policy


class TextCheck(ScanOutcome):
    input: str | list[ChatMessage] | None
    output: str | list[ChatMessage] | None


# --------------------------------------------------------------------------------------------------
# Segments: every piece of text in an interaction, with where it sits.


@dataclass(frozen=True, slots=True)
class Segment:
    side: Side
    message_index: int | None
    part_index: int | None
    tool_call_index: int | None
    role: str
    text: str


def segments_of(side: Side, content: TextOrMessages) -> list[Segment]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Segment(side, None, None, None, "user" if side == "input" else "assistant", content)]
    out = []
    for i, message in enumerate(content):
        if isinstance(message.content, str):
            out.append(Segment(side, i, None, None, message.role, message.content))
        elif message.content:
            for j, part in enumerate(message.content):
                if part.text:
                    out.append(Segment(side, i, j, None, message.role, part.text))
        for k, call in enumerate(message.tool_calls or []):
            if call.arguments:
                out.append(Segment(side, i, None, k, message.role, call.arguments))
    return out


def _rebuild(content: TextOrMessages, replaced: dict[tuple[int | None, int | None, int | None], str]
             ) -> str | list[ChatMessage] | None:
    if content is None or not replaced:
        return content if content is None or isinstance(content, str) else list(content)
    if isinstance(content, str):
        return replaced.get((None, None, None), content)
    out = []
    for i, message in enumerate(content):
        update: dict[str, Any] = {}
        if isinstance(message.content, str) and (i, None, None) in replaced:
            update["content"] = replaced[(i, None, None)]
        elif isinstance(message.content, list):
            parts = [p.model_copy(update={"text": replaced[(i, j, None)]}) if (i, j, None) in replaced else p
                     for j, p in enumerate(message.content)]
            if any((i, j, None) in replaced for j in range(len(message.content))):
                update["content"] = parts
        if message.tool_calls and any((i, None, k) in replaced for k in range(len(message.tool_calls))):
            update["tool_calls"] = [
                c.model_copy(update={"arguments": replaced[(i, None, k)]}) if (i, None, k) in replaced else c
                for k, c in enumerate(message.tool_calls)
            ]
        out.append(message.model_copy(update=update) if update else message)
    return out


# --------------------------------------------------------------------------------------------------
# Scanners per detector configuration, and the content-hash cache.


class _Scanners:
    def __init__(self, policy: Policy, ner: Callable[[], NerPipeline], batch_size: int, names: str = "spacy") -> None:
        d = policy.detectors
        self.pii = None
        if policy.uses(Detector.PII) and d.pii.entities:
            self.pii = PiiDetector(ner(), entities=d.pii.entities, language=d.pii.language,
                                   score_threshold=d.pii.score_threshold, phone_regions=d.pii.phone_regions,
                                   context_enhancement=d.pii.context_enhancement, batch_size=batch_size,
                                   names=names)
        self.secrets = (SecretsDetector(generic=d.secrets.generic, min_entropy=d.secrets.min_entropy)
                        if policy.uses(Detector.SECRETS) and d.secrets.enabled else None)
        self.injection = (InjectionDetector(decode_payloads=d.injection.decode_payloads,
                                            model=injection_model.load() if d.injection.model else None)
                          if policy.uses(Detector.INJECTION) and d.injection.enabled else None)
        self.terms = (TermsDetector({n: (t.terms, t.patterns) for n, t in d.terms.lists.items()})
                      if policy.uses(Detector.TERMS) and d.terms.lists else None)

    def scan(self, texts: Sequence[str]) -> list[tuple[Hit, ...]]:
        pii = self.pii.detect_many(texts) if self.pii else [[] for _ in texts]
        out = []
        for text, pii_hits in zip(texts, pii, strict=True):
            hits: list[Hit] = list(pii_hits)
            for detector in (self.secrets, self.injection, self.terms):
                if detector is not None:
                    hits.extend(detector.detect(text))
            out.append(tuple(hits))
        return out


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def get_fresh(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


def content_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


# --------------------------------------------------------------------------------------------------


VALUE_HASHES = 50_000
"""The most value hashes an engine remembers (values of findings, ~0.7 µs of HMAC each to compute again; ~200 bytes
each held, ~10 MB at most; emptied when full). The values are the findings' own spans of texts the scan cache already
holds."""


class PolicyEngine:
    """Scans and decides. Build one per process; it loads the spaCy model once, on first need."""

    def __init__(self, settings: GuardrailsSettings | None = None) -> None:
        self.settings = settings or GuardrailsSettings()
        self._salt = self.settings.finding_hash_salt.get_secret_value().encode()
        self._ner: NerPipeline | None = None
        self._scanners: _Lru = _Lru(64)
        self._cache: _Lru = _Lru(self.settings.scan_cache_size)
        self._prompts: _Lru = _Lru(1024)
        self._lock = threading.RLock()
        self._value_hashes: dict[str, str] = {}  # value -> its hash under `_salt`, across events (see `_decide`)
        self.stats = {"cache_hits": 0, "cache_misses": 0}

    # -- building blocks ------------------------------------------------------------------------

    def ner(self) -> NerPipeline:
        """The shared spaCy pipeline; its model is loaded by the first detector that reads with it."""
        if self._ner is None:
            self._ner = NerPipeline(self.settings.spacy_model)
        return self._ner

    def _scanners_for(self, policy: Policy) -> _Scanners:
        key = policy.detector_fingerprint
        scanners = self._scanners.get_fresh(key)
        if scanners is None:
            scanners = _Scanners(policy, self.ner, self.settings.nlp_batch_size, self.settings.name_model)
            self._scanners.put(key, scanners)
        return scanners

    def warm_up(self, policy: Policy) -> None:
        """Load the model and build the policy's scanners now rather than on the first event."""
        with self._lock:
            self._scanners_for(policy).scan(["warm-up text for jane@example.com"])

    def hits_for(self, texts: Sequence[str], policy: Policy) -> list[tuple[Hit, ...]]:
        """Hits per text; each distinct text not in the cache is scanned once, all of them in one batch."""
        with self._lock:
            fingerprint = policy.detector_fingerprint
            keys = [(fingerprint, content_key(t)) for t in texts]
            found: dict[tuple[str, bytes], tuple[Hit, ...]] = {}
            missing: dict[tuple[str, bytes], str] = {}
            for key, text in zip(keys, texts, strict=True):
                if key in found or key in missing:
                    continue
                cached = self._cache.get_fresh(key)
                if cached is not None:
                    found[key] = cached
                    self.stats["cache_hits"] += 1
                else:
                    missing[key] = text
            if missing:
                self.stats["cache_misses"] += len(missing)
                results = self._scanners_for(policy).scan(list(missing.values()))
                for key, hits in zip(missing, results, strict=True):
                    self._cache.put(key, hits)
                    found[key] = hits
            return [found[k] for k in keys]

    def _prompt_index(self, text: str) -> SystemPromptIndex:
        key = content_key(text)
        with self._lock:  # the inline API scans from several threads; the LRU is not thread-safe
            index = self._prompts.get_fresh(key)
            if index is None:
                index = SystemPromptIndex(text)
                self._prompts.put(key, index)
            return index

    # -- public API -----------------------------------------------------------------------------

    def scan_interaction(self, interaction: Interaction, policy: Policy) -> InteractionScan:
        return self.scan_many([interaction], policy)[0]

    def scan_many(self, interactions: Sequence[Interaction], policy: Policy | Sequence[Policy]
                  ) -> list[InteractionScan]:
        """Scan a batch; `policy` is one for all, or one per interaction (tenants differ)."""
        policies = [policy] * len(interactions) if isinstance(policy, Policy) else list(policy)
        if len(policies) != len(interactions):
            raise ValueError("one policy per interaction, or a single policy")
        segments = [segments_of("input", i.input) + segments_of("output", i.output) for i in interactions]
        hits = self._hits_grouped(segments, policies)
        out = []
        for interaction, pol, segs, seg_hits in zip(interactions, policies, segments, hits, strict=True):
            outcome, redacted = self._decide(segs, seg_hits, pol, interaction.input, interaction.output)
            copy = interaction.model_copy(update={"input": redacted["input"], "output": redacted["output"]})
            out.append(InteractionScan(**outcome, interaction=copy))
        return out

    def check_text(self, input: TextOrMessages, policy: Policy, *, output: TextOrMessages = None) -> TextCheck:
        """The inline check: a prompt (text or chat messages), optionally a completion, against a policy."""
        messages_in = _as_messages(input)
        messages_out = _as_messages(output)
        segs = segments_of("input", messages_in) + segments_of("output", messages_out)
        seg_hits = self._hits_grouped([segs], [policy])[0]
        outcome, redacted = self._decide(segs, seg_hits, policy, messages_in, messages_out)
        return TextCheck(**outcome, input=redacted["input"], output=redacted["output"])

    # -- internals ------------------------------------------------------------------------------

    def _hits_grouped(self, segments: list[list[Segment]], policies: list[Policy]) -> list[list[tuple[Hit, ...]]]:
        by_fingerprint: dict[str, list[tuple[int, int]]] = {}
        for i, (segs, pol) in enumerate(zip(segments, policies, strict=True)):
            for j in range(len(segs)):
                by_fingerprint.setdefault(pol.detector_fingerprint, []).append((i, j))
        result: list[list[tuple[Hit, ...]]] = [[() for _ in segs] for segs in segments]
        for places in by_fingerprint.values():
            pol = policies[places[0][0]]
            texts = [segments[i][j].text for i, j in places]
            for (i, j), hits in zip(places, self.hits_for(texts, pol), strict=True):
                result[i][j] = hits
        return result

    def _interaction_hits(self, segs: list[Segment], policy: Policy) -> list[tuple[Segment | None, Hit]]:
        out: list[tuple[Segment | None, Hit]] = []
        size = policy.detectors.size
        if policy.uses(Detector.SIZE):
            for seg in segs:
                out.extend((seg, h) for h in size_hits(len(seg.text), size.max_message_chars, "message_too_long"))
            for side, limit, kind in (("input", size.max_input_chars, "input_too_long"),
                                      ("output", size.max_output_chars, "output_too_long")):
                total = sum(len(s.text) for s in segs if s.side == side)
                role = "user" if side == "input" else "assistant"
                out.extend((Segment(side, None, None, None, role, ""), h)  # type: ignore[arg-type]
                           for h in size_hits(total, limit, kind))
        if policy.uses(Detector.OUTPUT):
            prompts = [self._prompt_index(s.text) for s in segs
                       if s.side == "input" and s.role in ("system", "developer") and s.text.strip()]
            if prompts:
                o = policy.detectors.output
                leak = LeakDetector(min_chars=o.leak_min_chars, full_chars=o.leak_full_chars)
                for seg in segs:
                    if seg.side == "output" and seg.tool_call_index is None:
                        out.extend((seg, h) for h in leak.detect(seg.text, prompts))
        return out

    def _decide(self, segs: list[Segment], seg_hits: list[tuple[Hit, ...]], policy: Policy,
                content_in: TextOrMessages, content_out: TextOrMessages,
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        placed: list[tuple[Segment | None, Hit]] = [(s, h) for s, hs in zip(segs, seg_hits, strict=True) for h in hs]
        placed += self._interaction_hits(segs, policy)
        if len(self._value_hashes) > VALUE_HASHES:
            self._value_hashes = {}
        # compiled: the per-finding loop; each value's HMAC once per process while the dict holds it (names and
        # addresses recur across events; a dict's single get and set are atomic for the inline API's threads)
        findings, values, places = decision.place(placed, self._salt, self._value_hashes)
        fired, redactions = decision.apply_rules(policy.active_rules, findings, values, places)
        triggered = decision.triggered(TriggeredRule, fired, findings)

        texts = {(s.side, s.message_index, s.part_index, s.tool_call_index): s.text for s in segs}
        replaced: dict[str, dict[tuple[int | None, int | None, int | None], str]] = {"input": {}, "output": {}}
        for key, spans in redactions.items():
            replaced[key[0]][key[1:]] = redact(texts[key], spans, self._salt)
        outcome = {
            "policy_name": policy.name,
            "findings": findings,
            "triggered": triggered,
            "blocked": any(t.action is Action.BLOCK for t in triggered),
        }
        return outcome, {"input": _rebuild(content_in, replaced["input"]),
                         "output": _rebuild(content_out, replaced["output"])}


def _as_messages(content: str | Sequence[ChatMessage | dict[str, Any]] | None) -> TextOrMessages:
    if content is None or isinstance(content, str):
        return content
    return [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in content]


__all__ = ["InteractionScan", "PolicyEngine", "ScanOutcome", "Segment", "TextCheck",
           "TriggeredRule", "segments_of"]
