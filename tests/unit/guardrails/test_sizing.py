"""`sizing.fit`: a clean event within Kafka's limit and each text within the contract's, or `CleanEventTooLarge`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmops_guardrails import screening
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.policy import load_policy
from llmops_guardrails.sizing import CleanEventTooLarge, fit
from llmops_shared.contract import Interaction, decode_interaction
from tests.support.events import make_event


def interaction(**overrides: Any) -> Interaction:
    return Interaction.model_validate({**make_event(), "tenant_id": "t1",
                                       "metadata": {"guardrails": {"findings": 0}}, **overrides})


def test_an_event_within_the_limits_goes_as_it_is() -> None:
    event = interaction()
    assert fit(event, max_bytes=1_000_000) == (event.to_json(), None)


def test_the_longest_texts_are_cut_with_a_marker_and_the_rest_is_left_whole() -> None:
    long_a, long_b, short = "a" * 40_000, "b" * 30_000, "where is my order?"
    event = interaction(input=[{"role": "system", "content": short}, {"role": "user", "content": long_a},
                               {"role": "assistant", "tool_calls": [{"name": "lookup", "arguments": long_b}]}],
                        output=[{"role": "assistant", "content": [{"type": "text", "text": "c" * 20_000}]}])
    encoded, cut = fit(event, max_bytes=30_000)
    assert len(encoded) <= 30_000 and cut is not None
    clean = decode_interaction(encoded)  # still a valid interaction for the evaluator
    assert isinstance(clean.input, list) and isinstance(clean.output, list)
    assert clean.input[0].content == short
    texts = [clean.input[1].content, clean.input[2].tool_calls[0].arguments,  # type: ignore[index]
             clean.output[0].content[0].text]  # type: ignore[index]
    for text in texts:
        assert isinstance(text, str) and " characters removed]" in text
    assert texts[0].startswith("aaaa") and texts[1].startswith("bbbb")
    removed = sum(int(t.rsplit("truncated by guardrails: ", 1)[1].split(" ")[0]) for t in texts)  # type: ignore[union-attr]
    assert (cut.texts, cut.chars_removed) == (3, removed)
    assert clean.metadata["guardrails"]["truncated"] == {"texts": 3, "chars_removed": removed}
    # water-filling: the cut texts end up about the same size, close to the limit
    assert len(encoded) > 30_000 - 3 * 100
    assert max(map(len, texts)) - min(map(len, texts)) <= 3  # type: ignore[arg-type]


def test_escaped_and_wide_characters_are_counted_in_bytes() -> None:
    text = ('"\\\n' + "é€😀") * 5_000  # 2 bytes in JSON for each of the first three, 2-4 for the rest
    event = interaction(input=text)
    encoded, cut = fit(event, max_bytes=10_000)
    assert len(encoded) <= 10_000 and cut is not None and cut.texts == 1
    assert decode_interaction(encoded).input.endswith("characters removed]")  # type: ignore[union-attr]


def test_a_text_over_the_contract_limit_is_cut_even_when_the_event_is_small_enough() -> None:
    event = interaction(output="x" * 5_000)
    encoded, cut = fit(event, max_bytes=1_000_000, max_text_chars=1_000)
    output = orjson.loads(encoded)["output"]
    kept = output.count("x")
    assert len(output) == 1_000 and output.endswith(f"…[truncated by guardrails: {5_000 - kept} characters removed]")
    assert cut is not None and cut.chars_removed == 5_000 - kept


def test_an_event_that_is_large_for_other_reasons_than_text_cannot_be_fitted() -> None:
    messages = [{"role": "user", "content": f"m{i}", "name": "n" * 200} for i in range(100)]
    with pytest.raises(CleanEventTooLarge, match=r"after cutting its texts; the limit is 5000$"):
        fit(interaction(input=messages), max_bytes=5_000)


def test_a_936_kb_event_of_short_e_mail_addresses_redacted_past_kafkas_limit_is_cut_to_fit(
        engine: PolicyEngine) -> None:
    """The case of the issue: masking grows it by 16% (`u1234@ex.io` -> `[EMAIL_ADDRESS]`), past 1 MB."""
    def addresses(first: int, size: int) -> str:
        out, total = [], 0
        while total < size:
            out.append(f"u{first + len(out)}@ex.io")
            total += len(out[-1]) + 1
        return " ".join(out)

    event = interaction(input=[{"role": "user", "content": addresses(0, 468_000)},
                               {"role": "user", "content": addresses(10**6, 468_000)}])
    assert 930_000 < len(event.to_json()) < 940_000
    policy = load_policy("detectors: {pii: {entities: [EMAIL_ADDRESS]}}\n")  # no NER: the rules find e-mails
    scan = engine.scan_interaction(event, policy)
    assert len(screening.clean_interaction(event, scan, "t1").to_json()) > 1_050_000
    encoded, cut = screening.clean_event(event, scan, "t1", max_bytes=1_000_000)
    assert len(encoded) <= 1_000_000 and cut is not None
    clean = decode_interaction(encoded)
    assert isinstance(clean.input, list)
    assert "@ex.io" not in encoded.decode()
    assert clean.metadata["guardrails"]["truncated"]["texts"] == cut.texts >= 1
