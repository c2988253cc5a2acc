"""The PII detector: rules on every text, then the NER model on the texts that need it (or the learned name
tagger, `names="tagger"`), then refinement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import re2
import regex
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration
from presidio_analyzer.predefined_recognizers import IpRecognizer, SpacyRecognizer, UsSsnRecognizer

from llmops_guardrails.detectors.pii.ner_gate import needs_ner, ner_windows
from llmops_guardrails.detectors.pii.patterns import SpanRecognizer
from llmops_guardrails.detectors.pii.pipeline import NER_ENTITIES, NerPipeline
from llmops_guardrails.detectors.pii.recognizers import OfflineEmailRecognizer, build_recognizers
from llmops_guardrails.detectors.pii.refinement import refine, resolve_overlaps
from llmops_guardrails.detectors.pii.results import (
    SPACY,
    TAGGER,
    Span,
    moved_spans,
    pattern_spans,
    score_order,
    span_of,
    word_start,
)
from llmops_guardrails.detectors.pii.tagger import NameTagger, shipped, spans_of
from llmops_guardrails.findings import Detector, Hit, clamped_score, hit_of

# A rule result at least this confident explains its words: the NER model need not look at them.
_EXPLAINS = 0.85

# Who finds names and places that no rule found (`PiiDetector(names=...)`): spaCy's NER model on the gate's
# windows (`ner_gate`); nobody; the learned tagger alone (`tagger`); or the tagger, with the NER model on the
# windows of the words the tagger is not sure of.
NAME_MODELS = ("spacy", "off", "tagger", "tagger+spacy")

# What a text must contain for a recognizer of these entities to find anything (a necessary condition of its
# patterns, cheaper to test than running them): recognizers whose entities all have a precondition are
# skipped on texts without it (most chat messages have no "@", and few have seven digits close together).
_DIGIT = regex.compile(r"\d")
_PRECONDITIONS: dict[str, regex.Pattern[str]] = {
    "EMAIL_ADDRESS": regex.compile("@"),
    # IPv4 (four groups of digits, three dots); IPv6 compressed ("::") or full (eight groups of hex digits, seven
    # colons: every one of presidio's IPv6 forms without "::" is that one); from the dot or colon on, which the
    # search skips to (5x cheaper than starting anywhere). Times ("12:20:39") and dates ("2018.01.14") fail it.
    "IP_ADDRESS": regex.compile(r"[.:](?:(?<=[0-9]\.)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|(?<=::)"
                                r"|(?<=[0-9A-Fa-f]:)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){5}:[0-9A-Fa-f])"),
    "IBAN_CODE": regex.compile(r"[A-Z]{2}\d{2}"),  # presidio's pattern is case-sensitive
    # every one of presidio's SSN patterns is nine digits in groups of 3-2-4, 5-4 or 3-6 between word boundaries
    "US_SSN": regex.compile(r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b"),
    "CREDIT_CARD": regex.compile(r"\d(?:[ -]?\d){11}"),  # `CardNumberRecognizer.CANDIDATE`: 12+ digits
    "PHONE_NUMBER": regex.compile(r"\d(?:\D{0,6}\d){6}"),  # 7+ digits, separators or an extension between
    **{e: _DIGIT for e in ("US_BANK_NUMBER", "US_ITIN", "UK_NHS", "US_PASSPORT", "MEDICAL_LICENSE")},
}


# One RE2 pass over a text tells which preconditions can match it at all (`_PREFILTER`; RE2 runs a set of patterns in
# one linear pass, where the `regex` module pays ~1 µs plus a scan per pattern): each pattern here matches wherever its
# entity's precondition does, being the same with every `\d` widened to an ASCII digit or any non-ASCII character
# (RE2's Unicode tables need not be the `regex` module's), `\D` to any character, its look-behinds made part of the
# match and its word boundaries dropped. A text it does not find is not searched with the precondition; the others
# are, as before (the windows need the first match's place). Name-dense texts: 8-10% hold an IP, SSN or IBAN shape,
# half a card's.
_D = r"[0-9\x{80}-\x{10FFFF}]"
_PREFILTERS: dict[str, str] = {
    "EMAIL_ADDRESS": "@",
    "IP_ADDRESS": (r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|::"
                   r"|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){5}:[0-9A-Fa-f]"),
    "IBAN_CODE": rf"[A-Z]{{2}}{_D}{{2}}",
    "US_SSN": rf"{_D}{{3}}[- .]?{_D}{{2}}[- .]?{_D}{{4}}",
    "CREDIT_CARD": rf"{_D}(?:[ -]?{_D}){{11}}",
    "PHONE_NUMBER": rf"(?s){_D}(?:.{{0,6}}{_D}){{6}}",
    **{e: _D for e in ("US_BANK_NUMBER", "US_ITIN", "UK_NHS", "US_PASSPORT", "MEDICAL_LICENSE")},
}
_PREFILTERED = list(dict.fromkeys(_PRECONDITIONS[e] for e in _PREFILTERS))  # each distinct precondition once
_PREFILTER_INDEX = {id(p): i for i, p in enumerate(_PREFILTERED)}  # a precondition's index in the set


def _prefilter() -> Any:
    options = re2.Options()
    options.case_sensitive = True
    prefilter = re2.Set.SearchSet(options)
    for pattern in _PREFILTERED:
        prefilter.Add(next(_PREFILTERS[e] for e, p in _PRECONDITIONS.items() if p is pattern))
    prefilter.Compile()
    return prefilter


_PREFILTER = _prefilter()
_ALL = frozenset(range(len(_PREFILTERED)))


def possible_preconditions(text: str) -> AbstractSet[int]:
    """The indices (`_PREFILTER_INDEX`) of the preconditions that may match `text`: all but those the prefilter rules
    out (all of them for a text RE2 cannot read: a lone surrogate)."""
    try:
        found = _PREFILTER.Match(text)
    except UnicodeEncodeError:
        return _ALL
    return frozenset(found) if found else frozenset()


def _at(text: str, i: int) -> int:
    return i


# presidio's recognizers whose matches all start at or after a point the precondition's first match gives: they run on
# the text from there (`_rules`), with the same results moved back into place. Every one of presidio's SSN patterns is
# a case of the SSN precondition (3-2-4 digits between word boundaries), so none starts before its first match; the
# slice starts at a word boundary before a digit, as it does in the text. Every IP match holds the start of a match of
# the IP precondition (a dotted quad's first dot, the second colon of "::", the first colon of eight groups) and no
# whitespace, so none starts before the word holding the first; at the word's start the patterns' look-behinds
# (`(?<![\w:])`, `\b`) see whitespace or the text's edge alike.
_WINDOWS: dict[type[PatternRecognizer], Callable[[str, int], int]] = {UsSsnRecognizer: _at, IpRecognizer: word_start}


def _window(recognizer: EntityRecognizer) -> Callable[[str, int], int] | None:
    kind = type(recognizer)
    if kind not in _WINDOWS or not isinstance(recognizer, PatternRecognizer):
        return None
    default: list[Any] = getattr(kind, "PATTERNS", [])
    patterns: list[Any] = getattr(recognizer, "patterns", [])
    if [p.regex for p in patterns] != [p.regex for p in default]:
        return None  # configured with other patterns
    return _WINDOWS[kind]


# presidio's IP recognizer (its own patterns) runs word by word: on each whitespace-delimited word that holds the start
# of a match of the IP precondition, instead of on the text from the first such word to its end (`_in_words`). Every
# IP match holds such a start and no whitespace (above), so it lies in one of those words; a match's test at a place
# sees the same there (its look-arounds reach one character outside a word, whitespace or the text's edge alike, and
# `(?![\w:]|\.\d)` two: neither whitespace nor an edge is a dot); matches of different words are disjoint, so
# presidio's duplicate removal per word drops what it drops on the whole, and the spans are put back in its order.
_WORD_WISE = (IpRecognizer,)
_SPACE = regex.compile(r"\s")


def _fast_path(recognizer: EntityRecognizer) -> Callable[[str], list[Span]] | None:
    """How `_rules` gets a recognizer's matches as `Span`s without presidio's result objects, when it can: our
    `SpanRecognizer`s' `spans` (cards, phone numbers), the e-mail recognizer's `spans`, and `results.pattern_spans` for
    presidio's pattern recognizers that keep `PatternRecognizer.analyze` (SSN, IP; a tenant's pattern recognizer).
    Each gives what `analyze` gives (tests/unit/guardrails/detectors/pii/test_spans.py); a recognizer whose `analyze`
    is its own (IBAN, the name recognizers, anything configured otherwise) goes the general way: `analyze`, then
    `span_of` per result."""
    kind: Any = type(recognizer)
    if isinstance(recognizer, SpanRecognizer) and kind.analyze is SpanRecognizer.analyze:
        return recognizer.spans
    if isinstance(recognizer, OfflineEmailRecognizer) and kind.analyze is OfflineEmailRecognizer.analyze:
        return recognizer.spans
    if isinstance(recognizer, PatternRecognizer) and kind.analyze is PatternRecognizer.analyze:
        return lambda text: pattern_spans(recognizer, text)
    return None


def _precondition(recognizer: EntityRecognizer) -> regex.Pattern[str] | None:
    needed = {_PRECONDITIONS.get(e) for e in recognizer.supported_entities}
    if None in needed or len(needed) != 1:
        return None
    return needed.pop()


class PiiDetector:
    """PII hits for many texts at once. Built per set of PII settings; shares the `NerPipeline`."""

    detector = Detector.PII

    def __init__(
        self,
        ner: NerPipeline,
        *,
        entities: Sequence[str],
        language: str = "en",
        score_threshold: float = 0.0,
        phone_regions: Sequence[str] = ("US", "GB", "DE", "FR", "IN", "CA"),
        context_enhancement: bool = False,
        batch_size: int = 64,
        skip_ner: bool = True,
        names: str = "spacy",
        tagger: NameTagger | None = None,
        tagger_threshold: float = 0.3,
        tagger_place_threshold: float | None = 0.5,
        tagger_confidence: float = 0.9,
    ) -> None:
        if names not in NAME_MODELS:
            raise ValueError(f"names must be one of {NAME_MODELS}, not {names!r}")
        self.entities = list(dict.fromkeys(entities))
        self.with_ner = any(e in NER_ENTITIES for e in self.entities)
        # The spaCy model is loaded only when something reads with it: NER, or presidio's context enhancer.
        if not ner.is_loaded() and (context_enhancement or (self.with_ner and names in ("spacy", "tagger+spacy"))):
            ner.load()
        self.ner = ner
        self.language = language
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.skip_ner = skip_ner
        self.names = names
        if names.startswith("tagger") and tagger is None:
            tagger = shipped()
        self.tagger = tagger
        self.tagger_threshold = tagger_threshold
        self.tagger_confidence = tagger_confidence
        self.tagger_place_threshold = tagger_place_threshold
        self.ner_config = ner.configure_labels(self.entities) if ner.is_loaded() else NerModelConfiguration()
        self.recognizers = build_recognizers(self.entities, language=language, phone_regions=phone_regions)
        self.context_enhancement = context_enhancement
        self.analyzer: AnalyzerEngine | None = None  # presidio's own path, for its lemma context enhancer only
        if context_enhancement:
            registry = RecognizerRegistry(supported_languages=[language])
            for recognizer in self.recognizers:
                registry.add_recognizer(recognizer)
            self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=ner, supported_languages=[language],
                                           context_aware_enhancer=LemmaContextAwareEnhancer())
        self._rule_recognizers = [(r, _precondition(r)) for r in self.recognizers if not isinstance(r, SpacyRecognizer)]
        self._windows = {id(r): w for r, _ in self._rule_recognizers if (w := _window(r)) is not None}
        self._fast = {id(r): f for r, _ in self._rule_recognizers if (f := _fast_path(r)) is not None}
        self._word_wise = {id(r) for r, _ in self._rule_recognizers
                           if type(r) in _WORD_WISE and id(r) in self._fast and _window(r) is not None}
        self._ner_entities = {e for e in self.entities if e in NER_ENTITIES}

    def _found(self, recognizer: EntityRecognizer, text: str) -> list[Span]:
        """A recognizer's matches in `text`: by its fast path (`_fast_path`), or by `analyze`."""
        fast = self._fast.get(id(recognizer))
        if fast is not None:
            return fast(text)
        return [span_of(r) for r in recognizer.analyze(text, self.entities, None)]  # type: ignore[arg-type]

    def _in_words(self, recognizer: EntityRecognizer, text: str, needed: regex.Pattern[str], first: Any,
                  ) -> list[Span]:
        """A word-wise recognizer's matches (`_WORD_WISE`): its fast path on each word holding the start of a match of
        its precondition (`first` the first match), put back into place and in presidio's order."""
        found: list[Span] = []
        words = 0
        m = first
        while m is not None:
            at: int = m.start()
            start = word_start(text, at)
            after = _SPACE.search(text, at)
            end: int = after.start() if after is not None else len(text)
            found.extend(moved_spans(self._found(recognizer, text[start:end]), start))
            words += 1
            m = needed.search(text, end)
        if words > 1 and len(found) > 1:
            found.sort(key=score_order)
        return found

    def _rules(self, text: str) -> list[Span]:
        """Every recognizer but the NER model, once; results at or above the threshold."""
        results: list[Span] = []
        windows = self._windows
        possible = possible_preconditions(text)
        for recognizer, needed in self._rule_recognizers:
            if needed is None:
                results.extend(self._found(recognizer, text))
                continue
            index = _PREFILTER_INDEX.get(id(needed))
            if index is not None and index not in possible:
                continue  # the precondition cannot match: nor can the recognizer
            first = needed.search(text)
            if first is None:
                continue
            if id(recognizer) in self._word_wise:
                results.extend(self._in_words(recognizer, text, needed, first))
                continue
            window = windows.get(id(recognizer))
            start = window(text, first.start()) if window is not None else 0
            if not start:
                results.extend(self._found(recognizer, text))
                continue
            results.extend(moved_spans(self._found(recognizer, text[start:]), start))
        threshold = self.score_threshold
        return [r for r in results if r.score >= threshold and r.score > 0]

    def _ner_results(self, doc: Any, offset: int = 0) -> list[Span]:
        results = []
        ents, scores = self.ner.entities(doc, self.ner_config)
        for ent, score in zip(ents, scores, strict=True):
            if ent.label_ in self._ner_entities and score >= self.score_threshold:
                results.append(Span(ent.label_, offset + ent.start_char, offset + ent.end_char, score, SPACY))
        return results

    def _finish(self, text: str, results: list[Span]) -> list[Hit]:
        if self.with_ner:
            results = refine(text, results)
        pii = Detector.PII
        return [hit_of(pii, r.entity_type, r.start, r.end, clamped_score(r.score))
                for r in resolve_overlaps(results, text)]

    def detect_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        if not self.entities:
            return [[] for _ in texts]
        if self.analyzer is not None:  # presidio's own analysis, with its lemma context enhancer
            docs = self.ner.docs(texts, with_ner=self.with_ner, batch_size=self.batch_size)
            self.ner.count(texts, [[(0, len(t))] if self.with_ner else [] for t in texts])
            return [self._finish(text, [span_of(r) for r in self.analyzer.analyze(
                text=text, language=self.language, entities=self.entities,
                nlp_artifacts=self.ner.artifacts(doc, self.ner_config), score_threshold=self.score_threshold)])
                for text, doc in zip(texts, docs, strict=True)]
        names = self.names
        tagging = self.with_ner and names.startswith("tagger")
        rules: list[list[Span]] = []
        sure: list[list[tuple[int, int]]] = []
        for t in texts:  # the tagger right after a text's rules: it reads what they read (`classes.plain`, remembered)
            found = self._rules(t)
            rules.append(found)
            sure.append(self._tag(t, found) if tagging else [])
        if not self.with_ner:
            self.ner.count(texts, [[] for _ in texts])
            return [self._finish(t, r) for t, r in zip(texts, rules, strict=True)]
        if names in ("off", "tagger"):
            windows: list[list[tuple[int, int]]] = [[] for _ in texts]
        elif self.skip_ner:
            windows = [ner_windows(t, [(r.start, r.end) for r in rs if r.score >= _EXPLAINS] + ok)
                       for t, rs, ok in zip(texts, rules, sure, strict=True)]
        else:
            windows = [[(0, len(t))] for t in texts]
        pieces = [t[s:e] for t, ws in zip(texts, windows, strict=True) for s, e in ws]
        docs = iter(self.ner.docs(pieces, with_ner=True, batch_size=self.batch_size)) if pieces else iter(())
        self.ner.count(texts, windows)
        out = []
        for text, ws, found in zip(texts, windows, rules, strict=True):
            results = [r for s, _ in ws for r in self._ner_results(next(docs), s)] + found
            out.append(self._finish(text, results))
        return out

    def _tag(self, text: str, rules: list[Span]) -> list[tuple[int, int]]:
        """Add the tagger's people and places to `rules`; the spans of the words it is sure of (with
        `tagger+spacy`: the words the NER model need not read)."""
        assert self.tagger is not None
        if self.skip_ner and not needs_ner(text, [(r.start, r.end) for r in rules if r.score >= _EXPLAINS]):
            return []  # no word the NER model would have read: nor does the tagger
        evidence = [(r.entity_type, r.start, r.end, r.score, r.rule or r.source) for r in rules]
        spans, cand, probs = self.tagger.word_probabilities(text, evidence)
        gate = self.names == "tagger+spacy"
        threshold = max(self.tagger_threshold, self.tagger_confidence) if gate else self.tagger_threshold
        place = self.tagger_place_threshold
        tags = [t for t in spans_of(text, spans, cand, probs, threshold=threshold,
                                    place_threshold=max(place, threshold) if gate and place is not None else place)
                if t.label in self._ner_entities]
        found = [(r.start, r.end) for r in rules]
        for tag in tags:
            if any(s < tag.end and tag.start < e for s, e in found):
                continue  # the rules' span stands
            rules.append(Span(tag.label, tag.start, tag.end, 0.85, TAGGER))
        if not gate:
            return []
        confidence = self.tagger_confidence
        return [spans[i] for k, i in enumerate(cand) if probs[k].max() >= confidence]

    def detect(self, text: str) -> list[Hit]:
        return self.detect_many([text])[0]
