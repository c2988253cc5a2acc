"""PII detection with presidio-analyzer, made fast for LLM traffic.

What differs from a default `AnalyzerEngine`:
- the spaCy model is an installed package (or a model directory) named in settings, loaded once and shared;
  only the components NER needs stay enabled (no tagger, parser, lemmatizer), and when a policy needs no NER
  entity at all only the tokenizer runs;
- texts go through `nlp.pipe` in batches; a text with no word that could start a name or a place (every
  capitalised word is a common sentence opener such as "What" or "I", and the text has capitals at all) skips
  the NER model: the rules below still run on it;
- only the recognizers for the policy's entities are registered. Cards (`CardNumberRecognizer`: Luhn and issuer
  prefixes, 12-digit Maestro included), phone numbers (validated for the configured regions) and names
  introduced by context use the recognizers of `pii_patterns` and of this module, which find more than
  presidio's defaults and run faster than its phonenumbers matcher; places come from a gazetteer
  (`data/places.md`) and from the structure of postal addresses (`PlaceRecognizer`), people also from
  cues such as speech verbs, speaker labels and the name line of a contact block (`PersonRecognizer`);
- recognizers are called directly, once per text, unless the policy turns presidio's lemma-based context
  enhancer on (then `AnalyzerEngine.analyze` runs, as before): the enhancer costs about a fifth of the time
  and did not improve F2 on the development split;
- email domains are checked against tldextract's bundled suffix list, never fetched.

Scores are presidio's confidences (already in [0, 1]): NER entities 0.85, patterns their pattern's
score, raised to 1.0 by a passing validator (email domain, IBAN checksum); see `pii_patterns` and the
classes below for cards, phones, places and names. `refine` then tidies NER spans and settles conflicts
between the model and the rules (see its docstring); `resolve_overlaps` keeps one result per span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import regex
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

from llmops_guardrails.detectors.pii_patterns import (
    CardNumberRecognizer,
    NameContextRecognizer,
    OneEntityRecognizer,
    PhoneNumberRecognizer,
)
from llmops_guardrails.findings import Detector, Hit
from llmops_guardrails.offline import OFFLINE_TLD_EXTRACTOR, load_spacy_model, patch_presidio_email_recognizer

# Entities that come from the spaCy NER model, and the model labels that feed them. FAC (buildings, airports,
# bridges) is left out: on the development split it added more false places ("Country Club") than it found.
NER_ENTITIES: dict[str, tuple[str, ...]] = {
    "PERSON": ("PERSON", "PER"),
    "LOCATION": ("GPE", "LOC", "LOCATION"),
    "NRP": ("NORP",),
    "DATE_TIME": ("DATE", "TIME"),
    "ORGANIZATION": ("ORG",),
}
_SPACY = "SpacyRecognizer"


class NerPipeline(SpacyNlpEngine):
    """A spaCy pipeline with only NER (and what NER listens to) enabled; shared by all PII detectors."""

    def __init__(self, model_name: str, language: str = "en") -> None:
        super().__init__(models=[{"lang_code": language, "model_name": model_name}])
        self.model_name = model_name
        self.language = language
        self.calls = 0  # texts the PII detectors were given (each went through the model, or skipped it)
        self.ner_calls = 0  # texts that went through the NER model
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
            self.ner_calls += len(texts)
            return iter(nlp.pipe(texts, batch_size=batch_size))
        return (nlp.make_doc(t) for t in texts)

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


def _result(recognizer: LocalRecognizer, entity: str, span: tuple[int, int], score: float, why: str, *,
            rule: str = "") -> RecognizerResult:
    start, end = span
    name = type(recognizer).__name__
    return RecognizerResult(
        entity_type=entity, start=start, end=end, score=min(1.0, score),
        analysis_explanation=AnalysisExplanation(recognizer=name, original_score=score, textual_explanation=why),
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id, _RULE: rule or name},
    )


_RULE = "guardrails_rule"


def _source(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))


def _rule(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get(_RULE, ""))


# --------------------------------------------------------------------------------------------------
# Card numbers




# --------------------------------------------------------------------------------------------------
# Places: a gazetteer and the shape of postal addresses


@dataclass(frozen=True)
class Place:
    section: str
    ambiguous: bool


class Gazetteer:
    """Place names from `data/places.md`, looked up by phrase."""

    def __init__(self, entries: Iterable[tuple[str, str, bool]]) -> None:
        self.exact: dict[str, Place] = {}
        self.lower: dict[str, Place] = {}
        self.first_words: set[str] = set()  # first word of every name, in every form looked up
        self.max_words = 1
        for name, section, ambiguous in entries:
            place = Place(section, ambiguous)
            for form in (name, name.upper()):
                self.exact.setdefault(form, place)
            if (" " in name or section == "countries") and not ambiguous and len(name) > 3:
                self.lower.setdefault(name.lower(), place)
            first = name.split()[0]
            self.first_words |= {first, first.upper(), first.lower(), first.rstrip(",."), first.upper().rstrip(",.")}
            self.max_words = max(self.max_words, len(name.split()))

    @classmethod
    def parse(cls, text: str) -> Gazetteer:
        entries = []
        section = ""
        for line in text.splitlines():
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("- ") and section:
                name = line[2:].strip()
                ambiguous = name.endswith(" *")
                entries.append((name.removesuffix(" *").strip(), section, ambiguous))
        return cls(entries)

    def get(self, phrase: str, *, lowercase_text: bool = False) -> Place | None:
        place = self.exact.get(phrase)
        if place is None and lowercase_text:
            place = self.lower.get(phrase)
        return place


@functools.cache
def gazetteer() -> Gazetteer:
    text = resources.files("llmops_guardrails").joinpath("data/places.md").read_text(encoding="utf-8")
    return Gazetteer.parse(text)


_TOKEN = regex.compile(r"[\p{L}\p{M}]+(?:['’.-][\p{L}\p{M}]+)*\.?")
_LINE = regex.compile(r"[^\n]*")
_BULLET = regex.compile(r"^[\s?•*·>–-]*")
_TAIL_TOKEN = regex.compile(r"^(?:\S*\d\S*|nan|\p{Lu}{2}|,)$")
_LOCALITY = regex.compile(r"^[\p{L}\p{M}][\p{L}\p{M}'’. -]*[\p{L}\p{M}.]$|^[\p{L}\p{M}]$")
_UNIT_OR_STREET = regex.compile(
    r"(?i)\b(?:apt|apartment|suite|ste|unit|floor|box|p\.?\s?o\.?|postbox|room|building|bldg|street|st|road|rd|"
    r"avenue|ave|avda|lane|ln|drive|dr|boulevard|blvd|way|place|pl|court|ct|square|sq|terrace|highway|hwy|rue|"
    r"via|calle|avenida|rua|strasse|straße|str|ul|dpo|apo|fpo|psc)\b\.?")
_ORG_WORD = (r"(?:Inc|Ltd|LLC|LLP|PLC|GmbH|AG|SA|NV|BV|Corp|Corporation|Company|Co|Group|Holdings|Partners|"
             r"Associates|Bank|Foundation|University|Institute|College|School|Orchestra|Band|Quartet|Trio|"
             r"Ensemble|Choir|Sons|Brothers|Industries|Technologies|Systems|Solutions|Consulting|Services|"
             r"Agency|Studios?|Records|Hotel|Hospital|Clinic|Church|Club|Society|Association|Council|Committee|"
             r"Ministry|Department|Office|Airlines?|Motors|Pharma|Labs?|Software|Media|Capital|Ventures)")
_ORG_WORD_RE = regex.compile(rf"\b{_ORG_WORD}\b\.?")
_ADDRESS_PLACE = regex.compile(
    r"(?i:\b(?:lives?\s+at|lived\s+at|living\s+at|address(?:\s+is)?:?|located\s+at|based\s+at|"
    r"(?:ship|shipped|deliver|delivered|send|sent|mail|mailed|post|posted)\s+(?:it\s+|this\s+|them\s+)?to))\s+"
    r"(?P<street>[^\n,;]{0,60}?\d[^\n,;]{0,60}?),\s*"
    r"(?P<place>[\p{L}\p{M}][\p{L}\p{M}'’-]*(?:[ ](?:[\p{L}\p{M}][\p{L}\p{M}'’-]*|\d{1,2})){0,3})"
    r"(?=\s*(?:$|[.,;!?)\n]))")
_PLACE_CUE = regex.compile(
    r"(?i:\b(?:in|near|from|across|around|outside|inside|visit|visited|visiting|to|at|of|toward|towards|via|"
    r"leave|left|reach|reached|capital|city))\s+$")


class PlaceRecognizer(OneEntityRecognizer):
    """LOCATION from the gazetteer and from the lines of a postal address.

    - A gazetteer name (`data/places.md`): 0.95 for countries, states and regions, 0.9 for cities; a name that
      is also a person's name or a word (marked `*`) only after a place cue ("in", "from", "to"...), 0.6.
    - In a block of address lines: a country line (a country name, optionally followed by a postal code)
      makes the line above it, when it reads like a locality (letters only, at most four words, no street or
      unit word), a place; so does a locality line followed by a postal code or a two-letter country code
      ("Aalborg NO 9100") right under a line with digits (street, unit). 0.88.
    - The last comma-separated part after a street with a number, introduced by "lives at", "address:",
      "ship to"... ("lives at 12 Rua Nova 3, Goiania"). 0.88.
    """

    ENTITY = "LOCATION"

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_language)
        self.places = gazetteer()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if self.ENTITY not in entities:
            return []
        out = self._gazetteer(text)
        if "\n" in text:
            out.extend(self._address_lines(text))
        if "," in text:
            for m in _ADDRESS_PLACE.finditer(text):
                start, end = m.span("place")
                value = m.group("place")
                if _UNIT_OR_STREET.search(value) or (value[0].islower() and any(c.isupper() for c in text)):
                    continue
                out.append(_result(self, self.ENTITY, (start, end), 0.88, "place after a street address"))
        return out

    def _gazetteer(self, text: str) -> list[RecognizerResult]:
        lowercase_text = not any(c.isupper() for c in text)
        tokens = [m.span() for m in _TOKEN.finditer(text)]
        out = []
        i = 0
        while i < len(tokens):
            start = tokens[i][0]
            if (not lowercase_text and not text[start].isupper()) or (
                    text[start:tokens[i][1]] not in self.places.first_words
                    and text[start:tokens[i][1]].rstrip(".") not in self.places.first_words):
                i += 1
                continue
            found = None
            for j in range(min(len(tokens), i + self.places.max_words) - 1, i - 1, -1):
                end = tokens[j][1]
                phrase = text[start:end]
                if "\n" in phrase:
                    continue
                phrase = " ".join(phrase.split())
                place = self.places.get(phrase, lowercase_text=lowercase_text)
                if place is None and phrase.endswith("."):
                    place = self.places.get(phrase[:-1], lowercase_text=lowercase_text)
                    end -= 1
                if place is not None:
                    found = (j, end, place)
                    break
            if found is None:
                i += 1
                continue
            j, end, place = found
            if place.ambiguous:
                if _PLACE_CUE.search(text, max(0, start - 20), start):
                    out.append(_result(self, self.ENTITY, (start, end), 0.6, "gazetteer place after a place cue",
                                       rule="gazetteer"))
            else:
                score = 0.9 if place.section == "cities" else 0.95
                out.append(_result(self, self.ENTITY, (start, end), score, f"gazetteer place ({place.section})",
                                   rule="gazetteer"))
            i = j + 1
        return out

    def _address_lines(self, text: str) -> list[RecognizerResult]:
        lines = []  # (start, end, content start, content end) of non-empty lines
        for m in _LINE.finditer(text):
            if not m.group().strip():
                continue
            bullet = _BULLET.match(m.group())
            cs = m.start() + (bullet.end() if bullet else 0)
            ce = m.end()
            while ce > cs and text[ce - 1].isspace():
                ce -= 1
            if ce > cs:
                lines.append((cs, ce))
        if len(lines) < 2:
            return []
        lowercase_text = not any(c.isupper() for c in text)
        out = []
        for k in range(1, len(lines)):
            cs, ce = lines[k]
            core_end, tail = self._split_tail(text, cs, ce)
            core = text[cs:core_end]
            place = self.places.get(" ".join(core.split()), lowercase_text=lowercase_text) if core else None
            if place is not None and place.section == "countries":
                if k >= 2 and len(lines) >= 3 and self._locality(text, *lines[k - 1]) is not None:
                    ps, pe = lines[k - 1]
                    loc_end = self._locality(text, ps, pe)
                    assert loc_end is not None
                    out.append(_result(self, self.ENTITY, (ps, loc_end), 0.88, "locality line above a country"))
                if place.ambiguous:
                    out.append(_result(self, self.ENTITY, (cs, core_end), 0.88, "country line of an address"))
                continue
            if tail and k >= 1 and any(ch.isdigit() for ch in text[lines[k - 1][0]:lines[k - 1][1]]):
                loc_end = self._locality(text, cs, ce)
                if loc_end is not None and any(ch.isdigit() or ch.isupper() or ch == "n" for ch in tail):
                    out.append(_result(self, self.ENTITY, (cs, loc_end), 0.85, "locality line with postal code"))
        return out

    @staticmethod
    def _split_tail(text: str, cs: int, ce: int) -> tuple[int, str]:
        """Where a line's postal code / country code / 'nan' tail starts, and the tail."""
        words = list(regex.finditer(r"\S+", text[cs:ce]))
        cut = len(words)
        while cut > 1 and _TAIL_TOKEN.match(words[cut - 1].group()):
            cut -= 1
        if cut == len(words):
            return ce, ""
        end = cs + words[cut - 1].end()
        return end, text[end:ce].strip()

    def _locality(self, text: str, cs: int, ce: int) -> int | None:
        """End of the locality part of an address line, or None when the line does not read like one."""
        end, _ = self._split_tail(text, cs, ce)
        core = text[cs:end].rstrip(",")
        end = cs + len(core)
        if not core or len(core.split()) > 4 or not _LOCALITY.match(core) or _UNIT_OR_STREET.search(core):
            return None
        if _ORG_WORD_RE.search(core) or not (core[0].isupper() or not any(c.isupper() for c in text)):
            return None
        return end


