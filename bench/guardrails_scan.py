"""Guardrails PII scan throughput against naive presidio, in one run.

    .venv/bin/python bench/guardrails_scan.py [--texts 1500] [--events 400] [--rounds 2] [--model NAME_OR_PATH]

Baseline ("naive presidio"): `AnalyzerEngine(nlp_engine=<same installed spaCy model>)` with its default
recognizers and context enhancer, `analyze(text, language="en")` once per text (email domains checked
offline, as in the service). Contender: the guardrails engine (`PolicyEngine.hits_for`) with a policy
whose only rule is the default PII redaction (same entities as the default policy), a cold cache at the
start of each round, batches of 100 texts.

1. Corpus: the texts of presidio-research's synthetic PII set (`../shared/data/pii/synth_dataset_v2.json`),
   each scanned once. Reports texts/s and recall (same matching as `llmops_guardrails.quality`) on all texts
   and on the held-out test split alone (the development split was used to tune the detector's rules), and
   how many texts the engine sent through the NER model.
2. Realistic mix: events of three messages: one of 4 system prompts (about 1 KB each), a user message
   (a text of the same corpus), and a short completion. Both scan every message of every event;
   the engine in batches of 25 events (as the stream worker does). Reports events/s and recall on the
   user messages.
3. Distinct ~1 KB events: every message distinct, name-dense: a user message of consecutive corpus texts
   joined to at least 700 characters and a completion of the next ones joined to at least 300 (the corpus
   is all personal data: the hard case for the NER model). Reports events/s, the engine with the PII-only
   policy and with the full default policy, and the share of characters the NER model read.
Rounds alternate baseline and contender; medians are reported. Both run single-threaded in this process, on the
same spaCy model (`--model`, default `LLMOPS_GUARDRAILS_SPACY_MODEL`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "guardrails"))

from llmops_guardrails.engine import PolicyEngine  # noqa: E402
from llmops_guardrails.offline import patch_presidio_email_recognizer  # noqa: E402
from llmops_guardrails.pii_eval import Sample, assign_splits, evaluate, load_samples  # noqa: E402
from llmops_guardrails.policy import Policy, load_policy  # noqa: E402
from llmops_guardrails.settings import GuardrailsSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pii" / "synth_dataset_v2.json"

SYSTEM_PROMPTS = [
    "You are the customer-support assistant of Northwind Bank. Answer questions about accounts, cards, "
    "transfers and fees. Be concise and polite. Never ask for a full card number, PIN or password; if a "
    "customer shares one, tell them to stop and that an agent will contact them. Do not give investment "
    "advice. If the customer is upset, apologise once and offer to open a ticket. Escalate fraud reports "
    "to the fraud team by replying with the tag [FRAUD]. Office hours are 8:00 to 20:00 CET on weekdays. "
    "Refer to the fee schedule at the end of this message when asked about costs. Fee schedule: domestic "
    "transfers free; international transfers 0.5% (minimum 5 EUR); card replacement 10 EUR; cash "
    "withdrawals abroad 2 EUR each. Always answer in the language of the customer.",
    "You are a travel-booking assistant for Skyline Tours. Help users find flights, hotels and rental cars. "
    "Ask for travel dates, the number of travellers and the budget before searching. Present at most three "
    "options, each with price, duration and cancellation policy. Never book without an explicit "
    "confirmation. Do not store passport numbers in the conversation; direct users to the secure form. "
    "Mention travel insurance once per conversation. If a destination has a government travel warning, "
    "say so plainly. Use metric units and 24-hour times. When the user asks about visas, give general "
    "guidance and link to the official embassy website instead of quoting rules that may change. "
    "Keep a friendly, enthusiastic tone, but do not use more than one exclamation mark per reply.",
    "You are CodeHelper, an assistant for software engineers at a mid-sized company. Answer programming "
    "questions with short explanations and runnable code. Prefer Python 3.11 and TypeScript. When the "
    "user shares code, point out bugs first, then style. Never paste secrets, tokens or credentials into "
    "your answers; if the user pastes one, tell them to rotate it. Follow the company style guide: type "
    "hints everywhere, no wildcard imports, tests with pytest, functions under 50 lines. If you are not "
    "sure an API exists, say so rather than guess. For infrastructure questions assume Kubernetes on a "
    "managed cloud, Postgres 16 and Kafka. Do not recommend libraries with restrictive licences.",
    "You are a health-information assistant for a pharmacy chain. You give general information about "
    "medicines, side effects and opening hours, and you help customers reorder prescriptions. You are not "
    "a doctor: never diagnose, and tell anyone with chest pain, difficulty breathing or thoughts of "
    "self-harm to call emergency services immediately. Do not repeat a customer's date of birth, address "
    "or insurance number back to them. For dosage questions, quote the leaflet and recommend asking the "
    "pharmacist. Opening hours: Monday to Saturday 8:00-19:00, Sunday closed. Keep answers under 120 "
    "words unless the customer asks for more detail. Use plain language a twelve-year-old would follow.",
]

COMPLETIONS = [
    "Thanks for reaching out. I have opened a ticket and an agent will contact you within one business day.",
    "Here are three options that fit your dates and budget. Would you like me to hold one of them?",
    "The bug is on line 12: the loop variable shadows the outer one. Rename it and the test passes.",
    "Please ask the pharmacist about the dosage; the leaflet says to take it with food.",
    "I can help with that. Could you tell me a bit more about what you need?",
]


def naive_analyzer(model: str) -> Any:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    patch_presidio_email_recognizer()
    engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}).create_engine()
    return AnalyzerEngine(nlp_engine=engine)


def recall(samples: list[Sample], predicted: list[list[tuple[str, int, int]]], entities: list[str]) -> float:
    by_text = dict(zip([s.text for s in samples], predicted, strict=True))
    report = evaluate(samples, lambda texts: [by_text[t] for t in texts], entities)
    return report.overall(entities).recall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1500)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--distinct", type=int, default=150, help="distinct ~1 KB events (workload 3)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=None, help="spaCy pipeline for both sides: package name or directory")
    args = parser.parse_args()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    settings = GuardrailsSettings(**({"spacy_model": args.model} if args.model else {}))
    all_samples = load_samples(DATA)
    splits = assign_splits(all_samples)
    samples = all_samples[: args.texts]
    texts = [s.text for s in samples]
    pii_only = load_policy({"rules": [{"id": "pii-redact", "detector": "pii", "threshold": 0.4, "action": "redact",
                                       "redaction": "mask"}]}, base={"name": "bench-pii"})
    full_policy = load_policy()
    entities = pii_only.detectors.pii.entities
    naive = naive_analyzer(settings.spacy_model)
    engine = PolicyEngine(settings)
    engine.warm_up(pii_only)
    engine.warm_up(full_policy)
    naive.analyze("warm up jane@example.com", language="en")

    def run_naive(items: list[str]) -> list[list[tuple[str, int, int]]]:
        return [[(r.entity_type, r.start, r.end) for r in naive.analyze(t, language="en")] for t in items]

    def run_engine(items: list[str], policy: Policy, batch: int) -> list[list[tuple[str, int, int]]]:
        engine._cache.clear()
        out: list[list[tuple[str, int, int]]] = []
        for i in range(0, len(items), batch):
            for hits in engine.hits_for(items[i:i + batch], policy):
                out.append([(h.kind, h.start, h.end) for h in hits if h.kind in entities])
        return out

    # 1. corpus
    rows = []
    times: dict[str, list[float]] = {"naive": [], "engine": []}
    preds: dict[str, list[list[tuple[str, int, int]]]] = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        preds["naive"] = run_naive(texts)
        times["naive"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        preds["engine"] = run_engine(texts, pii_only, 100)
        times["engine"].append(time.perf_counter() - t0)
    rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    rec = {k: recall(samples, preds[k], entities) for k in preds}
    rows.append(("corpus: texts/s", rate["naive"], rate["engine"], rec["naive"], rec["engine"]))
    held_out = [i for i, s in enumerate(samples) if splits[s.template_id] == "test"]
    rec_test = {k: recall([samples[i] for i in held_out], [preds[k][i] for i in held_out], entities) for k in preds}
    ner = engine.ner()
    ner.calls = ner.ner_calls = 0
    run_engine(texts, pii_only, 100)
    ner_share = (ner.ner_calls, ner.calls)

    # 2. realistic mix
    events = []
    for i in range(args.events):
        events.append([SYSTEM_PROMPTS[i % 7 % 4], texts[i % len(texts)], COMPLETIONS[i % len(COMPLETIONS)]])
    user_samples = [samples[i % len(samples)] for i in range(args.events)]
    flat = [m for e in events for m in e]
    times = {"naive": [], "engine": [], "engine_full": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        out_naive = run_naive(flat)
        times["naive"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_engine = run_engine(flat, pii_only, 75)
        times["engine"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_engine(flat, full_policy, 75)
        times["engine_full"].append(time.perf_counter() - t0)
    rate = {k: args.events / statistics.median(v) for k, v in times.items()}
    unique = {s.text: s for s in user_samples}
    user_naive = {flat[3 * i + 1]: out_naive[3 * i + 1] for i in range(args.events)}
    user_engine = {flat[3 * i + 1]: out_engine[3 * i + 1] for i in range(args.events)}
    us = list(unique.values())
    rows.append(("mix: events/s", rate["naive"], rate["engine"],
                 recall(us, [user_naive[s.text] for s in us], entities),
                 recall(us, [user_engine[s.text] for s in us], entities)))
    rows.append(("mix, full default policy", rate["naive"], rate["engine_full"], float("nan"), float("nan")))

    # 3. distinct ~1 KB events
    distinct: list[list[str]] = []
    k = 0
    for _ in range(args.distinct):
        event = []
        for least in (700, 300):
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < least:
                parts.append(all_samples[k % len(all_samples)].text)
                k += 1
            event.append(" ".join(parts))
        distinct.append(event)
    flat_d = [m for e in distinct for m in e]
    kb = sum(len(m.encode()) for m in flat_d) / len(distinct) / 1000
    times = {"naive": [], "engine": [], "engine_full": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        run_naive(flat_d)
        times["naive"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_engine(flat_d, pii_only, 50)
        times["engine"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_engine(flat_d, full_policy, 50)
        times["engine_full"].append(time.perf_counter() - t0)
    rate = {k: len(distinct) / statistics.median(v) for k, v in times.items()}
    rows.append((f"distinct {kb:.1f} KB: events/s", rate["naive"], rate["engine"], float("nan"), float("nan")))
    rows.append(("distinct, full default policy", rate["naive"], rate["engine_full"], float("nan"), float("nan")))
    ner.chars = ner.ner_chars = 0
    run_engine(flat_d, pii_only, 50)
    distinct_share = ner.ner_chars / max(1, ner.chars)

    print(f"\nguardrails scan bench: model {settings.spacy_model}, {len(texts)} corpus texts, {args.events} events "
          f"(3 messages each, 4 distinct system prompts), {args.rounds} rounds, medians; one process, one thread")
    print(f"{'workload':28} {'naive presidio':>15} {'guardrails':>11} {'ratio':>7} {'recall naive':>13} "
          f"{'recall ours':>12}")
    for name, a, b, ra, rb in rows:
        print(f"{name:28} {a:15.1f} {b:11.1f} {b / a:6.1f}x {ra:13.3f} {rb:12.3f}")
    print(f"corpus recall on the held-out test split alone ({len(held_out)} texts): naive {rec_test['naive']:.3f}, "
          f"ours {rec_test['engine']:.3f}; texts the engine sent through the NER model: {ner_share[0]} of "
          f"{ner_share[1]} distinct")
    print(f"distinct ~1 KB events: the NER model read {distinct_share:.0%} of the characters")
    print("recall: all scored entities of the default policy, char IoU >= 0.5, same matching as the quality script;"
          " 'full default policy' also runs secrets, injection, leak and size checks (recall n/a).")


if __name__ == "__main__":
    main()
