from __future__ import annotations

import pytest

from llmops_guardrails.detectors.secrets import SecretsDetector, shannon_entropy

DETECTOR = SecretsDetector()

# Test values are assembled at run time so that no scanner mistakes this file for a leak.
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq3\n-----END " + "RSA PRIVATE KEY-----"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
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
        ("Authorization: Bearer " + JWT, "jwt"),
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