# --------------------------------------------------------------------------------------------------
# People: cues the NER model misses

_NAME_WORD = r"\p{Lu}[\p{L}\p{M}'’-]*[\p{L}\p{M}]"
_PARTICLE = r"(?:van|von|de|der|den|da|di|del|della|dos|das|du|la|le|bin|al|el|ibn|ter|ten|zu)"
_PERSON_NAME = (rf"{_NAME_WORD}(?:[ ](?:\p{{Lu}}\.?[ ])?(?:{_PARTICLE}[ ]){{0,2}}{_NAME_WORD}){{0,2}}")
_LOWER_WORD = r"\p{Ll}[\p{Ll}\p{M}'’-]*\p{Ll}"
_CONTACT_NAME = regex.compile(
    rf"^(?:{_NAME_WORD}|\p{{Lu}}\.?)(?:[ ]{{1,2}}(?:{_NAME_WORD}|\p{{Lu}}\.?|{_PARTICLE})){{1,4}}$")
_CONTACT_NAME_LOWER = regex.compile(rf"^{_LOWER_WORD}(?:[ ](?:{_LOWER_WORD}|\p{{Ll}}\.?)){{1,3}}$")
_ROLE_WORD = regex.compile(
    r"(?i)\b(?:team|support|service|services|department|dept|sales|office|desk|center|centre|help|helpdesk|customer|"
    r"customers|billing|accounts|admin|administrator|manager|director|engineer|officer|assistant|reception|"
    r"operations|marketing|finance|hr|legal|info|contact|hello|dear|regards|thanks|personal|profile|resume|cv)\b")
