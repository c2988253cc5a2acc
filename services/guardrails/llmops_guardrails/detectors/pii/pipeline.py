"""The spaCy pipeline behind the PII detectors: only NER (and what it listens to) enabled, loaded once.

The model is an installed package (or a model directory) named in settings; nothing is downloaded. When
a policy needs no NER entity, only the tokenizer runs (`docs(..., with_ner=False)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

from llmops_guardrails.offline import load_spacy_model, patch_presidio_email_recognizer

# Entities that come from the spaCy NER model, and the model labels that feed them. FAC (buildings, airports,
# bridges) is left out: on the development split it added more false places ("Country Club") than it found.
NER_ENTITIES: dict[str, tuple[str, ...]] = {
    "PERSON": ("PERSON", "PER"),
    "LOCATION": ("GPE", "LOC", "LOCATION"),
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
        self.calls = 0  # texts the PII detectors were given (each went through the model, or skipped it)
        self.ner_calls = 0  # texts that went (in whole or in windows) through the NER model
        self.chars = 0  # characters of the texts the PII detectors were given
        self.ner_chars = 0  # characters the NER model read
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
        """Docs of whole texts (counted as seen) or, with NER, of texts or windows (not counted: see `count`)."""
        nlp = self.model
        if with_ner:
            return iter(nlp.pipe(texts, batch_size=batch_size))
        return (nlp.make_doc(t) for t in texts)

    def count(self, texts: Sequence[str], windows: Sequence[Sequence[tuple[int, int]]]) -> None:
        """Count texts given to a PII detector, and what of them the NER model read (`windows` per text)."""
        self.calls += len(texts)
        self.chars += sum(len(t) for t in texts)
        self.ner_calls += sum(1 for ws in windows if ws)
        self.ner_chars += sum(e - s for ws in windows for s, e in ws)

    def artifacts(self, doc: Any, config: NerModelConfiguration) -> NlpArtifacts:
        """NlpArtifacts for one doc; lemmas are lower-cased tokens, since the lemmatizer is off."""
        ents, scores = self.entities(doc, config)
        return NlpArtifacts(
            entities=ents,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self,
            language=self.language,
            scores=scores,
        )

    def entities(self, doc: Any, config: NerModelConfiguration) -> tuple[list[Any], list[float]]:
        """The doc's entities relabelled to presidio's names, without the ignored labels; and their scores."""
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
        return ents, scores
