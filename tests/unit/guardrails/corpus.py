"""Texts the guardrails' same-output tests run the new and the old code over: the PII set (`../shared/data/pii`),
optionally with its first texts also lower- and upper-cased, then the injection set and its prose."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from llmops_guardrails.pii_eval import load_samples

ROOT = Path(__file__).resolve().parents[3]
PII_DATA = ROOT.parent / "shared/data/pii/synth_dataset_v2.json"
INJECTION_DATA = ROOT / "services/guardrails/llmops_guardrails/data"


@functools.cache
def _texts(cased: int) -> tuple[str, ...]:
    texts = [s.text for s in load_samples(PII_DATA)]
    texts += [t.lower() for t in texts[:cased]] + [t.upper() for t in texts[:cased]]
    for name in ("injection_prompts.jsonl", "injection_prose.jsonl"):
        texts += [json.loads(line)["text"] for line in (INJECTION_DATA / name).read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    return tuple(texts)


def corpus(*, cased: int = 0) -> list[str]:
    """The PII set's texts, its first `cased` texts lower- and then upper-cased, the injection set's and its prose's
    (a new list each call: callers add their own texts to it)."""
    return list(_texts(cased))