_LABEL = regex.compile(r"(?i)^(?:billing|shipping|mailing|postal|home|delivery)?\s*(?:address|name|to|attn|"
                       r"attention|contact|recipient|ship\s+to|bill\s+to)\s*:\s*")
_SENTENCE_START = r"(?:^|(?<=[.!?]\s{1,3})|(?<=\n\s{0,8}))"
_SUBJECT = regex.compile(
    rf"{_SENTENCE_START}(?P<name>{_PERSON_NAME})(?=\s+(?:lives|lived|had\s+given|has\s+given|gave|spent|works|"
    r"worked|said|says|told|asked|wrote|replied|is\s+from|was\s+from|moved|married|emailed|texted|called\s+me|"
    r"and\s+I\b|is\s+(?:a\s+)?(?:very|my|our|so)\b|was\s+(?:a\s+)?(?:very|my|our)\b))")
_SPEECH = regex.compile(
    rf"\b(?:said|says|asked|replied|answered|told|wrote|explained|added|shouted|whispered|according\s+to)\s+"
    rf"(?P<name>{_PERSON_NAME})(?:\s+to\s+(?P<other>{_PERSON_NAME}))?")
_SPEAKER = regex.compile(rf"(?m)^[ \t]*(?P<name>{_NAME_WORD}(?:[ ]{_NAME_WORD})?)[ \t]*:[ \t]*[\"“]")
_VOCATIVE = regex.compile(
    rf"{_SENTENCE_START}(?P<name>{_PERSON_NAME}),\s+(?=(?i:can|could|would|will|please|are|do|did|have|i|you|"
    r"thank|thanks|we|let|how|what|where|when|why|is|it|this)\b)")
