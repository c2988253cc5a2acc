"""The rule recognizers' preconditions (`detector._PRECONDITIONS`) are necessary: wherever a recognizer finds
something, its precondition holds on the text. Checked on the PII set and on crafted forms of each format."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from presidio_analyzer.predefined_recognizers import IpRecognizer, UsSsnRecognizer

from llmops_guardrails.detectors.pii.detector import _PRECONDITIONS
from llmops_guardrails.pii_eval import load_samples

PII_DATA = Path(__file__).resolve().parents[6] / "shared/data/pii/synth_dataset_v2.json"

IPS = [
    "192.168.0.1", "10.0.0.0/8", "8.8.8.8:53", "255.255.255.255", "1.2.3.4", "01.02.03.004",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a%eth0",
    "::1", "::", "::/0", "1::", "1:2:3:4:5:6:7::", "::ffff:192.0.2.128", "64:ff9b::192.0.2.33",
    "1:2:3:4:5:6:7:8", "a:b:c:d:e:f:0:1/64", "::ffff:0:10.0.0.1", "2001:DB8:0:0:8:800:200C:417A",
]


def test_the_ip_precondition_holds_wherever_the_ip_recognizer_finds() -> None:
    recognizer = IpRecognizer()
    found = 0
    for ip in IPS:
        for frame in ("{}", "host {} is down", "(at {}).", "IP:{}", "x{}y", "{}\n{}"):
            text = frame.format(ip, ip)
            if recognizer.analyze(text, ["IP_ADDRESS"], None):
                found += 1
                assert _PRECONDITIONS["IP_ADDRESS"].search(text), text
    assert found > 80


def test_the_ip_precondition_holds_on_the_pii_set() -> None:
    recognizer = IpRecognizer()
    found = 0
    for sample in load_samples(PII_DATA):
        if recognizer.analyze(sample.text, ["IP_ADDRESS"], None):
            found += 1
            assert _PRECONDITIONS["IP_ADDRESS"].search(sample.text), sample.text
    assert found > 10


@pytest.mark.parametrize("text", ["Office hours are 8:00 to 20:00.", "version 3.11 is out", "a: b, c: d",
                                  "ratio 1:2", "Ticket 4-c1b04ffb: hello"])
def test_ordinary_text_fails_the_ip_precondition(text: str) -> None:
    assert not _PRECONDITIONS["IP_ADDRESS"].search(text)


@pytest.mark.parametrize("text", ["Created: 1978-04-13 12:20:39", "at 03:07:43, 2018.01.14", "v1.2.3 at 1:2:3:4:5:6:7",
                                  "ab:cd:ef:01:23:45 (a MAC address)"])
def test_times_dates_and_short_colon_runs_fail_the_ip_precondition(text: str) -> None:
    """IPv6 without "::" is eight groups (seven colons), IPv4 four groups: a time or a date is neither."""
    assert not _PRECONDITIONS["IP_ADDRESS"].search(text)


def test_the_ip_precondition_holds_on_random_strings_of_ip_characters() -> None:
    recognizer = IpRecognizer()
    rng = random.Random(17)
    alphabet = "0123456789abcdefABCDEF:.:.:. /%x"
    found = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(3, 48)))
        if recognizer.analyze(text, ["IP_ADDRESS"], None):
            found += 1
            assert _PRECONDITIONS["IP_ADDRESS"].search(text), text
    assert found > 200


SSNS = ["536-90-4399", "536 90 4399", "536.90.4399", "536904399", "53690-4399", "536-904399", "773-11-2837",
        "212-67-3409", "457-55-5462", "078-05-1120", "123-45-6789"]


def test_the_ssn_precondition_holds_wherever_the_ssn_recognizer_finds() -> None:
    recognizer = UsSsnRecognizer()
    found = 0
    for ssn in SSNS:
        for frame in ("{}", "SSN: {}.", "my social is {}, thanks", "({})", "{}\n{}", "id {}x", "x{} y"):
            text = frame.format(ssn, ssn)
            if recognizer.analyze(text, ["US_SSN"], None):
                found += 1
                assert _PRECONDITIONS["US_SSN"].search(text), text
    assert found > 35


def test_the_ssn_precondition_holds_on_the_pii_set_and_skips_longer_digit_runs() -> None:
    recognizer = UsSsnRecognizer()
    found = 0
    for sample in load_samples(PII_DATA):
        if recognizer.analyze(sample.text, ["US_SSN"], None):
            found += 1
            assert _PRECONDITIONS["US_SSN"].search(sample.text), sample.text
    assert found > 10
    # phone and card numbers hold nine digits in a row without being one of the SSN shapes
    for text in ("call +1 (555) 123-4567", "card 4111 1111 1111 1111", "order 12345678901"):
        assert not recognizer.analyze(text, ["US_SSN"], None)
        assert not _PRECONDITIONS["US_SSN"].search(text), text


def _email_results(recognizer: object, text: str, whole: bool) -> list[tuple[object, ...]]:
    from presidio_analyzer import PatternRecognizer

    from llmops_guardrails.detectors.pii.recognizers import OfflineEmailRecognizer

    assert isinstance(recognizer, OfflineEmailRecognizer)
    found = (PatternRecognizer.analyze(recognizer, text, ["EMAIL_ADDRESS"], None) if whole
             else recognizer.analyze(text, ["EMAIL_ADDRESS"], None))
    why = [r.analysis_explanation for r in found]
    return [(r.entity_type, r.start, r.end, r.score, w and w.textual_explanation, w and w.pattern, w and w.score,
             sorted((r.recognition_metadata or {}).items())) for r, w in zip(found, why, strict=True)]


EMAILS = ["jane@example.com", "j.o'neil+tag@mail.example.co.uk", "a@b.io", "x-y_z@sub-domain.example-host.org",
          "anna@localhost", "@example.com", "jane@", "jane@@example.com", "e@x.c", "Ünal@exämple.de", "me@ex.com."]


def test_the_email_recognizer_on_the_words_around_the_at_signs_finds_what_it_finds_on_the_whole_text() -> None:
    """`OfflineEmailRecognizer.analyze` runs presidio's pattern only from the word of the first "@" to the word of the
    last one: the same results as presidio's whole-text run, on the PII set, crafted addresses in frames, and random
    strings of e-mail characters and separators."""
    from llmops_guardrails.detectors.pii.recognizers import OfflineEmailRecognizer

    recognizer = OfflineEmailRecognizer()
    texts = [s.text for s in load_samples(PII_DATA)]
    for a in EMAILS:
        for b in EMAILS:
            for frame in ("{} {}", "mail {}, or {}.", "<{}>\n({})", "{}{}", "x{}\t{}y", "{},{}", "\u3000{}\u00a0{} "):
                texts.append(frame.format(a, b))
    rng = random.Random(17)
    alphabet = "ab.@-_+'é1 \n\t,;()<>" + "comx"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(3, 60))) for _ in range(20_000)]
    found = shortened = 0
    for text in texts:
        ours, whole = _email_results(recognizer, text, False), _email_results(recognizer, text, True)
        assert ours == whole, text
        found += bool(whole)
        shortened += "@" in text and any(c.isspace() for c in text)  # (most of them cut short)
    assert found > 600 and shortened > 10_000
