"""Secrets: credentials pasted into prompts or leaking from completions.

Rules in the spirit of gitleaks' rule set: each names a credential format with a distinctive prefix or
structure, and scores how sure a match is (0.95 for a prefixed token or a PEM private key, less for looser
shapes). A generic rule catches other high-entropy tokens next to a word like "secret" or "token", and
(lower) anywhere. Where a specific rule matches, the generic ones stay quiet on that span.

Generic rules: a value assigned to a secret-like name (`api_key = "..."`, `password: ...`), 8+ characters
and not a placeholder, scores 0.6 plus up to 0.3 with its Shannon entropy; a free-standing token of 20 to
100 characters mixing letters and digits with entropy >= `min_entropy` + 0.5 bits/char scores 0.4 plus up
to 0.3 with its entropy (so under the default alert threshold of 0.5 only when barely random). Hex
strings and UUIDs are left alone (commit ids and request ids are far more common than hex secrets).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass

import orjson

from llmops_guardrails.detectors.keys import KeySet, fold, long_tokens
from llmops_guardrails.findings import Detector, Hit


@dataclass(frozen=True)
class SecretRule:
    """`keys`: substrings one of which every match contains (`keys.KeySet`: the pattern runs only on texts that
    hold one), as written, or lower-case and looked up in the folded text when `folded` (patterns with (?i))."""

    name: str
    pattern: re.Pattern[str]
    score: float
    group: int = 0  # the group that is the secret itself
    keys: tuple[str, ...] = ()
    folded: bool = False
    also: tuple[str, ...] = ()  # lower-case keys one of which every match holds in the folded text as well


def _rule(name: str, pattern: str, score: float, group: int = 0, flags: int = 0, *, keys: tuple[str, ...],
          folded: bool = False, also: tuple[str, ...] = ()) -> SecretRule:
    return SecretRule(name, re.compile(pattern, flags), score, group, keys, folded, also)


_B = r"(?<![A-Za-z0-9_-])"  # token start
_E = r"(?![A-Za-z0-9_-])"  # token end

RULES: tuple[SecretRule, ...] = (
    _rule("private_key", r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----"
          r"(?:[\s\S]{0,10000}?-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----)?", 0.99, keys=("-----BEGIN",)),
    _rule("aws_access_key_id", _B + r"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})" + _E, 0.95, 1,
          keys=("A3T", "AKIA", "ASIA", "ABIA", "ACCA")),
    _rule("aws_secret_access_key",
          r"(?i)aws.{0,20}?(?:secret|private).{0,20}?['\"=:\s]+([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])", 0.9, 1,
          keys=("aws",), folded=True),
    _rule("github_token", _B + r"((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255})" + _E, 0.95, 1,
          keys=("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _rule("github_fine_grained_pat", _B + r"(github_pat_[A-Za-z0-9_]{82})" + _E, 0.95, 1, keys=("github_pat_",)),
    _rule("gitlab_token", _B + r"(glpat-[A-Za-z0-9_-]{20,})" + _E, 0.95, 1, keys=("glpat-",)),
    _rule("slack_token", _B + r"(xox[abposr]-(?:\d+-)*[A-Za-z0-9-]{10,})" + _E, 0.95, 1, keys=("xox",)),
    _rule("slack_webhook", r"(https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{20,})", 0.9, 1,
          keys=("https://hooks.slack.com/",)),
    _rule("stripe_secret_key", _B + r"((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,247})" + _E, 0.95, 1,
          keys=("sk_live_", "sk_test_", "rk_live_", "rk_test_")),
    _rule("anthropic_api_key", _B + r"(sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{40,})" + _E, 0.97, 1,
          keys=("sk-ant-",)),
    _rule("openai_api_key", _B + r"(sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200})"
          + _E, 0.97, 1, keys=("sk-",)),
    _rule("openai_api_key", _B + r"(sk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_-]{40,300})" + _E, 0.9, 1, keys=("sk-",)),
    _rule("openai_api_key", _B + r"(sk-[A-Za-z0-9]{48})" + _E, 0.85, 1, keys=("sk-",)),
    _rule("google_api_key", _B + r"(AIza[0-9A-Za-z_-]{35})" + _E, 0.95, 1, keys=("AIza",)),
    _rule("huggingface_token", _B + r"(hf_[A-Za-z]{34})" + _E, 0.9, 1, keys=("hf_",)),
    _rule("npm_token", _B + r"(npm_[A-Za-z0-9]{36})" + _E, 0.9, 1, keys=("npm_",)),
    _rule("pypi_token", _B + r"(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})" + _E, 0.95, 1, keys=("pypi-AgEIcHlwaS5vcmc",)),
    _rule("sendgrid_api_key", _B + r"(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})" + _E, 0.95, 1, keys=("SG.",)),
    _rule("twilio_api_key", _B + r"(SK[0-9a-fA-F]{32})" + _E, 0.7, 1, keys=("SK",)),
    _rule("shopify_token", _B + r"(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})" + _E, 0.95, 1,
          keys=("shpat_", "shpca_", "shppa_", "shpss_")),
    _rule("azure_storage_key", r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)", 0.95, 1, keys=("accountkey=",), folded=True),
    _rule("gcp_service_account", r"\"type\"\s*:\s*\"service_account\"", 0.8, keys=('"service_account"',)),
    _rule("connection_string_password",
          r"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver)"
          r"://[^:\s/@]+:([^@\s/]{3,})@[^\s]+", 0.85, 1, keys=("://",),
          also=("postgres", "mysql", "mariadb", "mongodb", "redis", "amqp", "mssql", "sqlserver")),
    _rule("url_basic_auth", r"\bhttps?://[^:\s/@]{1,64}:([^@\s/]{6,})@[A-Za-z0-9.-]+", 0.7, 1, keys=("://",)),
)
_CASED = [i for i, r in enumerate(RULES) if not r.folded]
_FOLDED = [i for i, r in enumerate(RULES) if r.folded]
_CASED_KEYS = KeySet([RULES[i].keys for i in _CASED])
_FOLDED_KEYS = KeySet([RULES[i].keys for i in _FOLDED])

JWT = re.compile(_B + r"(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})" + _E)
ASSIGNMENT = re.compile(
    r"(?i)\b([a-z0-9_.-]*(?:secret|passw(?:or)?d|pwd|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|credential)"
    r"[a-z0-9_.-]*)\b[\"']?\s*(?:[:=]|=>|:=)\s*[\"']?([^\s\"',;]{8,200})"
)
# Necessary conditions, cheaper to test than the patterns: every ASSIGNMENT match holds a match of _ASSIGNMENT_GATE
# once folded (`keys.fold`: the gate needs no IGNORECASE, which costs Python's `re` 5-10x here); every JWT match
# starts with "eyJ"; every CANDIDATE match is a run of 20+ non-space characters (searched in those only,
# `keys.long_tokens`).
_ASSIGNMENT_GATE = re.compile(
    r"(?:secret|passw(?:or)?d|pwd|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|credential)[a-z0-9_.-]*"
    r"[\"']?\s*[:=]")
# Every `_ASSIGNMENT_GATE` match holds one of these (each alternative of its name part does): a text's folded form
# without any is not searched (nine texts in ten: five substring checks instead of a regex search).
_ASSIGNMENT_KEYS = ("secret", "passw", "pwd", "token", "key", "credential")
# What may follow a key of `_ASSIGNMENT_KEYS` where `_ASSIGNMENT_GATE` matches: each of its words ends with one of
# the keys ("api_key", "auth_token") or starts with one whose rest `[a-z0-9_.-]*` takes ("password"), so wherever it
# matches, a key followed by this matches too. Tried at each occurrence of a key (`str.find`): most texts hold none,
# and the few that hold one ("monkey", "tokens") fail at once; the gate's search tried its words at each position.
_ASSIGNMENT_TAIL = re.compile(r"[a-z0-9_.-]*[\"']?\s*[:=]")
CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{20,100}(?![A-Za-z0-9+/_=-])")
PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|your[_-].*|<.*>|\$\{.*\}|example.*|changeme|password|null|none|true|false)$")


def shannon_entropy(value: str) -> float:
    """Bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _may_assign(folded: str) -> bool:
    """A necessary condition of `_ASSIGNMENT_GATE.search(folded)` (and so of an `ASSIGNMENT` match): a key of
    `_ASSIGNMENT_KEYS` followed by `_ASSIGNMENT_TAIL`."""
    for key in _ASSIGNMENT_KEYS:
        i = folded.find(key)
        while i != -1:
            if _ASSIGNMENT_TAIL.match(folded, i + len(key)):
                return True
            i = folded.find(key, i + 1)
    return False