_POSSESSIVE_NAME = regex.compile(rf"\b(?P<name>{_NAME_WORD}[ ]{_NAME_WORD})['’]s\b")
_DETERMINERS = frozenset({"The", "A", "An", "This", "That", "These", "Those", "My", "Your", "His", "Her", "Our",
                          "Their", "Its", "Some", "Any", "Every", "Each", "No"})
_NOT_A_NAME = frozenset({
    "The", "A", "An", "This", "That", "These", "Those", "It", "I", "We", "You", "He", "She", "They", "Not", "Sorry",
    "Thanks", "Thank", "Please", "Yes", "No", "Ok", "OK", "Okay", "There", "Here", "All", "Sure", "Just", "So",
    "Well", "Good", "Great", "Fine", "Happy", "Glad", "Going", "Hi", "Hello", "Hey", "Dear", "Sir", "Madam",
    "Also", "Now", "Then", "Anyway", "However", "Actually", "Honestly", "Maybe", "Perhaps", "Everyone", "Someone",
    "Nobody", "Somebody", "Everybody", "User", "Bot", "Assistant", "System", "Human", "AI", "Customer", "Agent",
    "Q", "Note", "Where", "When", "What", "Who", "Why", "How", "Which", "Phone", "Email", "E-mail", "Address",
    "Website", "Name", "My", "Your", "His", "Her", "Our", "Their", "Mr", "Mrs", "Ms", "Dr", "Today", "Tomorrow",
    "Yesterday", "Personal", "Info", "Subject", "Re", "Fwd", "Answer", "Question", "Response", "Reply", "Output",
    "Input", "Example", "Error", "Warning", "Update", "Summary", "Title", "Date", "Time", "Step", "Tip",
})


