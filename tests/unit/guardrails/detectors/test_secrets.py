from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

import pytest

from llmops_guardrails.detectors.keys import fold
from llmops_guardrails.detectors.secrets import (
    _ASSIGNMENT_GATE,
    ASSIGNMENT,
    CANDIDATE,
    JWT,
    PLACEHOLDER,
    RULES,
    SecretsDetector,
    _looks_random,
    _valid_jwt,
    shannon_entropy,
)
from llmops_guardrails.findings import Detector, Hit

DETECTOR = SecretsDetector()

# Test values are assembled at run time so that no scanner mistakes this file for a leak.
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq3\n-----END " + "RSA PRIVATE KEY-----"
JWT_VALUE = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
       + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("aws key " + "AKIA" + "IOSFODNN7EXAMPLE" + " in config", "aws_access_key_id"),
        ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key"),
        ("token " + "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a", "github_token"),
        ("xoxb-" + "2400000000-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
        ("stripe " + "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe_secret_key"),
        ("OPENAI_API_KEY=" + "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3kLm6n", "openai_api_key"),
        ("key " + "sk-" + "abc123DEF456ghi789JKL012" + "T3BlbkFJ" + "mno345PQR678stu901VWX234", "openai_api_key"),
        ("claude key " + "sk-ant-api03-" + "x" * 20 + "Y7_-" * 10 + "AA", "anthropic_api_key"),
        ("maps " + "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google_api_key"),
        (PEM, "private_key"),
        ("Authorization: Bearer " + JWT_VALUE, "jwt"),
        ("DATABASE_URL=postgres://app:" + "Sup3rS3cret" + "@db.internal:5432/app", "connection_string_password"),
        ("password: 'hunter2hunter2!'", "generic_secret_assignment"),
        ("here it is: " + "kj3H8sLq0vX2mN7pQ4rT9wY1zB5cD6eF", "generic_high_entropy"),
    ],
)
def test_credentials_are_found(text: str, kind: str) -> None:
    hits = DETECTOR.detect(text)
    assert [h.kind for h in hits] == [kind]
    assert 0.0 < hits[0].score <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "The AKIA prefix marks AWS access keys.",  # a word, not a key
        "akiaiosfodnn7example is lower case",
        "ACKNOWLEDGEMENTSABCDEFGH",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it",  # a hex digest
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "internationalization-localization-globalization",
        "See /usr/local/lib/python3.11/site-packages/spacy for details",
        "password: <your-password>",
        "eyJub3QiOiJhIGp3dCJ9 alone is just base64",
        "Please set api_key = ${OPENAI_API_KEY} in the environment",
    ],
)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert DETECTOR.detect(text) == []


def test_a_specific_rule_wins_over_the_generic_ones() -> None:
    hits = DETECTOR.detect("GITHUB_TOKEN=" + "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a")
    assert [h.kind for h in hits] == ["github_token"]


def test_entropy() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


# --------------------------------------------------------------------------------------------------------------
# Speed-ups that must change nothing: each rule runs only on texts holding one of its keys, and the generic rules
# behind cheaper necessary conditions. The reference is the detector before them: every pattern on every text.


def _reference_detect(text: str, *, generic: bool = True, min_entropy: float = 3.5) -> list[Hit]:
    hits: list[Hit] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(kind: str, start: int, end: int, score: float) -> None:
        if free(start, end):
            hits.append(Hit(Detector.SECRETS, kind, start, end, round(min(score, 1.0), 4)))
            taken.append((start, end))

    for rule in RULES:
        for m in rule.pattern.finditer(text):
            add(rule.name, m.start(rule.group), m.end(rule.group), rule.score)
    for m in JWT.finditer(text):
        if _valid_jwt(m.group(1)):
            add("jwt", m.start(1), m.end(1), 0.9)
    if generic:
        for m in ASSIGNMENT.finditer(text):
            value = m.group(2)
            if PLACEHOLDER.match(value) or not free(m.start(2), m.end(2)):
                continue
            entropy = shannon_entropy(value)
            if entropy >= 2.5:
                add("generic_secret_assignment", m.start(2), m.end(2), 0.6 + min(0.3, max(0.0, entropy - 2.5) / 5))
        for m in CANDIDATE.finditer(text):
            token = m.group()
            if free(m.start(), m.end()) and _looks_random(token, min_entropy + 0.5):
                add("generic_high_entropy", m.start(), m.end(),
                    0.4 + min(0.3, (shannon_entropy(token) - min_entropy - 0.5) / 3))
    hits.sort(key=lambda h: h.start)
    return hits


