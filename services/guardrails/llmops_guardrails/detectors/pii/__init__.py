"""PII detection with presidio-analyzer, made fast for LLM traffic.

What differs from a default `AnalyzerEngine`:
- the spaCy model is an installed package (or a model directory) named in settings, loaded once and shared;
  only the components NER needs stay enabled (no tagger, parser, lemmatizer), and when a policy needs no NER
  entity at all only the tokenizer runs (`pipeline`);
- the NER model reads only windows around words it could name (a capitalised word that the rules have not
  explained and that is not a sentence's plain first word, or a known first name, surname or place; first
  names and surnames come from the installed Faker package, `names`), the windows of a batch through
  `nlp.pipe` together; a text without any such word skips the model: the rules below still run on it
  (`ner_gate`);
- only the recognizers for the policy's entities are registered (`recognizers`). Cards (`CardNumberRecognizer`:
  Luhn and issuer prefixes, 12-digit Maestro included), phone numbers (validated for the configured regions) and
  names introduced by context use the recognizers of `patterns`, which find more than presidio's defaults and
  run faster than its phonenumbers matcher; places come from a gazetteer (`data/places.md`) and from the
  structure of postal addresses (`places.PlaceRecognizer`, with GeoNames' towns after a place cue or before a
  country, `data/towns.txt`), people also from cues such as speech verbs, speaker labels and the name line of a
  contact block (`people.PersonRecognizer`) and from name lists and name shapes: a known first name and a
  surname, a middle initial, capitalised runs (`people.KnownNameRecognizer`);
- recognizers are called directly, once per text, unless the policy turns presidio's lemma-based context
  enhancer on (then `AnalyzerEngine.analyze` runs, as before): the enhancer costs about a fifth of the time
  and did not improve F2 on the development split (`detector`);
- email domains are checked against tldextract's bundled suffix list, never fetched.

Scores are presidio's confidences (already in [0, 1]): NER entities 0.85, patterns their pattern's
score, raised to 1.0 by a passing validator (email domain, IBAN checksum); see `patterns`, `places` and
`people` for cards, phones, places and names. `refinement.refine` then tidies NER spans and settles conflicts
between the model and the rules (see its docstring); `refinement.resolve_overlaps` keeps one result per span.

Modules: `pipeline` (the NER pipeline), `patterns` (cards, phones, names and places after a cue), `places`,
`people`, `lexicon` (word lists they share), `numbers` (the card and phone numbers' matching), `results` (`Span`,
the detector's own result record, and building and reading presidio results),
`recognizers` (set-up per policy), `ner_gate` (the NER windows), `names` (known names), `refinement`,
`detector` (`PiiDetector`), `tagger` (a learned name and place tagger that can replace the NER model:
`PiiDetector(names="tagger")`, setting `name_model`; the default since issue 17, see docs/guardrails.md).
"""

from __future__ import annotations

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.pipeline import NER_ENTITIES, NerPipeline
from llmops_guardrails.detectors.pii.recognizers import build_recognizers

__all__ = ["NER_ENTITIES", "NerPipeline", "PiiDetector", "build_recognizers"]