def _words(text: str) -> list[str]:
    return text.split()


# Words that open a sentence followed by a comma ("Perfect, can you ...") without being a name.
_INTERJECTIONS = frozenset(_words("""
absolutely afterwards agreed ah alright anyway awesome basically besides cheers cool correct definitely done
exactly excellent fine great hmm interesting later listen look nice nope noted oh ok okay otherwise perfect
quick right second seriously sure third understood wait well wow yeah yep
"""))
# First words of capitalised phrases with a possessive that are not names ("New Year's", "Black Friday's").
_NOT_NAME_ADJECTIVES = frozenset(_words("""
New Old Black White Good Great Big Little Saint St National International United Royal Christmas Easter
Valentine Halloween Mother Father Independence Labor Labour Memorial Thanksgiving
"""))


class PersonRecognizer(OneEntityRecognizer):
    """PERSON from cues the small NER model often misses; each span must look like a name (capitalised words,
    initials, particles such as "van der") and not start with a common word ("The", "Thanks", "User").

    - the name line of a contact block: the first line of a text of three or more lines, one of them with
      digits (an address or phone number), consisting of two to five name words (after a bullet or a label
      such as "Billing address:"), 0.88;
    - a speaker label before a quote (`Anna: "Who are you?"`), 0.9;
    - after a speech verb ("said Anna", "said Anna to Ben"), 0.9;
    - a sentence subject followed by a verb that takes a person ("Anna lives at", "Anna had given",
      "Anna is from"), 0.9;
    - a name addressed at the start of a sentence ("Anna, can I ..."), 0.88;
    - two name words with a possessive ("Anna Berg's"), 0.6.
    """

    ENTITY = "PERSON"

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if self.ENTITY not in entities:
            return []
        out: list[RecognizerResult] = []

        def add(span: tuple[int, int], score: float, why: str) -> None:
            start, end = span
            words = text[start:end].split(" ")
            if words[0] in _DETERMINERS:  # "wrote The Call of the Wild": a title, not a name
                return
            while words and words[0] in _NOT_A_NAME:
                start += len(words.pop(0)) + 1
            if words and not _ORG_WORD_RE.search(text, start, end):
                out.append(_result(self, self.ENTITY, (start, end), score, why))

        if "\n" in text:
            span = self._contact_name(text)
            if span:
                add(span, 0.88, "name line of a contact block")
        if ":" in text:
            for m in _SPEAKER.finditer(text):
                add(m.span("name"), 0.9, "speaker label")
        for m in _SPEECH.finditer(text):
            add(m.span("name"), 0.9, "after a speech verb")
            if m.group("other"):
                add(m.span("other"), 0.9, "after a speech verb")
        for m in _SUBJECT.finditer(text):
            add(m.span("name"), 0.9, "subject of a verb that takes a person")
        for m in _VOCATIVE.finditer(text):
            first = m.group("name").split(" ")[0]
            if first.lower() not in _INTERJECTIONS and first.lower() not in _OPENERS and not first.endswith("ly"):
                add(m.span("name"), 0.88, "addressed by name")
        for m in _POSSESSIVE_NAME.finditer(text):
            if m.group("name").split(" ")[0] not in _NOT_NAME_ADJECTIVES:
                add(m.span("name"), 0.6, "name with a possessive")
        return out

    @staticmethod
    def _contact_name(text: str) -> tuple[int, int] | None:
        lines = [m for m in _LINE.finditer(text) if m.group().strip()]
        if len(lines) < 3 or not any(ch.isdigit() for m in lines[1:] for ch in m.group()):
            return None
        first = lines[0]
        bullet = _BULLET.match(first.group())
        start = first.start() + (bullet.end() if bullet else 0)
        label = _LABEL.match(text, start, first.end())
        if label:
            start = label.end()
        end = first.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        value = text[start:end]
        lowercase_text = not any(c.isupper() for c in text)
        pattern = _CONTACT_NAME_LOWER if lowercase_text else _CONTACT_NAME
        if not pattern.match(value) or value.split(" ")[0] in _NOT_A_NAME or _ORG_WORD_RE.search(value):
            return None
        if _UNIT_OR_STREET.search(value) or _ROLE_WORD.search(value) or gazetteer().get(" ".join(value.split())):
            return None
        return start, end


