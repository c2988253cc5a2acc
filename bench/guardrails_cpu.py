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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import guardrails_pipeline  # noqa: E402

from llmops_guardrails import screening  # noqa: E402
from llmops_guardrails.engine import PolicyEngine  # noqa: E402
from llmops_guardrails.pii_eval import Sample, load_samples  # noqa: E402
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
    return _joined_events(n, lambda sample: sample.text)


def _joined_events(n: int, text_of: Callable[[Sample], str]) -> list[dict[str, Any]]:
    """The pipeline bench's events with a user message and a completion each joining `text_of` corpus samples drawn at
    random until at least 700 and 300 characters, every joined text distinct across calls (the pipeline bench's
    warm-up and burst)."""
    samples = load_samples(DATA)
    events = guardrails_pipeline.make_events(n)
    seen = _SEEN
    for event in events:
        texts = []
        for least in (700, 300):
            while True:
                parts: list[str] = []
                while sum(len(p) + 1 for p in parts) < least:
                    parts.append(text_of(random.choice(samples)))
                text = " ".join(parts)
                if text not in seen:
                    seen.add(text)
                    break
            texts.append(text)
        event["input"] = [{"role": "user", "content": texts[0]}]
        event["output"] = texts[1]
    return events


# `fresh_events`: a value of each type, new every time (Faker, seeded by the caller through `random`), in one of these
# locales (Latin-script ones and Greek, as the PII set's texts: Faker's, with some Greek); each type's Faker method
_FRESH_LOCALES = ("en_US", "en_GB", "en_AU", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE", "pl_PL",
                  "fi_FI", "da_DK", "no_NO", "cs_CZ", "tr_TR", "el_GR")
_FRESH_VALUES = {"PERSON": ("name",), "GPE": ("city", "country", "city"), "STREET_ADDRESS": ("address",),
                 "ORGANIZATION": ("company",), "PHONE_NUMBER": ("phone_number",), "EMAIL_ADDRESS": ("email",),
                 "CREDIT_CARD": ("credit_card_number",), "IBAN_CODE": ("iban",), "US_SSN": ("ssn",),
                 "IP_ADDRESS": ("ipv4",), "ZIP_CODE": ("postcode",), "DOMAIN_NAME": ("domain_name",)}


def fresh_events(n: int) -> list[dict[str, Any]]:
    """`distinct_events` with every PII value of the corpus texts (their gold spans: people, places, addresses, firms,
    phone and card numbers, e-mail addresses, IBANs...) replaced by a new one from Faker, in one of 17 locales chosen
    at random per value (`_FRESH_LOCALES`): the corpus's 1,500 texts recur in `distinct_events` (a join draws five or
    so of them), and with them their names and numbers; here only the surrounding words recur, so what a process
    remembers across events (value hashes, phone scores, names' words) helps no more than real traffic's recurring
    values would let it. Faker and `random` seeded by the caller; the same events whatever `PYTHONHASHSEED`."""
    from faker import Faker

    fakers = [Faker(locale) for locale in _FRESH_LOCALES]
    for k, fake in enumerate(fakers):
        fake.seed_instance(random.randrange(2**32) + k)
        for provider in fake.providers:  # it_IT's cities are a list made from a set: in PYTHONHASHSEED's order
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)

    def fresh(sample: Sample) -> str:
        text, cursor, pieces = sample.text, 0, []
        for kind, start, end in sorted(sample.spans, key=lambda s: (s[1], -s[2])):
            if start < cursor or kind not in _FRESH_VALUES:
                continue
            fake = random.choice(fakers)
            methods = _FRESH_VALUES[kind]
            method = methods[0] if len(methods) == 1 else random.choice(methods)
            pieces += [text[cursor:start], getattr(fake, method)()]
            cursor = end
        return "".join(pieces) + text[cursor:]

    return _joined_events(n, fresh)


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
