"""Privacy outside prompt text, pure: the user pseudonym and a cheap scrubber for short free text.

**Pseudonyms.** An event's `user_id` is the app's own id for a person (often an e-mail address or an
account number). It is stored, and leaves the guardrails worker, only as `pseudonym(tenant_id, user_id,
key)`: `u_` and the first 20 hex digits of HMAC-SHA-256(key, tenant_id + NUL + user_id) under the
operator's secret `LLMOPS_PSEUDONYM_KEY`. The same user of one tenant always gets the same pseudonym (usage
by user still adds up), the same id in two tenants gets two, and nobody without the key can compute the
pseudonym of a guessed id. Every process derives it the same way, so the guardrails worker's clean events
and billing's ledger agree. A value that already is a pseudonym is returned as it is (`is_pseudonym`): an
event from the clean topic, or a pseudonym an API caller pastes back, is not hashed twice.

**The scrubber.** `scrub(text)` replaces what is plainly personal data or a credential in short free text
(tags, the judge's reasoning) by its label, `[EMAIL_ADDRESS]`: e-mail addresses, phone numbers (10 to 15
digits, or 8 to 15 after a `+`), card numbers (13 to 19 digits passing Luhn), IBANs (mod-97 checked), IPv4
and IPv6 addresses, and credentials (private keys, JWTs, tokens with a known prefix, `Bearer` values,
values assigned to `password`/`token`/`api_key`/..., and long random-looking tokens). It is regular
expressions only, no NER: where the guardrails service's policy engine is not at hand (billing reads the raw
topic; the evaluator stores what its judge wrote). It errs towards masking: an epoch timestamp in a tag is
masked as a phone number. UUIDs are left alone. Every pattern starts at a token boundary, so its time is
linear in the text.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable

PSEUDONYM_PREFIX = "u_"
PSEUDONYM_HEX = 20
DEV_PSEUDONYM_KEY = b"llmops-dev-pseudonym-key"  # the settings' default: set a secret of your own
_PSEUDONYM = re.compile(rf"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX}}}")


def is_pseudonym(value: str) -> bool:
    """Whether `value` has the form of a pseudonym (`u_` and 20 lower-case hex digits)."""
    return _PSEUDONYM.fullmatch(value) is not None


def pseudonym(tenant_id: str, user_id: str, key: bytes) -> str:
    """The tenant-scoped pseudonym of `user_id`; a pseudonym already is returned unchanged."""
    if is_pseudonym(user_id):
        return user_id
    message = f"{tenant_id}\0{user_id}".encode("utf-8", "surrogatepass")
    return PSEUDONYM_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def pseudonym_or_none(tenant_id: str, user_id: str | None, key: bytes) -> str | None:
    return None if user_id is None else pseudonym(tenant_id, user_id, key)


# --------------------------------------------------------------------------------------------------
# The scrubber. One alternation, tried in this order at each position; a group named `keep_*` is left
# as it is (so a UUID's digits are never taken for a phone number).

_RUN = r"A-Za-z0-9_+/=-"  # the characters of a token (base64, base64url)
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("keep_uuid", r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
                  r"(?![0-9A-Za-z])"),
    ("private_key", r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----"
                    r"(?:[\s\S]*?-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"),
    ("jwt", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]*+"),
    ("prefixed", r"(?<![A-Za-z0-9_-])(?:(?:sk|pk|rk)[-_](?:live_|test_|proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}+"
                 r"|gh[pousr]_[A-Za-z0-9]{20,}+|github_pat_[A-Za-z0-9_]{20,}+|glpat-[A-Za-z0-9_-]{20,}+"
                 r"|xox[abposr]-[A-Za-z0-9-]{10,}+|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}|AIza[0-9A-Za-z_-]{35}"
                 r"|hf_[A-Za-z]{30,}+|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})"
                 r"(?![A-Za-z0-9_-])"),
    ("bearer", r"(?<![A-Za-z0-9_])(?i:bearer|basic)[ \t]++[A-Za-z0-9._~+/=-]{12,}+"),
    ("assignment", r"(?<![A-Za-z0-9_])(?i:[a-z0-9_.-]{0,30}?(?:secret|passw(?:or)?d|pwd|token|api[_-]?key|apikey"
                   r"|access[_-]?key|credential))[\"']?[ \t]*(?:[:=]|=>|:=)[ \t]*[\"']?"
                   r"(?P<assigned>[^\s\"',;]{6,200})"),
    ("email", r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9_.%+-]++@(?:[A-Za-z0-9-]++\.(?=[A-Za-z0-9-]))++[A-Za-z]{2,}+"
              r"(?![A-Za-z0-9-])"),
    ("iban", r"(?<![A-Za-z0-9])(?i:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)(?![A-Za-z0-9])"),
    ("ipv4", r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\w|\.[0-9])"),
    ("ipv6", r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45}+(?![\w:])"),
    ("digits", r"(?<![A-Za-z0-9+])\+?\(?[0-9](?:[ .()/-]{0,2}[0-9]){6,}+(?![A-Za-z0-9:])"),
    ("token", rf"(?<![{_RUN}])[{_RUN}]{{32,}}+(?![{_RUN}])"),
)
_SCRUB = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PATTERNS))
_LABELS = {"private_key": "SECRET", "jwt": "SECRET", "prefixed": "SECRET", "bearer": "SECRET",
           "assignment": "SECRET", "token": "SECRET", "email": "EMAIL_ADDRESS", "iban": "IBAN_CODE",
           "ipv4": "IP_ADDRESS", "ipv6": "IP_ADDRESS"}


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits_label(text: str) -> str | None:
    digits = "".join(c for c in text if c.isdigit())
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "CREDIT_CARD"
    if len(digits) >= 10 or (text.startswith("+") and len(digits) >= 8):
        return "PHONE_NUMBER"  # or several run together: masked all the same
    return None


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _looks_random(token: str) -> bool:
    """Upper and lower case letters and digits, and near 4 bits a character or more (hex has at most 4)."""
    return (any(c.islower() for c in token) and any(c.isupper() for c in token) and any(c.isdigit() for c in token)
            and _entropy(token) >= 4.0)


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    text = match.group()
    if kind.startswith("keep_"):
        return text
    if kind == "assignment":
        return text[:match.start("assigned") - match.start()] + "[SECRET]"
    if kind == "digits":
        label = _digits_label(text)
        return text if label is None else f"[{label}]"
    if kind == "iban" and not iban_valid(text):
        return text
    if kind in ("ipv4", "ipv6") and not _valid_ip(text):
        return text
    if kind == "token" and not _looks_random(text):
        return text
    return f"[{_LABELS[kind]}]"


def scrub(text: str) -> str:
    """`text` with e-mail addresses, phone, card and IBAN numbers, IP addresses and credentials replaced by
    their labels (see the module docstring)."""
    return _SCRUB.sub(_replace, text)


def scrub_all(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(scrub(t) for t in texts)