def _rules_for(text: str, folded: str) -> list[int]:
    """The indices of the rules that may match `text` (one of their keys is in it), in order."""
    return sorted([_CASED[j] for j in _CASED_KEYS.rules(text)] + [_FOLDED[j] for j in _FOLDED_KEYS.rules(folded)])


def _valid_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        return isinstance(orjson.loads(decoded), dict)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return False


def _looks_random(token: str, min_entropy: float) -> bool:
    classes = sum((any(c.islower() for c in token), any(c.isupper() for c in token),
                   any(c.isdigit() for c in token)))
    if classes < 2 or not any(c.isdigit() for c in token):
        return False
    if re.fullmatch(r"[0-9a-fA-F-]+", token):  # hex digests and UUIDs: ids far more often than secrets
        return False
    return shannon_entropy(token) >= min_entropy


class SecretsDetector:
    detector = Detector.SECRETS

    def __init__(self, *, generic: bool = True, min_entropy: float = 3.5) -> None:
        self.generic = generic
        self.min_entropy = min_entropy

    def detect(self, text: str) -> list[Hit]:
        hits: list[Hit] = []
        taken: list[tuple[int, int]] = []
        folded = fold(text)
        for i in _rules_for(text, folded):
            rule = RULES[i]
            if rule.also and not any(k in folded for k in rule.also):
                continue
            for m in rule.pattern.finditer(text):
                _add(hits, taken, rule.name, m.start(rule.group), m.end(rule.group), score=rule.score)
        for m in (JWT.finditer(text) if "eyJ" in text else ()):
            if _valid_jwt(m.group(1)):
                _add(hits, taken, "jwt", m.start(1), m.end(1), score=0.9)
        if self.generic:
            for m in (ASSIGNMENT.finditer(text) if _may_assign(folded) else ()):
                value = m.group(2)
                if PLACEHOLDER.match(value) or not _free(taken, m.start(2), m.end(2)):
                    continue
                entropy = shannon_entropy(value)
                if entropy >= 2.5:
                    _add(hits, taken, "generic_secret_assignment", m.start(2), m.end(2),
                         score=0.6 + min(0.3, max(0.0, entropy - 2.5) / 5))
            for m in (m for start, end in long_tokens(text, 20) for m in CANDIDATE.finditer(text, start, end)):
                token = m.group()
                if _free(taken, m.start(), m.end()) and _looks_random(token, self.min_entropy + 0.5):
                    _add(hits, taken, "generic_high_entropy", m.start(), m.end(),
                         score=0.4 + min(0.3, (shannon_entropy(token) - self.min_entropy - 0.5) / 3))
        hits.sort(key=lambda h: h.start)
        return hits


def _free(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    """No span of `taken` overlaps [start, end)."""
    return all(end <= s or start >= e for s, e in taken)


def _add(hits: list[Hit], taken: list[tuple[int, int]], kind: str, start: int, end: int, *, score: float) -> None:
    """A hit for [start, end) unless an earlier one overlaps it (module functions, not closures over `detect`'s
    lists: a closure and its environment are a reference cycle, left for the collector, for every text)."""
    if _free(taken, start, end):
        hits.append(Hit(Detector.SECRETS, kind, start, end, round(min(score, 1.0), 4)))
        taken.append((start, end))
