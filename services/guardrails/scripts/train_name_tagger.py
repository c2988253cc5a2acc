"""Trains the learned name and place tagger (`detectors/pii/tagger.py`) and writes the file the package ships;
with `--cv`, compares it with spaCy's NER by template-grouped cross-validation on the dev split.

    .venv/bin/python services/guardrails/scripts/train_name_tagger.py [--out PATH] [--check]
    .venv/bin/python services/guardrails/scripts/train_name_tagger.py --cv [--folds 5] [--grid]

Data: presidio-research's synthetic PII set (`../shared/data/pii/synth_dataset_v2.json`, or `--pii-data`), the
`dev` split only (`pii_eval.assign_splits`; the `test` split is never read here), plus `--synthetic N` sentences
generated from Faker's names, cities and companies in frames written for this project (`synthetic_samples`;
sources in `data/README.md`). A training example is a candidate word of `tagger.candidates`, labelled PERSON or
LOCATION (GPE) when it lies inside a gold span of that type, else O; words inside a gold street address are left
out (the evaluation does not score places there).

Model: multinomial logistic regression on the features of `tagger.features` seen at least MIN_COUNT times,
L2-regularised, fitted by full-batch Adam in numpy and scipy.sparse (deterministic: fixed order, zero start).

`--cv`: the dev split's templates are dealt to `--folds` folds (by the same hash as the dev/test split), and for
each fold a tagger is trained on the other folds (and the synthetic sentences) and the default policy's PII
detector is scored on the fold's samples with each way of finding names (`detector.NAME_MODELS`): spaCy's NER
(today), none, the tagger alone, the tagger with the NER model on the words it is not sure of. Counts are summed
over the folds; the NER model's share of the characters it was given is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmops_guardrails.data import pii_handwritten8
from llmops_guardrails.detectors.pii import NerPipeline, PiiDetector
from llmops_guardrails.detectors.pii import tagger as tg
from llmops_guardrails.detectors.pii.detector import NAME_MODELS
from llmops_guardrails.detectors.pii.results import rule_of, source_of
from llmops_guardrails.pii_eval import Counts, Report, Sample, assign_splits, evaluate, load_samples
from llmops_guardrails.policy import default_policy
from llmops_guardrails.quality import predictor, scored_entities
from llmops_guardrails.settings import GuardrailsSettings

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PII_DATA = ROOT.parent / "shared/data/pii/synth_dataset_v2.json"
MODEL_PATH = ROOT / "services/guardrails/llmops_guardrails" / tg.MODEL_FILE
MIN_COUNT = 2
L2 = 3e-4
STEPS = 300
SYNTHETIC = 0
EVIDENCE = True
HANDWRITTEN = True
LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_BR", "pt_PT", "nl_NL",
           "pl_PL", "sv_SE", "fi_FI", "da_DK", "no_NO", "cs_CZ", "tr_TR", "ro_RO", "hu_HU", "hr_HR", "id_ID")
LABEL_OF = {"PERSON": "PERSON", "LOCATION": "LOCATION", "GPE": "LOCATION"}

# Frames for the synthetic sentences: {P} a person, {F} a first name, {L} a city, {C} a country, {O} a company.
FRAMES = (
    "My name is {P} and I live in {L}.", "Please send the contract to {P} in {L}, {C}.",
    "{P} moved from {L} to {C} last year.", "Dear {F}, thanks for the update on the {O} account.",
    "Hi {F}, can you call {P} tomorrow?", "I met {P} at the {O} office in {L}.",
    "{P} works for {O} and travels to {L} every month.", "Contact: {P}\n{L}\n{C}",
    "The invoice from {O} was approved by {P}.", "Is {F} coming to {L} next week?",
    "We shipped the order to {L} yesterday; {F} signed for it.", "{P} said the meeting in {L} went well.",
    "According to {P}, {O} will open a branch in {C}.", "Regards,\n{P}\n{O}",
    "Flight from {L} to {L2} booked for {P}.", "{F} and {F2} are visiting {C} in June.",
    "Ask {P} about the {O} report.", "Our customer {P} from {L} reported the issue.",
    "The Quarterly Report for {O} is attached.", "Thanks {F}! The Release Notes are on the Wiki.",
    "{O} announced a new Product Manager role in {L}.", "Weather in {L} is sunny, says {P}.",
    "I grew up near {L} but now I'm based in {C}.", "Patient {P}, born in {L}, was admitted.",
    "Reviewer: {P} ({O})", "Send it to my colleague {F} {Last} please.",
    "The Customer Success Team at {O} will reply.", "Meet me at the Central Station in {L} at noon.",
)


SYNTHETIC_FILE = Path(__file__).with_name("name_tagger_synthetic.jsonl")
SYNTHETIC_SNAPSHOT = 2000  # sentences in SYNTHETIC_FILE


def synthetic_samples(n: int) -> list[Sample]:
    """The first `n` synthetic sentences of the snapshot (`SYNTHETIC_FILE`, written by `generate_synthetic`)."""
    out = []
    with SYNTHETIC_FILE.open(encoding="utf-8") as f:
        for k, line in zip(range(n), f, strict=False):
            row = json.loads(line)
            out.append(Sample(row["text"], tuple((a, b, c) for a, b, c in row["spans"]), -1 - k))
    return out


def generate_synthetic(n: int, seed: int = 7) -> list[Sample]:
    """`n` sentences from FRAMES filled with Faker's names, cities, countries and companies (several locales).
    Faker's choices depend on the interpreter's string hashing too: the snapshot was written with
    PYTHONHASHSEED=0."""
    from faker import Faker

    fakers = [Faker(locale) for locale in LOCALES]
    for i, f in enumerate(fakers):
        f.seed_instance(seed + i)
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        fake = fakers[k % len(fakers)]
        frame = rnd.choice(FRAMES)
        spans: list[tuple[str, int, int]] = []
        text = ""
        pos = 0
        while True:
            i = frame.find("{", pos)
            if i < 0:
                text += frame[pos:]
                break
            j = frame.index("}", i)
            text += frame[pos:i]
            slot = frame[i + 1:j]
            if slot in ("P",):
                value, kind = f"{fake.first_name()} {fake.last_name()}", "PERSON"
            elif slot in ("F", "F2"):
                value, kind = fake.first_name(), "PERSON"
            elif slot == "Last":
                value, kind = fake.last_name(), "PERSON"
            elif slot in ("L", "L2"):
                value, kind = fake.city(), "LOCATION"
            elif slot == "C":
                value, kind = fake.country(), "LOCATION"
            else:
                value, kind = fake.company(), "ORGANIZATION"
            spans.append((kind, len(text), len(text) + len(value)))
            text += value
            pos = j + 1
        if k % 10 == 9:  # the data set lower-cases some texts; so do we, one in ten
            text = text.lower()
        out.append(Sample(text, tuple(spans), -1 - k))
    return out


def handwritten_samples() -> list[Sample]:
    """The labelled set of names and places in varied contexts (`data/pii_handwritten8.py`); a sample's
    template id is -100,000 - its frame number."""
    return [Sample(text, tuple(spans), -100_000 - frame) for text, spans, frame in pii_handwritten8.samples()]


def handwritten_batches() -> list[list[Sample]]:
    """`handwritten_samples` dealt to `pii_handwritten8.BATCHES` batches, whole frames per batch."""
    out: list[list[Sample]] = [[] for _ in range(pii_handwritten8.BATCHES)]
    for s in handwritten_samples():
        out[pii_handwritten8.batch_of(-100_000 - s.template_id)].append(s)
    return out


_RULES: list[PiiDetector] = []
_EVIDENCE: dict[str, list[tg.Evidence]] = {}


def rule_evidence(text: str) -> list[tg.Evidence]:
    """What the default policy's rule recognizers find in `text` (as the detector hands it to the tagger)."""
    if text not in _EVIDENCE:
        if not _RULES:
            _RULES.append(_detector(NerPipeline(GuardrailsSettings().spacy_model), "off", None))
        _EVIDENCE[text] = [(r.entity_type, r.start, r.end, r.score, rule_of(r) or source_of(r))
                           for r in _RULES[0]._rules(text)]
    return _EVIDENCE[text]


