"""PII detection with presidio-analyzer, made fast for LLM traffic.

What differs from a default `AnalyzerEngine`:
- the spaCy model is an installed package named in settings, loaded once and shared; only the components
  NER needs stay enabled (no tagger, parser, lemmatizer), and when a policy needs no NER entity at all
  only the tokenizer runs;
- texts go through `nlp.pipe` in batches, and each doc feeds `analyze(..., nlp_artifacts=...)`;
- only the recognizers for the policy's entities are registered; cards, phone numbers (validated for the
  configured regions) and names introduced by context use the recognizers of `pii_patterns`, which
  find more than presidio's defaults and run faster than its phonenumbers matcher;
- presidio's lemma-based context enhancer is off unless the policy turns it on (it costs about a fifth of
  the time and did not improve F2 on the development split);
- email domains are checked against tldextract's bundled suffix list, never fetched.

Scores are presidio's confidences (already in [0, 1]): NER entities 0.85, patterns their pattern's
score, raised to 1.0 by a passing validator (email domain, IBAN checksum); see `pii_patterns` for cards,
phones and context names. `refine` then tidies NER spans (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import regex
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

from llmops_guardrails.detectors.pii_patterns import CardNumberRecognizer, NameContextRecognizer, PhoneNumberRecognizer
from llmops_guardrails.findings import Detector, Hit
from llmops_guardrails.offline import OFFLINE_TLD_EXTRACTOR, load_spacy_model, patch_presidio_email_recognizer

# Entities that come from the spaCy NER model, and the model labels that feed them.
NER_ENTITIES: dict[str, tuple[str, ...]] = {
    "PERSON": ("PERSON", "PER"),
    "LOCATION": ("GPE", "LOC", "LOCATION", "FAC"),
    "NRP": ("NORP",),
    "DATE_TIME": ("DATE", "TIME"),
    "ORGANIZATION": ("ORG",),
}


class NerPipeline(SpacyNlpEngine):
    """A spaCy pipeline with only NER (and what NER listens to) enabled; shared by all PII detectors."""

    def __init__(self, model_name: str, language: str = "en") -> None:
        super().__init__(models=[{"lang_code": language, "model_name": model_name}])
        self.model_name = model_name
        self.language = language
        self.calls = 0  # texts run through the pipeline: tests count them
        self.model: Any = None

    def load(self) -> None:
        patch_presidio_email_recognizer()
        nlp = load_spacy_model(self.model_name)
        keep = {"ner"} if "ner" in nlp.pipe_names else set()
        for name in nlp.pipe_names:  # a tok2vec/transformer the NER listens to must stay on
            listeners = getattr(nlp.get_pipe(name), "listening_components", [])
            if "ner" in listeners:
                keep.add(name)
        nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in keep])
        self.model = nlp
        self.nlp = {self.language: nlp}  # type: ignore[assignment]

    def configure_labels(self, wanted: Iterable[str]) -> NerModelConfiguration:
        """A NER configuration that keeps only the model labels feeding `wanted` entities."""
        nlp = self.model
        labels: set[str] = set(nlp.get_pipe("ner").labels) if "ner" in nlp.pipe_names else set()
        mapping = {label: entity for entity, sources in NER_ENTITIES.items() for label in sources}
        keep = {label for label, entity in mapping.items() if entity in set(wanted)}
        return NerModelConfiguration(
            model_to_presidio_entity_mapping=mapping,
            labels_to_ignore=sorted((labels | set(mapping)) - keep),
        )

    def docs(self, texts: Sequence[str], *, with_ner: bool, batch_size: int) -> Iterator[Any]:
        nlp = self.model
        self.calls += len(texts)
        if with_ner:
            return nlp.pipe(texts, batch_size=batch_size)
        return (nlp.make_doc(t) for t in texts)

    def artifacts(self, doc: Any, config: NerModelConfiguration) -> NlpArtifacts:
        """NlpArtifacts for one doc; lemmas are lower-cased tokens, since the lemmatizer is off."""
        ents = []
        scores: list[float] = []
        ignore = set(config.labels_to_ignore or ())
        mapping = config.model_to_presidio_entity_mapping or {}
        score = float(config.default_score if config.default_score is not None else 0.85)
        for ent in doc.ents:
            if ent.label_ in ignore:
                continue
            span = doc.char_span(ent.start_char, ent.end_char, label=mapping.get(ent.label_, ent.label_))
            if span is not None:
                ents.append(span)
                scores.append(score)
        return NlpArtifacts(
            entities=ents,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self,
            language=self.language,
            scores=scores,
        )


class _NoContextEnhancement(ContextAwareEnhancer):
    def __init__(self) -> None:
        super().__init__(context_similarity_factor=0, min_score_with_context_similarity=0, context_prefix_count=0,
                         context_suffix_count=0)

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult], nlp_artifacts: NlpArtifacts,
                              recognizers: list[EntityRecognizer], context: list[str] | None = None,
                              ) -> list[RecognizerResult]:
        return raw_results


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, validating the domain against the bundled public suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return OFFLINE_TLD_EXTRACTOR(pattern_text).fqdn != ""


def _presidio_recognizers(language: str) -> dict[str, list[EntityRecognizer]]:
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language])
    out: dict[str, list[EntityRecognizer]] = {}
    for recognizer in registry.recognizers:
        for entity in recognizer.supported_entities:
            out.setdefault(entity, []).append(recognizer)
    return out


def build_recognizers(entities: Sequence[str], *, language: str, phone_regions: Sequence[str]
                      ) -> list[EntityRecognizer]:
    """Only the recognizers `entities` need; raises ValueError for an entity nothing recognizes."""
    wanted = list(dict.fromkeys(entities))
    recognizers: list[EntityRecognizer] = []
    ner = [e for e in wanted if e in NER_ENTITIES]
    if ner:
        recognizers.append(SpacyRecognizer(supported_language=language, supported_entities=ner))
    context_entities = [e for e in ner if e in ("PERSON", "LOCATION")]
    if context_entities:
        recognizers.append(NameContextRecognizer(supported_language=language, entities=context_entities))
    own: dict[str, Callable[[], list[EntityRecognizer]]] = {
        "EMAIL_ADDRESS": lambda: [OfflineEmailRecognizer(supported_language=language)],
        "PHONE_NUMBER": lambda: [PhoneNumberRecognizer(supported_language=language, regions=phone_regions)],
        "CREDIT_CARD": lambda: [CardNumberRecognizer(supported_language=language)],
    }
    predefined: dict[str, list[EntityRecognizer]] | None = None
    unknown = []
    for entity in wanted:
        if entity in own:
            recognizers.extend(own[entity]())
            continue
        if predefined is None:
            predefined = _presidio_recognizers(language)
        extra = [r for r in predefined.get(entity, []) if not isinstance(r, SpacyRecognizer)]
        if not extra and entity not in NER_ENTITIES:
            unknown.append(entity)
        for r in extra:
            if r not in recognizers:
                recognizers.append(r)
    if unknown:
        raise ValueError(f"no recognizer for entities {unknown}")
    return recognizers


_REGION_PREFIX = regex.compile(r"^(?:(?:the|southern|northern|eastern|western|central|south|north|east|west|"
                               r"greater|downtown|upper|lower)\s+)+", regex.IGNORECASE)
_POSSESSIVE = regex.compile(r"['’]s?$")
_NAME_TOKEN = regex.compile(r"\p{Lu}[\p{L}'’-]{2,}")


def refine(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Tidy NER spans: drop a leading "Southern"/"the" from places and a trailing possessive, and mark
    later mentions of a detected person's name (a first name used again alone) as PERSON too."""
    out = []
    for r in results:
        if r.entity_type in ("PERSON", "LOCATION"):
            value = text[r.start:r.end]
            if r.entity_type == "LOCATION":
                m = _REGION_PREFIX.match(value)
                if m and m.end() < len(value):
                    r.start += m.end()
            m2 = _POSSESSIVE.search(text[r.start:r.end])
            if m2 and m2.start() > 0:
                r.end = r.start + m2.start()
        out.append(r)
    names = {tok for r in out if r.entity_type == "PERSON" for tok in _NAME_TOKEN.findall(text[r.start:r.end])}
    for name in names:
        for m in regex.finditer(rf"\b{regex.escape(name)}\b", text):
            if all(m.end() <= r.start or m.start() >= r.end for r in out):
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.7))
    return out


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the best of overlapping results: higher score first, then longer span."""
    kept: list[RecognizerResult] = []
    for r in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


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
    ) -> None:
        if not ner.is_loaded():
            ner.load()
        self.ner = ner
        self.entities = list(dict.fromkeys(entities))
        self.language = language
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.with_ner = any(e in NER_ENTITIES for e in self.entities)
        self.ner_config = ner.configure_labels(self.entities)
        registry = RecognizerRegistry(supported_languages=[language])
        for recognizer in build_recognizers(self.entities, language=language, phone_regions=phone_regions):
            registry.add_recognizer(recognizer)
        enhancer: ContextAwareEnhancer = LemmaContextAwareEnhancer() if context_enhancement else _NoContextEnhancement()
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=ner, supported_languages=[language],
                                       context_aware_enhancer=enhancer)

    def detect_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        if not self.entities:
            return [[] for _ in texts]
        docs = self.ner.docs(texts, with_ner=self.with_ner, batch_size=self.batch_size)
        for text, doc in zip(texts, docs, strict=True):
            results = self.analyzer.analyze(
                text=text, language=self.language, entities=self.entities,
                nlp_artifacts=self.ner.artifacts(doc, self.ner_config),
                score_threshold=self.score_threshold,
            )
            out.append([
                Hit(Detector.PII, r.entity_type, r.start, r.end, round(min(1.0, max(0.0, r.score)), 4))
                for r in resolve_overlaps(refine(text, results) if self.with_ner else results)
            ])
        return out

    def detect(self, text: str) -> list[Hit]:
        return self.detect_many([text])[0]