# --------------------------------------------------------------------------------------------------


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
    if "PERSON" in ner:
        recognizers.append(PersonRecognizer(supported_language=language))
    if "LOCATION" in ner:
        recognizers.append(PlaceRecognizer(supported_language=language))
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


# --------------------------------------------------------------------------------------------------
# Which texts need the NER model

_WORD = regex.compile(r"[\p{L}\p{M}][\p{L}\p{M}'’-]*")
# Common words that open a sentence (or a line, or a quote) in chat messages: capitalised there, not names.
_OPENERS = frozenset(_words("""
a about actually after again all also although always am an and another any anyone anything are as at be
because been before being besides both bot but by can can't cannot could couldn't dear did didn't do does
doesn't don't during each either even every everyone everything excuse finally first for from further good
great had has hasn't have haven't he he's hello her here here's hers hey hi him his how however i if in
instead is isn't it it's its just kindly last let let's many may maybe me meanwhile might mine more most my
need neither never next no none nor not nothing now of often ok okay on once one only or other otherwise our
ours perhaps please quick quickly really she she's should shouldn't since so some someone something sometimes
soon sorry still such thank thanks that that's the their theirs them then there there's therefore these they
they're this those though thus to today tomorrow too unfortunately unless unlike until user usually very was
wasn't we we're well were weren't what what's whatever when whenever where where's whether which while who
who's whom whose why will with without won't would wouldn't yes yesterday yet you you're your yours
"""))
# Capitalised anywhere, and not names: the pronoun I, titles (the name after one is what counts), weekdays
# and months that are not also first names (dates are not personal data here).
_NEVER_NAMES = frozenset(_words("""
i i'm i'll i've i'd mr mrs ms miss dr prof sir madam monday tuesday wednesday thursday friday saturday sunday
january february march july september october november december
"""))


def needs_ner(text: str, explained: Sequence[tuple[int, int]] = ()) -> bool:
    """False when no word is left for the NER model to name: the text has capital letters, and each
    capitalised word is inside an `explained` span (what the rules found with confidence), a common word
    opening a sentence (or a line, or a quote), the pronoun I, a title, a weekday or month, or an acronym of up
    to four capitals that is not a place. A text without any capital letter still goes to the model, which
    finds some lower-case names."""
    if not any(c.isupper() for c in text):
        return True
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper():
            continue
        if any(s <= m.start() and m.end() <= e for s, e in explained):
            continue
        lower = word.lower()
        if lower in _NEVER_NAMES or (word.isupper() and len(word) <= 4 and gazetteer().get(word) is None):
            continue  # I, Mr, Monday; short all-caps words are acronyms ("ZIP", "IBAN", "ASAP")
        if lower not in _OPENERS:
            return True
        before = text[:m.start()].rstrip(" \t\"'“‘(")
        if before and before[-1] not in ".!?:\n":
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Tidying

_REGION_PREFIX = regex.compile(r"^(?:(?:the|southern|northern|eastern|western|central|south|north|east|west|"
                               r"greater|downtown|upper|lower)\s+)+", regex.IGNORECASE)
_POSSESSIVE = regex.compile(r"['’]s?$")
_PLACE_PARTICLE_TAIL = regex.compile(r"[ ](?:de|del|de la|da|do|dos|das|di|della|la|le|les|sur|am|im|upon)[ -]"
                                     r"\p{Lu}[\p{L}\p{M}'’-]+")
_NAME_TOKEN = regex.compile(r"\p{Lu}[\p{L}'’-]{2,}")
_TRAILING_UNIT = regex.compile(r"(?:\s+(?:Apt|Apartment|Suite|Unit|Box|Room|Floor)\.?)+$", regex.IGNORECASE)
_ORG_AFTER = regex.compile(r"^\s*(?:,\s*)?(?:(?:Inc|Ltd|LLC|LLP|PLC|GmbH|AG|Corp|Corporation|Company|Co|Group|"
                           r"Holdings|Partners|Associates|Orchestra|Band)\b|and\s+(?:Sons|Brothers|Daughters|"
                           r"Partners|Associates|Co)\b|&\s*\p{Lu})")
_EMPLOYER_BEFORE = regex.compile(r"(?i:\b(?:work|works|worked|working|employed|job|intern|interned|internship)"
                                 r"\s+(?:for|at|by|with)\s+)$")
_FIRM_LIST = regex.compile(rf"\b{_NAME_WORD}(?:,\s+{_NAME_WORD})+,?\s+(?:and|&)\s+{_NAME_WORD}\b")
_FIRM_CUE_BEFORE = regex.compile(r"(?i:\b(?:at|for|from|of|with|by|joined|the)\s+)$")


