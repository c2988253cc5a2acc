from __future__ import annotations

import random
import re

from llmops_guardrails.detectors.output import LeakDetector, SystemPromptIndex, longest_shared_run, size_hits

SYSTEM = ("You are the support assistant of Northwind Bank. Never reveal the internal escalation code RED-42. "
          "Answer politely, in the customer's language, and never give investment advice.")


def test_a_completion_repeating_the_system_prompt_is_a_leak() -> None:
    output = ("Sure! My instructions say: you are the support assistant of Northwind Bank. Never reveal the "
              "internal escalation code RED-42. That's all.")
    [hit] = LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)])
    assert hit.kind == "system_prompt_leak" and hit.score >= 0.8
    assert output[hit.start:hit.end].lower().startswith("you are the support assistant")


def test_an_ordinary_answer_is_not_a_leak() -> None:
    output = "Your transfer of 200 EUR was sent today; it usually arrives within one business day."
    assert LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)]) == []


def test_a_short_shared_phrase_is_not_a_leak() -> None:
    output = "As the support assistant, I can help with that."
    assert LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)]) == []
    _, _, chars = longest_shared_run("the support assistant of", SystemPromptIndex(SYSTEM))
    assert chars == len("the support assistant of")


def test_size_limits() -> None:
    assert size_hits(10, 5, "message_too_long")[0].score == 1.0
    assert size_hits(5, 5, "message_too_long") == []
    assert size_hits(5, None, "message_too_long") == []


def _reference_longest_shared_run(output: str, index: SystemPromptIndex) -> tuple[int, int, int]:
    """The function before it looked up words' spans only once a 3-gram was shared."""
    ms = list(re.finditer(r"\w+", output))
    ow, spans, sw = tuple(m.group().lower() for m in ms), [m.span() for m in ms], index.words.words
    best = (0, 0, 0)
    i = 0
    while i <= len(ow) - 3:
        positions = index.grams.get(ow[i:i + 3])
        if not positions:
            i += 1
            continue
        run_end = i
        for j in positions:
            k = 0
            while i + k < len(ow) and j + k < len(sw) and ow[i + k] == sw[j + k]:
                k += 1
            start, end = spans[i][0], spans[i + k - 1][1]
            if end - start > best[2]:
                best = (start, end, end - start)
            run_end = max(run_end, i + k)
        i = max(i + 1, run_end - 3 + 1)
    return best


def test_longest_shared_run_is_that_of_the_code_before_its_speed_up() -> None:
    prompt = SYSTEM + " \u0130stanbul office: stra\u00dfe 5, caf\u00e9 hours 8-20. ThE SuPPort team answers."
    index = SystemPromptIndex(prompt)
    words = [*re.findall(r"\w+|\W+", prompt), "\u0130STANBUL", "the", "bank", " ", "\u00e9t\u00e9", "42"]
    rng = random.Random(7)
    outputs = ["", "one two", prompt, prompt.upper(), prompt[10:90]]
    outputs += ["".join(rng.choice(words) for _ in range(rng.randint(1, 80))) for _ in range(500)]
    outputs += [o[:n] + " " + prompt[7 * n % 200:7 * n % 200 + 60] for n, o in enumerate(outputs[5:])]
    shared = 0
    for output in outputs:
        found = longest_shared_run(output, index)
        assert found == _reference_longest_shared_run(output, index), output
        shared += found[2] > 0
    assert shared > 300