def examples(samples: Sequence[Sample], *, evidence: bool = EVIDENCE) -> tuple[list[list[str]], list[int]]:
    """Candidates' features and labels (index into `tagger.LABELS`)."""
    lex = tg.lexicon()
    feats: list[list[str]] = []
    labels: list[int] = []
    for s in samples:
        spans, cand, fs = tg.text_features(s.text, lex, rule_evidence(s.text) if evidence else None)
        gold = [(LABEL_OF.get(k, k), a, b) for k, a, b in s.spans]
        for i, f in zip(cand, fs, strict=True):
            a, b = spans[i]
            over = [k for k, gs, ge in gold if gs < b and a < ge]
            if "STREET_ADDRESS" in over:
                continue
            kind = next((k for k in over if k in ("PERSON", "LOCATION")), "O")
            feats.append(f)
            labels.append(tg.LABELS.index(kind))
    return feats, labels


def fit(feats: list[list[str]], labels: list[int], *, l2: float = L2, steps: int = STEPS,
        min_count: int = MIN_COUNT) -> tg.NameTagger:
    counts = Counter(f for fs in feats for f in set(fs))
    vocab_list = sorted(f for f, c in counts.items() if c >= min_count)
    vocab = {f: i for i, f in enumerate(vocab_list)}
    rows, cols = [], []
    for r, fs in enumerate(feats):
        for j in sorted({vocab[f] for f in fs if f in vocab}):
            rows.append(r)
            cols.append(j)
    n, d, k = len(feats), len(vocab_list), len(tg.LABELS)
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, d))
    y = np.zeros((n, k))
    y[np.arange(n), labels] = 1.0
    w = np.zeros((d, k))
    b = np.zeros(k)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    lr, beta1, beta2, eps = 0.1, 0.9, 0.999, 1e-8
    xt = x.T.tocsr()
    for t in range(1, steps + 1):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / n
        gw = xt @ g + l2 * w
        gb = g.sum(axis=0)
        for param, grad, first, second in ((w, gw, m_w, v_w), (b, gb, m_b, v_b)):
            np.multiply(first, beta1, out=first)
            np.add(first, (1 - beta1) * grad, out=first)
            np.multiply(second, beta2, out=second)
            np.add(second, (1 - beta2) * grad * grad, out=second)
            np.subtract(param, lr * (first / (1 - beta1**t)) / (np.sqrt(second / (1 - beta2**t)) + eps), out=param)
    weights = np.vstack([w, b]).astype(np.float32)
    return tg.NameTagger(vocab, weights, {"examples": n})


