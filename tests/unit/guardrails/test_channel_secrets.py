"""Channel secrets: sealed under the first of the operator's keys, opened by any, shown masked; and what URL a
channel of each kind takes. Pure: no infrastructure."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from llmops_guardrails.channel_secrets import (
    ChannelCipher,
    SecretsUnavailable,
    hints,
    mask_secret,
    mask_url,
    opened,
    parse_keys,
    seal,
)
from llmops_guardrails.notifier.channels import url_problem
from llmops_guardrails.settings import GuardrailsSettings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T1/B2/xyz", "https://hooks.slack.com/…"),
    ("https://user:pa55@example.com/h?token=abc#frag", "https://example.com/…"),  # no user info, path or query
    ("http://127.0.0.1:8099/hook/tok", "http://127.0.0.1:8099/…"),
    ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/…"),
    ("https://example.com", "https://example.com/…"),
    ("http://[::1", "…"),  # not a URL: nothing of it
])
def test_a_url_is_shown_as_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_secret_is_shown_as_its_last_four_characters_if_it_is_long_enough() -> None:
    assert mask_secret("whsec_" + "x" * 20 + "abcd") == "****abcd"
    assert mask_secret("routing-1") == "****"  # short: the last four would give too much away
    assert mask_secret("") is None


def test_sealed_values_open_with_any_key_and_are_sealed_under_the_first() -> None:
    old = ChannelCipher([OLD])
    sealed = seal(old, url="https://example.com/hook/tok-1", secret="whsec-1")
    assert "tok-1" not in sealed.url and "whsec-1" not in sealed.secret
    assert sealed.url.startswith("gAAAAA") and sealed.secret.startswith("gAAAAA")  # migration 0011's check
    assert (sealed.url_hint, sealed.secret_hint) == ("https://example.com/…", "****")
    row = sealed.columns()
    rotated = ChannelCipher([NEW, OLD])
    assert opened(rotated, row) == ("https://example.com/hook/tok-1", "whsec-1")
    assert not rotated.is_current(row["url"]) and old.is_current(row["url"])
    assert rotated.is_current(rotated.seal("x")) and ChannelCipher([NEW]).open(rotated.seal("x")) == "x"
    with pytest.raises(SecretsUnavailable):
        opened(ChannelCipher([NEW]), row)  # the old key dropped too early
    with pytest.raises(SecretsUnavailable):
        opened(None, row)
    assert seal(old, url="", secret="").columns()["url"] == ""  # no URL (PagerDuty), no secret: nothing to seal


def test_an_altered_token_does_not_open() -> None:
    cipher = ChannelCipher([OLD])
    token = cipher.seal("https://example.com/h")
    with pytest.raises(SecretsUnavailable):
        cipher.open(token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:])


def test_rows_from_before_sealing_are_read_as_they_are() -> None:
    row = {"url": "https://example.com/h?t=1", "secret": "whsec-plain", "sealed": False, "url_hint": None,
           "secret_hint": None}
    assert opened(None, row) == ("https://example.com/h?t=1", "whsec-plain")
    assert hints(row) == ("https://example.com/…", "****")


def test_keys_are_checked_at_start_up_without_being_echoed() -> None:
    assert parse_keys(f"{NEW}, {OLD}") == (NEW, OLD) and parse_keys("") == ()
    with pytest.raises(ValueError, match="channel key 2 of 2") as caught:
        parse_keys(f"{NEW},not-a-key-at-all")
    assert "not-a-key-at-all" not in str(caught.value)
    with pytest.raises(ValueError, match="channel key 1 of 1"):
        GuardrailsSettings(channel_keys="hunter2")  # type: ignore[arg-type]
    assert GuardrailsSettings(channel_keys=f"{NEW},{OLD}").channel_cipher() is not None  # type: ignore[arg-type]
    assert GuardrailsSettings(channel_keys=None).channel_cipher() is None


@pytest.mark.parametrize(("kind", "url", "problem"), [
    ("webhook", "https://example.com/h", None),
    ("webhook", "http://10.0.0.5:8080/h", None),  # where it leads is the egress policy's to say
    ("webhook", "", "a webhook channel needs a URL"),
    ("slack", "https://hooks.slack.com/services/T1/B2/xyz", None),
    ("slack", "https://HOOKS.slack.com/services/T1/B2/xyz", None),
    ("slack", "https://hooks.slack-gov.com/services/T1/B2/xyz", None),
    ("slack", "http://hooks.slack.com/services/T1/B2/xyz", "must be a Slack incoming-webhook URL"),
    ("slack", "https://hooks.slack.com:6379/services/x", "must be a Slack incoming-webhook URL"),
    ("slack", "https://hooks.slack.com.evil.example/services/x", "must be a Slack incoming-webhook URL"),
    ("slack", "https://u:p@hooks.slack.com/services/x", "must be a Slack incoming-webhook URL"),
    ("slack", "https://example.com/services/x", "must be a Slack incoming-webhook URL"),
    ("pagerduty", "", None),
    ("pagerduty", "https://events.pagerduty.com/v2/enqueue", "a pagerduty channel takes no URL"),
    ("pagerduty", "http://127.0.0.1:6379/", "a pagerduty channel takes no URL"),
])
def test_what_url_each_kind_takes(kind: str, url: str, problem: str | None) -> None:
    got = url_problem(kind, url)  # type: ignore[arg-type]
    assert got == problem if problem is None else (got or "").startswith(problem)
