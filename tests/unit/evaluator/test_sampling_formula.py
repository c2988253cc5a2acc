"""The sample docs/evaluator.md tells users to reproduce is the sample the code takes: the documented
block is run as written and compared with `llmops_evaluator.config.sampled`, and the formula is computed
once more here, from its description, by hand."""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from llmops_evaluator.config import REVIEW_SAMPLE, sampled

DOC = Path(__file__).resolve().parents[3] / "docs" / "evaluator.md"
RATES = (0.0, 0.001, 0.05, 0.1, 0.5, 0.97, 1.0)


def documented() -> Callable[..., bool]:
    """`in_sample` from the Python block of docs/evaluator.md's section on sampling, executed as written."""
    text = DOC.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def in_sample" in b)
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["in_sample"]  # type: ignore[return-value]


def by_hand(event_id: str, rate: float, prefix: str) -> bool:
    """SHA-256 over the prefix's ASCII bytes then the UUID's 16 bytes; first 8 bytes, big-endian, over 2^64."""
    data = prefix.encode("ascii") + bytes.fromhex(event_id.replace("-", ""))
    head = hashlib.sha256(data).hexdigest()[:16]
    return rate >= 1 or (rate > 0 and int(head, 16) < rate * 2**64)


@pytest.fixture(scope="module")
def event_ids() -> list[str]:
    rng = random.Random(20261203)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3000)]


@pytest.mark.parametrize("rate", RATES)
def test_the_documented_judge_sample_is_the_codes(event_ids: list[str], rate: float) -> None:
    in_sample = documented()
    code = [sampled(e, rate) for e in event_ids]
    assert [in_sample(e, rate) for e in event_ids] == code
    assert [by_hand(e, rate, "llmops-sample:") for e in event_ids] == code


@pytest.mark.parametrize("rate", RATES)
def test_the_documented_review_sample_is_the_codes(event_ids: list[str], rate: float) -> None:
    in_sample = documented()
    code = [sampled(e, rate, salt=REVIEW_SAMPLE) for e in event_ids]
    assert [in_sample(e, rate, prefix=b"llmops-review:") for e in event_ids] == code
    assert [by_hand(e, rate, "llmops-review:") for e in event_ids] == code


def test_the_two_samples_differ_and_hashing_the_bare_id_is_not_the_sample(event_ids: list[str]) -> None:
    judge = [sampled(e, 0.5) for e in event_ids]
    assert judge != [sampled(e, 0.5, salt=REVIEW_SAMPLE) for e in event_ids]
    bare = [int.from_bytes(hashlib.sha256(uuid.UUID(e).bytes).digest()[:8], "big") / 2**64 < 0.5 for e in event_ids]
    assert judge != bare  # what the docs said before: "a hash of the event id"
