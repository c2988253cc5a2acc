"""Fewer passes over a text in the capitalised-word code (issue 17, item 1, speed, branch `guard12`): each new
computation against the one it replaced, on the PII set (as written, lower- and upper-cased), the injection set and its
prose, and crafted texts."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import regex

from llmops_guardrails.detectors import injection
from llmops_guardrails.detectors.pii import people
from llmops_guardrails.pii_eval import load_samples

PII_DATA = Path(__file__).resolve().parents[5].parent / "shared/data/pii/synth_dataset_v2.json"
INJECTION_DATA = Path(injection.__file__).resolve().parents[1] / "data"


@functools.cache
def _corpus() -> list[str]:
    texts = [s.text for s in load_samples(PII_DATA)]
    texts += [t.lower() for t in texts[:400]] + [t.upper() for t in texts[:400]]
    for name in ("injection_prompts.jsonl", "injection_prose.jsonl"):
        texts += [json.loads(line)["text"] for line in (INJECTION_DATA / name).read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    return texts


def _crafted(n: int, seed: int) -> list[str]:
    """Capitalised words, initials, particles, joiners, digits and lower-case words, glued by one or two spaces and
    punctuation: runs of every length and every edge."""
    rng = random.Random(seed)
    words = ["Anna", "Berg", "O'Brien", "Jean-Luc", "McDonald’s", "ÅSA", "Ødegård", "D.", "G", "A", "van", "der",
             "and", "x", "9", "9th", "_", "Anna9", "Kokkola", "İz", "Ǆemal", "e\u0301", "É\u0301va", "-", "'", "’", ".",
             "ANNA", "Ab", "a-B", "Bb-", "Cc'"]
    glue = [" ", " ", " ", "  ", "", "\n", ", ", ". ", "-", "'", "’", "_", "9", "\t"]
    return ["".join(rng.choice(words) + rng.choice(glue) for _ in range(rng.randrange(1, 14))) for _ in range(n)]


def test_one_search_finds_the_lone_words_and_the_capitalised_runs() -> None:
    lone_seen = runs_seen = 0
    for text in _corpus() + _crafted(20_000, 12):
        lone, runs = people.capitalised_words(text)
        assert [m.span() for m in lone] == [m.span() for m in people._LONE_WORD.finditer(text)], text
        assert [m.span() for m in runs] == [m.span() for m in people._CAPITALISED_RUN.finditer(text)], text
        lone_seen += len(lone)
        runs_seen += len(runs)
    assert lone_seen > 10_000 and runs_seen > 2_000
    # a run of five or more is neither
    assert people.capitalised_words("Anna Berg Olga Eva Ben Dan") == ([], [])


def test_the_two_searches_are_what_they_were() -> None:
    name_word = r"\p{Lu}[\p{L}\p{M}'’-]*[\p{L}\p{M}]"
    assert people._LONE_WORD.pattern == (
        rf"(?<![\p{{L}}\p{{M}}\p{{N}}_'’.-]|\p{{Lu}}[\p{{L}}\p{{M}}'’-]*[ ]){name_word}"
        rf"(?![\p{{L}}\p{{M}}\p{{N}}_'’-]|[ ]\p{{Lu}})")
    assert people._CAPITALISED_RUN.pattern == (
        rf"(?<![\p{{L}}\p{{M}}\p{{N}}_'’.-]|\p{{Lu}}[\p{{L}}\p{{M}}'’-]*[ ])"
        rf"{name_word}(?:[ ]{name_word}){{1,3}}(?![\p{{L}}\p{{M}}\p{{N}}_'’-]|[ ]\p{{Lu}})")
    assert isinstance(people._CAPITALISED_WORDS, regex.Pattern)