def train(samples: Sequence[Sample], *, synthetic: int = SYNTHETIC, l2: float = L2, evidence: bool = EVIDENCE,
          extra: Sequence[Sample] = ()) -> tg.NameTagger:
    feats, labels = examples(list(samples) + list(extra) + synthetic_samples(synthetic), evidence=evidence)
    tagger = fit(feats, labels, l2=l2)
    tagger.meta["evidence"] = evidence
    return tagger


def dev_samples(path: Path) -> list[Sample]:
    samples = load_samples(path)
    splits = assign_splits(samples)
    return [s for s in samples if splits[s.template_id] == "dev"]


def folds_of(samples: Sequence[Sample], k: int, salt: str = "") -> list[list[Sample]]:
    """Whole templates per fold, dealt in the order of the split's template hash (or of another, with `salt`)."""
    templates = sorted({s.template_id for s in samples},
                       key=lambda t: hashlib.sha256(f"llmops-pii-split:{salt}{t}".encode()).digest())
    fold_of = {t: i % k for i, t in enumerate(templates)}
    return [[s for s in samples if fold_of[s.template_id] == i] for i in range(k)]


def _add(total: Report, report: Report) -> None:
    for e, c in report.per_entity.items():
        t = total.per_entity.setdefault(e, Counts())
        t.tp += c.tp
        t.fp += c.fp
        t.fn += c.fn


def _detector(ner: NerPipeline, names: str, tagger: tg.NameTagger | None, **kw: Any) -> PiiDetector:
    pii = default_policy().detectors.pii
    return PiiDetector(ner, entities=pii.entities, language=pii.language, score_threshold=pii.score_threshold,
                       phone_regions=pii.phone_regions, context_enhancement=pii.context_enhancement, names=names,
                       tagger=tagger, **kw)


def _row(total: Report, entities: Sequence[str]) -> dict[str, Any]:
    o = total.overall(entities)
    return {"F2": round(o.f(), 4), "P": round(o.precision(), 4), "R": round(o.recall(), 4),
            "PERSON": round(total.per_entity["PERSON"].f(), 4),
            "LOCATION": round(total.per_entity["LOCATION"].f(), 4), "counts": [o.tp, o.fp, o.fn]}