def refine(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Tidy NER spans and settle conflicts with the rules:

    - drop a leading "Southern"/"the" from places (unless the whole is a gazetteer name: "South Africa"), a
      trailing possessive, and a trailing "Suite"/"Apt" from names; extend a place over a particle and the
      word after it ("Reguengos de Monsaraz", "Frankfurt am Main");
    - drop names and places that are part of an organisation's name: followed by an organisation word
      ("... Orchestra", "... Inc", "... and Sons"), named as an employer ("works for X"), or a list of
      surnames after a preposition ("at Jones, Smith and Davis");
    - a gazetteer place inside a longer NER person ("Jack London") gives way to the person;
    - mark later mentions of a detected person's name (a first name used again alone) as PERSON too; a
      NER place with exactly that text becomes a person when a rule (not the model) found the name.
    """
    firms = [m.span() for m in _FIRM_LIST.finditer(text)
             if _FIRM_CUE_BEFORE.search(text, max(0, m.start() - 12), m.start())
             or _ORG_AFTER.match(text, m.end(), min(len(text), m.end() + 30))]
    ner_persons = [(r.start, r.end) for r in results if r.entity_type == "PERSON" and _source(r) == _SPACY]
    out = []
    for r in results:
        if r.entity_type in ("PERSON", "LOCATION"):
            value = text[r.start:r.end]
            if r.entity_type == "LOCATION":
                m = _REGION_PREFIX.match(value)
                if m and m.end() < len(value) and gazetteer().get(" ".join(value.split())) is None:
                    r.start += m.end()
                m4 = _PLACE_PARTICLE_TAIL.match(text, r.end)
                if m4:
                    r.end = m4.end()
            m2 = _POSSESSIVE.search(text[r.start:r.end])
            if m2 and m2.start() > 0:
                r.end = r.start + m2.start()
            if r.entity_type == "PERSON":
                m3 = _TRAILING_UNIT.search(text, r.start, r.end)
                if m3 and m3.start() > r.start:
                    r.end = m3.start()
            org = _ORG_AFTER.match(text, r.end, min(len(text), r.end + 30)) or _ORG_WORD_RE.search(text, r.start, r.end)
            if org and (_source(r) == _SPACY or r.score < 0.9):
                continue
            if _EMPLOYER_BEFORE.search(text, max(0, r.start - 30), r.start):
                continue
            if any(s <= r.start and r.end <= e for s, e in firms):
                continue
            if (_rule(r) == "gazetteer"
                    and any(s <= r.start and r.end <= e and (s, e) != (r.start, r.end) for s, e in ner_persons)):
                continue
        out.append(r)
    rule_names = {tok for r in out if r.entity_type == "PERSON" and _source(r) != _SPACY
                  for tok in _NAME_TOKEN.findall(text[r.start:r.end])}
    names = {tok for r in out if r.entity_type == "PERSON" for tok in _NAME_TOKEN.findall(text[r.start:r.end])}
    names -= {"The", "And", "Van", "Von", "Der", "Den", "Del", "Della"}
    for name in sorted(names, key=len, reverse=True):
        for start, end in _whole_words(text, name):
            clash = [r for r in out if not (end <= r.start or start >= r.end)]
            if any(s <= start and end <= e for s, e in firms) or _EMPLOYER_BEFORE.search(text, max(0, start - 30),
                                                                                           start):
                continue
            if not clash:
                out.append(RecognizerResult("PERSON", start, end, 0.7))
            elif (name in rule_names and len(clash) == 1 and clash[0].entity_type == "LOCATION"
                  and _source(clash[0]) == _SPACY and (clash[0].start, clash[0].end) == (start, end)):
                clash[0].entity_type = "PERSON"
    return out


def _whole_words(text: str, word: str) -> Iterator[tuple[int, int]]:
    """Occurrences of `word` not inside a longer word (as a regex `\\bword\\b` would find them)."""
    i = text.find(word)
    while i != -1:
        j = i + len(word)
        if (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and (
                j == len(text) or not (text[j].isalnum() or text[j] == "_")):
            yield i, j
        i = text.find(word, i + 1)


def resolve_overlaps(results: list[RecognizerResult], text: str | None = None) -> list[RecognizerResult]:
    """Keep the best of overlapping results: higher score first, then longer span.

    A card number (always Luhn-valid, see `CardNumberRecognizer`) beats a phone number over the same digits,
    whatever their scores, unless `text` is given and has phone words but no card words near the digits.
    """
    cards = [r for r in results if r.entity_type == "CREDIT_CARD"]
    if cards and any(r.entity_type == "PHONE_NUMBER" for r in results):
        dropped = set()
        for card in cards:
            if text is not None and (PhoneNumberRecognizer.CONTEXT.near(text, card.start, card.end)
                                     and not CardNumberRecognizer.CONTEXT.near(text, card.start, card.end)):
                continue
            dropped |= {id(r) for r in results if r.entity_type == "PHONE_NUMBER"
                        and not (r.end <= card.start or r.start >= card.end)}
        results = [r for r in results if id(r) not in dropped]
    kept: list[RecognizerResult] = []
    for r in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


# A rule result at least this confident explains its words: the NER model need not look at them.
_EXPLAINS = 0.85

# What a text must contain for a recognizer of these entities to find anything: recognizers whose entities all
# have a precondition are skipped on texts without it (most chat messages have no digit and no "@").
_DIGIT = regex.compile(r"\d")
_PRECONDITIONS: dict[str, regex.Pattern[str]] = {
    "EMAIL_ADDRESS": regex.compile("@"),
    "IP_ADDRESS": regex.compile(r"\d|::"),
    **{e: _DIGIT for e in ("CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "US_BANK_NUMBER", "US_ITIN",
                           "UK_NHS", "US_PASSPORT", "MEDICAL_LICENSE")},
}


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
    ) -> None:
        if not ner.is_loaded():
            ner.load()
        self.ner = ner
        self.entities = list(dict.fromkeys(entities))
        self.language = language
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.skip_ner = skip_ner
        self.with_ner = any(e in NER_ENTITIES for e in self.entities)
        self.ner_config = ner.configure_labels(self.entities)
        self.recognizers = build_recognizers(self.entities, language=language, phone_regions=phone_regions)
        self.context_enhancement = context_enhancement
        registry = RecognizerRegistry(supported_languages=[language])
        for recognizer in self.recognizers:
            registry.add_recognizer(recognizer)
        enhancer: ContextAwareEnhancer = LemmaContextAwareEnhancer() if context_enhancement else _NoContextEnhancement()
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=ner, supported_languages=[language],
                                       context_aware_enhancer=enhancer)
        self._rule_recognizers = [(r, _precondition(r)) for r in self.recognizers if not isinstance(r, SpacyRecognizer)]
        self._ner_entities = {e for e in self.entities if e in NER_ENTITIES}

    def _rules(self, text: str) -> list[RecognizerResult]:
        """Every recognizer but the NER model, once; results at or above the threshold."""
        results: list[RecognizerResult] = []
        for recognizer, needed in self._rule_recognizers:
            if needed is None or needed.search(text):
                results.extend(recognizer.analyze(text, self.entities, None))  # type: ignore[arg-type]
        threshold = self.score_threshold
        return [r for r in results if r.score >= threshold and r.score > 0]

    def _ner_results(self, doc: Any) -> list[RecognizerResult]:
        results = []
        ents, scores = self.ner.entities(doc, self.ner_config)
        for ent, score in zip(ents, scores, strict=True):
            if ent.label_ in self._ner_entities and score >= self.score_threshold:
                results.append(RecognizerResult(ent.label_, ent.start_char, ent.end_char, score,
                                                recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: _SPACY}))
        return results

    def _finish(self, text: str, results: list[RecognizerResult]) -> list[Hit]:
        if self.with_ner:
            results = refine(text, results)
        return [Hit(Detector.PII, r.entity_type, r.start, r.end, round(min(1.0, max(0.0, r.score)), 4))
                for r in resolve_overlaps(results, text)]

    def detect_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        if not self.entities:
            return [[] for _ in texts]
        if self.context_enhancement:  # presidio's own analysis, with its lemma context enhancer
            docs = self.ner.docs(texts, with_ner=self.with_ner, batch_size=self.batch_size)
            return [self._finish(text, self.analyzer.analyze(
                text=text, language=self.language, entities=self.entities,
                nlp_artifacts=self.ner.artifacts(doc, self.ner_config), score_threshold=self.score_threshold))
                for text, doc in zip(texts, docs, strict=True)]
        rules = [self._rules(t) for t in texts]
        if not self.with_ner:
            return [self._finish(t, r) for t, r in zip(texts, rules, strict=True)]
        if self.skip_ner:
            flags = [needs_ner(t, [(r.start, r.end) for r in rs if r.score >= _EXPLAINS])
                     for t, rs in zip(texts, rules, strict=True)]
        else:
            flags = [True] * len(texts)
        wanted = [t for t, f in zip(texts, flags, strict=True) if f]
        docs = iter(self.ner.docs(wanted, with_ner=True, batch_size=self.batch_size)) if wanted else iter(())
        self.ner.calls += len(texts) - len(wanted)  # texts that skipped the model count as seen
        out = []
        for text, flag, found in zip(texts, flags, rules, strict=True):
            results = (self._ner_results(next(docs)) + found) if flag else found
            out.append(self._finish(text, results))
        return out

    def detect(self, text: str) -> list[Hit]:
        return self.detect_many([text])[0]
