"""Channel secrets at rest: a channel's URL and secret encrypted with the operator's key, shown masked.

What a channel holds is a credential: a webhook URL often carries a token, a Slack incoming-webhook URL is
one, a webhook's signing key and a PagerDuty routing key are. They are stored **sealed**: encrypted and
authenticated with Fernet (AES-128-CBC with HMAC-SHA256, from the `cryptography` package) under the
operator's keys, `LLMOPS_GUARDRAILS_CHANNEL_KEYS`: a comma-separated list, the first key encrypts and every
key decrypts (`MultiFernet`), so the operator rotates by putting a new key first and dropping the old one
once every row is sealed under the new one (`reseal`, which the notifier runs when it starts). A row read
from Postgres, a dump or a backup gives nothing without the key, and a token altered in the table does not
decrypt (no padding-oracle games, no silent garbage).

What a tenant sees instead (`mask_url`, `mask_secret`): `https://hooks.example.com/…` (scheme, host and
port, never user info, path or query) and `****abcd` (the last four characters, of a secret long enough
that they give nothing away), stored beside the sealed values (`url_hint`, `secret_hint`), so the API
never decrypts. Only the notifier opens them, to deliver.

Rows from before sealing (migration guardrails/0011) hold plain text with `sealed` false: read as they are,
and sealed by `reseal`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from llmops_guardrails.store import Executor
from llmops_guardrails.store import channels as channels_store

log = logging.getLogger("llmops_guardrails.channel_secrets")

MIN_REVEALED_LENGTH = 16
"""A secret shorter than this shows no characters at all, only `****`."""


class SecretsUnavailable(Exception):
    """A sealed value that none of the configured keys opens (a key was dropped too early, or the row was
    altered). The message says nothing of the value."""


def parse_keys(text: str) -> tuple[str, ...]:
    """The keys of `LLMOPS_GUARDRAILS_CHANNEL_KEYS` (comma- or space-separated); `ValueError` naming the
    position of one that is not a Fernet key (32 url-safe base64-encoded bytes), never the key itself."""
    keys = tuple(k for k in text.replace(",", " ").split() if k)
    for n, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(f"channel key {n} of {len(keys)} is not a Fernet key (32 url-safe base64 bytes: "
                             "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                             ".decode())'`)") from None
    return keys


class ChannelCipher:
    """Seals and opens channel values under the operator's keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a channel cipher needs at least one key")
        self._primary = Fernet(keys[0])
        self._all = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def of(cls, keys: str) -> ChannelCipher | None:
        """From the setting's text; None when it is empty (no key configured)."""
        parsed = parse_keys(keys)
        return cls(parsed) if parsed else None

    def seal(self, value: str) -> str:
        """`value` encrypted under the first key; '' stays '' (no secret is not a secret)."""
        return self._primary.encrypt(value.encode()).decode() if value else ""

    def open(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretsUnavailable("a sealed channel value opens with none of the configured keys") from None

    def is_current(self, token: str) -> bool:
        """Sealed under the first key (nothing to reseal)."""
        if not token:
            return True
        try:
            self._primary.decrypt(token.encode())
        except InvalidToken:
            return False
        return True


def mask_url(url: str) -> str:
    """`scheme://host[:port]/…`: where it goes, without the path, query or user info that carry tokens."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "…"
    if not parts.scheme or not host:
        return "…"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}/…"


def mask_secret(secret: str) -> str | None:
    """`****` and the last four characters (none of a short secret); None without a secret."""
    if not secret:
        return None
    return "****" + (secret[-4:] if len(secret) >= MIN_REVEALED_LENGTH else "")


@dataclass(frozen=True)
class Sealed:
    """What a channel row stores of a URL and a secret: the sealed values and their masks."""

    url: str
    secret: str
    url_hint: str | None
    secret_hint: str | None

    def columns(self) -> dict[str, Any]:
        return {"url": self.url, "secret": self.secret, "url_hint": self.url_hint,
                "secret_hint": self.secret_hint, "sealed": True}


def seal(cipher: ChannelCipher, *, url: str, secret: str) -> Sealed:
    """A URL ('' for a channel without one: PagerDuty) and a secret ('' for none), sealed, with their masks."""
    return Sealed(cipher.seal(url), cipher.seal(secret), mask_url(url) if url else None, mask_secret(secret))


def opened(cipher: ChannelCipher | None, row: Mapping[str, Any]) -> tuple[str, str]:
    """(url, secret) of a channel row, in clear: for the notifier's delivery, nothing else.
    `SecretsUnavailable` when a sealed row cannot be opened (or no key is configured)."""
    if not row["sealed"]:
        return row["url"], row["secret"]
    if cipher is None:
        raise SecretsUnavailable("no channel key is configured")
    return cipher.open(row["url"]), cipher.open(row["secret"])


def hints(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """What the API shows of a row's URL and secret (masked from the plain text of a row not yet sealed)."""
    if row["sealed"]:
        return row["url_hint"], row["secret_hint"]
    return (mask_url(row["url"]) if row["url"] else None), mask_secret(row["secret"])


@dataclass(frozen=True)
class Resealed:
    sealed: int  # plain-text rows sealed
    rekeyed: int  # rows sealed under an older key, sealed again under the first
    unreadable: int  # rows no configured key opens: left as they are (their deliveries park)


async def reseal(db: Executor, cipher: ChannelCipher) -> Resealed:
    """Every channel's values sealed under the first key: plain-text rows (from before migration 0011) are
    sealed, rows under an older key are sealed again (key rotation). A row changed meanwhile (the API)
    is left to its writer. Idempotent, and safe to run from several processes at once."""
    sealed = rekeyed = unreadable = 0
    for row in await channels_store.secret_columns(db):
        if row["sealed"] and cipher.is_current(row["url"]) and cipher.is_current(row["secret"]):
            continue
        try:
            url, secret = opened(cipher, row)
        except SecretsUnavailable:
            unreadable += 1
            log.error("a channel's sealed values open with none of the configured keys; its deliveries park "
                      "until a key that opens them is configured", extra={"channel_id": row["channel_id"]})
            continue
        new = seal(cipher, url=url, secret=secret)
        if await channels_store.replace_secrets(db, channel_id=row["channel_id"], old_url=row["url"],
                                                old_secret=row["secret"], values=new.columns()):
            if row["sealed"]:
                rekeyed += 1
            else:
                sealed += 1
    if sealed or rekeyed or unreadable:
        log.info("channel secrets resealed", extra={"sealed": sealed, "rekeyed": rekeyed, "unreadable": unreadable})
    return Resealed(sealed, rekeyed, unreadable)