def cross_validate(samples: Sequence[Sample], k: int, configs: Sequence[dict[str, Any]],
                   ner: NerPipeline, salt: str = "", *, hand: Sequence[Sequence[Sample]] = (),
                   ) -> list[dict[str, Any]]:
    """Template-grouped CV: fold i holds dev's fold i and, with `hand` (k batches of the handwritten set), batch
    i; a tagger is trained on the other dev folds (and, when a configuration says `"hand": true`, on the other
    batches), and the two held-out parts are scored apart ("dev", "hand") and together."""
    entities = scored_entities(samples)
    folds = folds_of(samples, k, salt)
    out = []
    for given in configs:
        config = dict(given)
        names = config.pop("names")
        synthetic = config.pop("synthetic", SYNTHETIC)
        l2 = config.pop("l2", L2)
        evidence = config.pop("evidence", EVIDENCE)
        use_hand = config.pop("hand", HANDWRITTEN)
        totals = {part: Report(per_entity={e: Counts() for e in entities}) for part in ("dev", "hand", "all")}
        chars = ner_chars = 0
        started = time.process_time()
        for i, held in enumerate(folds):
            tagger = None
            if names.startswith("tagger"):
                extra = [s for j, f in enumerate(hand) if j != i for s in f] if use_hand else []
                tagger = train([s for j, f in enumerate(folds) if j != i for s in f], synthetic=synthetic, l2=l2,
                               evidence=evidence, extra=extra)
            detector = _detector(ner, names, tagger, **config)
            c0, n0 = ner.chars, ner.ner_chars
            for part, chosen in (("dev", held), ("hand", hand[i] if hand else [])):
                if chosen:
                    report = evaluate(chosen, predictor(detector), entities)
                    _add(totals[part], report)
                    _add(totals["all"], report)
            chars += ner.chars - c0
            ner_chars += ner.ner_chars - n0
        row = {"salt": salt, "names": names, "synthetic": synthetic, "l2": l2, "evidence": evidence,
               "hand": use_hand, **config, **_row(totals["dev"], entities)}
        if hand:
            row["hand_set"] = _row(totals["hand"], entities)
            row["F2_all"] = _row(totals["all"], entities)["F2"]
        row.update(ner_share=round(ner_chars / max(1, chars), 3), cpu_s=round(time.process_time() - started, 1))
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pii-data", type=Path, default=DEFAULT_PII_DATA)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--check", action="store_true", help="retrain and fail if the shipped file differs")
    ap.add_argument("--synthetic-snapshot", action="store_true",
                    help=f"write {SYNTHETIC_FILE.name} from Faker (run with PYTHONHASHSEED=0) and stop")
    ap.add_argument("--cv", action="store_true", help="cross-validate on the dev split instead of training")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fold-salt", default="", help="deal the folds by another hash (noise of the CV figures)")
    ap.add_argument("--configs", default="", help="JSON list of configurations for --cv (default: the four ways)")
    ap.add_argument("--with-handwritten", action="store_true",
                    help="--cv: hold out a batch of the handwritten set with each fold (data/pii_handwritten8.py)")
    ap.add_argument("--score-handwritten", action="store_true",
                    help="score each way of finding names, with the shipped tagger, on the whole handwritten set")
    args = ap.parse_args(argv)
    if args.synthetic_snapshot:
        rows = [json.dumps({"text": s.text, "spans": [list(x) for x in s.spans]}, ensure_ascii=False)
                for s in generate_synthetic(SYNTHETIC_SNAPSHOT)]
        SYNTHETIC_FILE.write_text("\n".join(rows) + "\n", encoding="utf-8")
        print(f"wrote {SYNTHETIC_FILE}: {len(rows)} sentences")
        return 0
    samples = dev_samples(args.pii_data)
    if args.cv:
        configs = json.loads(args.configs) if args.configs else [
            {"names": n} for n in NAME_MODELS]
        ner = NerPipeline(GuardrailsSettings().spacy_model)
        ner.load()
        hand_batches = handwritten_batches() if args.with_handwritten else []
        if hand_batches and len(hand_batches) != args.folds:
            ap.error(f"--with-handwritten needs --folds {len(hand_batches)}")
        cross_validate(samples, args.folds, configs, ner, args.fold_salt, hand=hand_batches)
        return 0
    if args.score_handwritten:
        ner = NerPipeline(GuardrailsSettings().spacy_model)
        chosen = handwritten_samples()
        entities = scored_entities(chosen)
        for names in NAME_MODELS:
            report = evaluate(chosen, predictor(_detector(ner, names, None)), entities)
            print(json.dumps({"names": names, **_row(report, entities)}), flush=True)
        return 0
    hand = handwritten_samples() if HANDWRITTEN else []
    tagger = train(samples, extra=hand)
    meta = {"trained_on": "dev split of synth_dataset_v2.json" + (" + pii_handwritten8" if hand else ""),
            "samples": len(samples), "handwritten": len(hand), "synthetic": SYNTHETIC, "evidence": EVIDENCE, "l2": L2,
            "steps": STEPS, "min_count": MIN_COUNT,
            "data_sha256": hashlib.sha256(args.pii_data.read_bytes()).hexdigest()}
    vocab = sorted(tagger.vocab, key=tagger.vocab.__getitem__)
    blob = tg.dump(vocab, tagger.weights, meta)
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == blob
        print("shipped model is up to date" if same else f"{args.out} differs from a fresh training run")
        return 0 if same else 1
    args.out.write_bytes(blob)
    print(f"wrote {args.out}: {len(vocab)} features, {len(blob):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
