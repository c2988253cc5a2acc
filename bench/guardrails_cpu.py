"""CPU time per event of the guardrails engine, the per-core figure on a shared machine (no stack needed).

    .venv/bin/python bench/guardrails_cpu.py [--events 1000] [--rounds 3]
    PYTHONPATH=<dir with another commit's services/guardrails> .venv/bin/python bench/guardrails_cpu.py  # baseline

Wall-clock rates on a machine other jobs share swing with their load; the process's CPU time
(`time.process_time`) does much less, and is what one core spends. Scans with `PolicyEngine.scan_many` (the
stream worker's call), the default policy, a cold cache each round, batches of 500 events:

1. the pipeline bench's events (`bench/guardrails_pipeline.py`: one of four repeated ~700-character system
   prompts, a distinct user message and completion, ~1.1 KB);
2. distinct ~1 KB events, every message distinct and name-dense: a user message of presidio-research corpus
   texts joined to at least 700 characters and a completion of the next ones joined to at least 300.

Reports the median of `--rounds` as events per CPU-second, and the share of characters the NER model read. Then,
for the events of 1, the stream worker's own pure work around the scan too (`GuardrailsWorker`: decoding the Kafka
message, the scan with the other free text, the clean event, findings rows and alert occurrences). Kafka and
Postgres are not included: see the pipeline bench for those.

As the worker does, the objects alive after warm-up are frozen out of the garbage collector (`gc.freeze`; done
here whatever the code under test). The collector's thresholds are those the tree's worker sets
(`llmops_guardrails.worker.GC_THRESHOLD`, since `guard9`; Python's default 700, 10, 10 for a tree without it);
`--gc default` keeps Python's default on both sides, so that a baseline run differs in its engine only.
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import guardrails_pipeline  # noqa: E402

from llmops_guardrails import screening  # noqa: E402
from llmops_guardrails.engine import PolicyEngine  # noqa: E402
from llmops_guardrails.pii_eval import load_samples  # noqa: E402
from llmops_guardrails.policy import Policy, load_policy  # noqa: E402
from llmops_guardrails.settings import GuardrailsSettings  # noqa: E402
from llmops_guardrails.worker import GuardrailsWorker  # noqa: E402
from llmops_shared.contract import Interaction, decode_interaction  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pii" / "synth_dataset_v2.json"


_SEEN: set[str] = set()


def distinct_events(n: int) -> list[dict[str, Any]]:
    """Events whose texts are all distinct: each message joins corpus texts drawn at random (`random`, seeded by the
    caller) until it is long enough. (Drawing them in order, as this did before 2026-12-04, wrapped around the
    1,500 texts and fell back into the same joins: 1,000 events held only 227 distinct texts.)"""
    samples = load_samples(DATA)
    events = guardrails_pipeline.make_events(n)
    seen = _SEEN  # distinct across calls too (the pipeline bench's warm-up and burst)
    for event in events:
        texts = []
        for least in (700, 300):
            while True:
                parts: list[str] = []
                while sum(len(p) + 1 for p in parts) < least:
                    parts.append(random.choice(samples).text)
                text = " ".join(parts)
                if text not in seen:
                    seen.add(text)
                    break
            texts.append(text)
        event["input"] = [{"role": "user", "content": texts[0]}]
        event["output"] = texts[1]
    return events


# `fresh_events`: a value of each type, new every time (Faker, seeded by the caller through `random`).
# (Latin-script locales and Greek, as the PII set's texts: Faker's, with some Greek)
_FRESH_LOCALES = ("en_US", "en_GB", "en_AU", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE", "pl_PL",
                  "fi_FI", "da_DK", "no_NO", "cs_CZ", "tr_TR", "el_GR")
_FRESH_TYPES = ("PERSON", "GPE", "STREET_ADDRESS", "ORGANIZATION", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD",
                "IBAN_CODE", "US_SSN", "IP_ADDRESS", "ZIP_CODE", "DOMAIN_NAME")


def _fresh_value(kind: str, fake: Any) -> str:
    value: str
    if kind == "PERSON":
        value = fake.name()
    elif kind == "GPE":
        value = random.choice((fake.city, fake.country, fake.city))()
    elif kind == "STREET_ADDRESS":
        value = fake.address()
    elif kind == "ORGANIZATION":
        value = fake.company()
    elif kind == "PHONE_NUMBER":
        value = fake.phone_number()
    elif kind == "EMAIL_ADDRESS":
        value = fake.email()
    elif kind == "CREDIT_CARD":
        value = fake.credit_card_number()
    elif kind == "IBAN_CODE":
        value = fake.iban()
    elif kind == "US_SSN":
        value = fake.ssn()
    elif kind == "IP_ADDRESS":
        value = fake.ipv4()
    elif kind == "ZIP_CODE":
        value = fake.postcode()
    else:
        value = fake.domain_name()
    return value


def fresh_events(n: int) -> list[dict[str, Any]]:
    """`distinct_events` with every PII value of the corpus texts (their gold spans: people, places, addresses, firms,
    phone and card numbers, e-mail addresses, IBANs...) replaced by a new one from Faker, in one of 17 locales chosen
    at random per value (`_FRESH_LOCALES`): the corpus's 1,500 texts recur in
    `distinct_events` (a join draws five or so of them), and with them their names and numbers; here only the
    surrounding words recur, so what a process remembers across events (value hashes, phone scores, names' words)
    helps no more than real traffic's recurring values would let it. Faker and `random` seeded by the caller."""
    from faker import Faker

    samples = load_samples(DATA)
    fakers = [Faker(locale) for locale in _FRESH_LOCALES]
    for k, fake in enumerate(fakers):
        fake.seed_instance(random.randrange(2**32) + k)
    events = guardrails_pipeline.make_events(n)
    for event in events:
        texts = []
        for least in (700, 300):
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < least:
                sample = random.choice(samples)
                text, cursor, pieces = sample.text, 0, []
                for kind, start, end in sorted(sample.spans, key=lambda s: (s[1], -s[2])):
                    if start < cursor or kind not in _FRESH_TYPES:
                        continue
                    pieces += [text[cursor:start], _fresh_value(kind, random.choice(fakers))]
                    cursor = end
                parts.append("".join(pieces) + text[cursor:])
            texts.append(" ".join(parts))
        event["input"] = [{"role": "user", "content": texts[0]}]
        event["output"] = texts[1]
    return events


def warm_engine() -> tuple[PolicyEngine, Policy]:
    """The engine these benches time: default settings, the default policy, warmed up, presidio's logs quiet and
    the event generators seeded (`guardrails_steps` uses it too)."""
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    random.seed(17)
    engine = PolicyEngine(GuardrailsSettings())
    policy = load_policy()
    engine.warm_up(policy)
    return engine, policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gc", choices=("worker", "default"), default="worker",
                        help="the garbage collector's thresholds: the tree's worker's, or Python's default")
    args = parser.parse_args()
    engine, policy = warm_engine()
    gc.collect()
    gc.freeze()
    import llmops_guardrails
    import llmops_guardrails.worker

    thresholds = getattr(llmops_guardrails.worker, "GC_THRESHOLD", None) if args.gc == "worker" else None
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    print(f"llmops_guardrails from {Path(llmops_guardrails.__file__).parent}; "
          f"collector thresholds {gc.get_threshold()}")
    workloads = {"pipeline bench events": guardrails_pipeline.make_events(args.events),
                 "distinct ~1 KB events": distinct_events(args.events)}
    for name, raw in workloads.items():
        events = [Interaction.model_validate(e) for e in raw]
        size = sum(len(m.content) for e in events for m in e.input) + sum(len(str(e.output)) for e in events)
        rates = []
        ner = engine.ner()
        for _ in range(args.rounds):
            engine._cache.clear()
            chars, ner_chars = getattr(ner, "chars", 0), getattr(ner, "ner_chars", 0)
            t0 = time.process_time()
            for i in range(0, len(events), 500):
                engine.scan_many(events[i:i + 500], policy)
            rates.append(len(events) / (time.process_time() - t0))
        share = ((getattr(ner, "ner_chars", 0) - ner_chars) / max(1, getattr(ner, "chars", 0) - chars)
                 if hasattr(ner, "ner_chars") else float("nan"))
        print(f"{name:24} {size / len(events) / 1000:.2f} KB/event: {statistics.median(rates):7.0f} events per "
              f"CPU-second (rounds {[round(r) for r in rates]}); NER read {share:.0%} of the characters")
    worker = GuardrailsWorker(GuardrailsSettings(), engine=engine)
    payloads = [orjson.dumps(e) for e in workloads["pipeline bench events"]]
    rates = []
    for _ in range(args.rounds):
        engine._cache.clear()
        t0 = time.process_time()
        for i in range(0, len(payloads), 500):
            events = [decode_interaction(b) for b in payloads[i:i + 500]]
            scanned = worker.scan(events, [policy] * len(events), ["bench"] * len(events))
            for s in scanned:
                worker.clean(s)
                screening.finding_rows(s.event, s.scan, s.policy_version)
                screening.occurrences(s.event, s.scan)
        rates.append(len(payloads) / (time.process_time() - t0))
    print(f"{'  + the worker around it':24} {'':13} {statistics.median(rates):7.0f} events per CPU-second (rounds "
          f"{[round(r) for r in rates]}): decode, scan with the other free text, clean event, rows, occurrences")


if __name__ == "__main__":
    main()