def _random(alphabet: str, n: int, rng: random.Random) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _credentials(rng: random.Random) -> list[str]:
    """One or more values of every rule's format, assembled at run time."""
    an, hexd = string.ascii_letters + string.digits, "0123456789abcdef"
    b64 = an + "+/"
    return [
        PEM, "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n",
        "AKIA" + _random("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, rng),
        "A3TX" + _random(string.ascii_uppercase, 16, rng),
        "aws_secret_access_key = " + _random(b64, 40, rng), "AWS private: '" + _random(b64, 40, rng) + "'",
        "ghp_" + _random(an, 36, rng), "gho_" + _random(an, 40, rng), "github_pat_" + _random(an + "_", 82, rng),
        "glpat-" + _random(an + "_-", 20, rng), "xoxb-123-456-" + _random(an, 24, rng),
        "https://hooks.slack.com/services/" + _random(an, 30, rng), "sk_live_" + _random(an, 24, rng),
        "rk_test_" + _random(an, 30, rng), "sk-ant-api03-" + _random(an + "_-", 60, rng),
        "sk-" + _random(an, 20, rng) + "T3BlbkFJ" + _random(an, 20, rng), "sk-proj-" + _random(an + "_-", 48, rng),
        "sk-" + _random(an, 48, rng), "AIza" + _random(an + "_-", 35, rng),
        "hf_" + _random(string.ascii_letters, 34, rng),
        "npm_" + _random(an, 36, rng), "pypi-AgEIcHlwaS5vcmc" + _random(an, 60, rng),
        "SG." + _random(an, 22, rng) + "." + _random(an, 43, rng), "SK" + _random(hexd, 32, rng),
        "shpat_" + _random(hexd, 32, rng), "DefaultEndpointsProtocol=https;AccountKey=" + _random(b64, 86, rng) + "==",
        '{"type": "service_account", "project_id": "x"}', "postgres://app:" + _random(an, 12, rng) + "@db:5432/app",
        "https://user:" + _random(an, 10, rng) + "@example.com/x", "Bearer " + JWT_VALUE,
        "api_key = '" + _random(an, 24, rng) + "'", "password: " + _random(an + "!#", 14, rng),
        "client_secret=" + _random(an, 32, rng), "token => " + _random(an, 40, rng), _random(an, 40, rng),
    ]


def _folded_variants(text: str) -> list[str]:
    """What `re.IGNORECASE` still matches: case changes, and the letters `lower()` does not map to ASCII ones."""
    lookalikes = text.replace("s", "\u017f").replace("k", "\u212a").replace("i", "\u0131").replace("I", "\u0130")
    return [text.upper(), text.lower(), text.swapcase(), lookalikes, "caf\u00e9 " + text]


def _corpus() -> list[str]:
    from importlib import resources

    from llmops_guardrails.pii_eval import load_samples

    rng = random.Random(17)
    singles = [c for _ in range(5) for c in _credentials(rng)]
    texts = [f"here it is: {c} (rotated)" for c in singles] + ["\n".join(singles[i:i + 4]) for i in range(0, 150, 4)]
    texts += [v for t in list(texts) for v in _folded_variants(t)]
    for name in ("injection_prompts.jsonl", "injection_prose.jsonl"):
        raw = resources.files("llmops_guardrails").joinpath(f"data/{name}").read_text(encoding="utf-8")
        texts += [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
    data = Path(__file__).resolve().parents[5] / "shared/data/pii/synth_dataset_v2.json"
    return texts + [s.text for s in load_samples(data)]


def test_findings_are_those_of_the_detector_before_its_speed_ups() -> None:
    texts = _corpus()
    found = 0
    for text in texts:
        for generic in (True, False):
            expected = _reference_detect(text, generic=generic)
            assert SecretsDetector(generic=generic).detect(text) == expected, text
            found += len(expected)
    kinds = {h.kind for t in texts for h in _reference_detect(t)}
    assert {r.name for r in RULES} | {"jwt", "generic_secret_assignment", "generic_high_entropy"} <= kinds
    assert found > 500


def test_rule_keys_are_necessary_conditions() -> None:
    checked = 0
    for text in _corpus():
        folded = fold(text)
        for rule in RULES:
            for m in rule.pattern.finditer(text):
                checked += 1
                assert any(k in (folded if rule.folded else text) for k in rule.keys), (rule.name, m.group())
        for m in ASSIGNMENT.finditer(text):
            checked += 1
            assert _ASSIGNMENT_GATE.search(fold(m.group())), m.group()
    assert checked > 500


@pytest.mark.parametrize("text", [
    "PASSWORD := " + "hunter2hunter2", "Api-Key\t=\t'" + "k3yQ9wZ2mP7v'", "x.AUTH_TOKEN\": \"" + "abcdefgh12345",
    "pa\u017f\u017fword: " + "hunter2hunter2", "TO\u212aEN=" + "abcdefgh1234", "credential_v2=" + "s3Cr9tW4qL1z",
])
def test_assignments_pass_the_cheaper_search_first(text: str) -> None:
    assert ASSIGNMENT.search(text)
    assert _ASSIGNMENT_GATE.search(fold(text))
    assert [h.kind for h in DETECTOR.detect(text)] == ["generic_secret_assignment"]


def test_every_rule_has_keys_and_folded_ones_are_lower_case_ascii() -> None:
    for rule in RULES:
        assert rule.keys, rule.name
        if rule.folded:
            assert all(k.isascii() and k == k.lower() for k in rule.keys), rule.name
        if rule.pattern.flags & re.IGNORECASE and not rule.folded:  # case matters not: the keys have no letter
            assert not any(c.isalpha() for k in rule.keys for c in k), rule.name
        if rule.folded:
            assert rule.pattern.flags & re.IGNORECASE, rule.name


def test_detecting_makes_no_reference_cycle() -> None:
    """Every text's objects go by reference counting (the overlap checks were closures over `detect`'s lists: compiled,
    a closure and its environment are a cycle, five objects a text left for the collector)."""
    import gc

    texts = [f"key {PEM} token {JWT_VALUE} password = 'Zq8#kL2!vX9@mR4$' n{i} x9Qk2LmZ7vB4nR8tY3wP6sD1fG5hJ0cV"
             for i in range(200)]
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        before = len(gc.get_objects())
        hits = [DETECTOR.detect(t) for t in texts]
        assert all(len(h) >= 3 for h in hits)
        del hits
        left = len(gc.get_objects()) - before
    finally:
        gc.enable()
        gc.unfreeze()
    assert left < 100  # (the last texts' remembered folds and key searches); a cycle a text would leave 1,000
