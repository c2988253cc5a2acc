"""Judge credentials: keys the operator grants, by name, to tenants, for given endpoints only.

A tenant's evaluator names a credential (`judge.credential`), never an environment variable or a key. The
operator declares the credentials (`LLMOPS_EVALUATOR_CREDENTIALS`, JSON, or the file named by
`LLMOPS_EVALUATOR_CREDENTIALS_FILE`; docs/security.md):

    {"openai-shared": {"key_env": "OPENAI_JUDGE_KEY", "base_urls": ["https://api.openai.com/v1"],
                       "tenants": ["*"]},
     "acme-gateway":  {"key_env": "ACME_GATEWAY_KEY", "base_urls": ["https://llm.acme.example/v1"],
                       "tenants": ["acme"]}}

A credential's key is in the variable `key_env` (of the worker's environment) or, in a credentials file,
`key` itself. It is sent only to the endpoints in `base_urls` (an evaluator's `base_url` must be one of
them, compared as normalised URLs: scheme and host in lower case, no default port, no trailing slash) and
only for the tenants in `tenants` (`"*"`: every tenant).

Whatever is wrong (no such credential, not bound to the tenant, not for that endpoint, its variable not
set), what a tenant is told is `CREDENTIAL_UNAVAILABLE`, nothing more: a tenant cannot learn which
credentials exist for others, nor anything of the worker's environment. `CredentialUnavailable.reason`
says the rest, for the operator's logs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, TypeAdapter, model_validator

from llmops_evaluator.config import EnvVarName
from llmops_shared.contract import Identifier
from llmops_shared.egress import EgressPolicy, Resolver, egress_policy

log = logging.getLogger("llmops_evaluator.credentials")

CREDENTIAL_UNAVAILABLE = "credential unavailable"
HttpUrl = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_url(url: str) -> str:
    """`url` compared as an endpoint: scheme and host in lower case, no default port, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or _DEFAULT_PORTS.get(parts.scheme.lower()) == port else f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, ""))


class CredentialUnavailable(Exception):
    """A credential that cannot be used here. `str()` is what a tenant may see; `reason` is for logs."""

    def __init__(self, reason: str, *, field: str = "credential") -> None:
        super().__init__(CREDENTIAL_UNAVAILABLE)
        self.reason = reason
        self.field = field  # which field of `judge` is at fault: "credential" or "base_url"


class JudgeCredential(BaseModel):
    """One credential the operator grants: a key, where it may be sent, and to which tenants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_env: EnvVarName | None = None
    """The variable holding the key, in the worker's environment (or the CLI's)."""
    key: SecretStr | None = None
    """The key itself (in a credentials file only: not in a variable that every process sees)."""
    base_urls: Annotated[list[HttpUrl], Field(min_length=1)]
    """The endpoints the key may be sent to; an evaluator's `base_url` must be one of them."""
    tenants: Annotated[list[Identifier | Literal["*"]], Field(min_length=1)]
    """The tenants that may name it, or `["*"]` for every tenant."""

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.key_env is None) == (self.key is None):
            raise ValueError("give exactly one of key_env (the variable holding the key) and key")
        for url in self.base_urls:
            parts = urlsplit(url)
            if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
                raise ValueError(f"base_urls: {url!r} is not an http(s) URL without credentials")
        return self

    def serves(self, tenant_id: str) -> bool:
        return "*" in self.tenants or tenant_id in self.tenants

    def sent_to(self, base_url: str) -> bool:
        return normal_url(base_url) in {normal_url(u) for u in self.base_urls}


CREDENTIALS = TypeAdapter(dict[Identifier, JudgeCredential])


def read_credentials_file(path: Path) -> dict[str, JudgeCredential]:
    """The credentials of a JSON file (the same shape as `LLMOPS_EVALUATOR_CREDENTIALS`)."""
    return CREDENTIALS.validate_python(json.loads(path.read_text(encoding="utf-8")))


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class JudgeCredentials:
    """The operator's credentials, and the one question asked of them: may this tenant send this credential's
    key to this endpoint, and what is the key.

    With a credentials `file`, a change to it takes effect without a restart: `reload()` (the worker calls it
    before each batch's evaluator check, the API before each check) re-reads the file when its modification
    time, size or inode moved, and `version` counts the changes, so the worker knows to rebuild its judges.
    A file that no longer reads (bad JSON, a bad entry, a name also in the setting) is logged and the
    credentials read before stay in force."""

    def __init__(self, credentials: Mapping[str, JudgeCredential] | None = None, *,
                 environ: Mapping[str, str] | None = None, file: Path | None = None) -> None:
        self._inline = dict(credentials or {})
        self._credentials = dict(self._inline)
        self._environ = environ
        self._file = file
        self._stamp: tuple[int, int, int] | None = None
        self.version = 0
        if file is not None:
            self._credentials = self._with_file(read_credentials_file(file))  # unreadable at start-up: fails
            self._stamp = _file_stamp(file)

    def _with_file(self, from_file: Mapping[str, JudgeCredential]) -> dict[str, JudgeCredential]:
        twice = sorted(set(from_file) & set(self._inline))
        if twice:
            raise ValueError(f"credentials declared both in the setting and in the file: {', '.join(twice)}")
        return {**self._inline, **from_file}

    def reload(self) -> bool:
        """Re-read the credentials file if it changed; True when the credentials in force changed."""
        if self._file is None:
            return False
        stamp = _file_stamp(self._file)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = self._with_file(read_credentials_file(self._file))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.error("the judge credentials file does not read; the credentials read before stay in force",
                      extra={"file": str(self._file), "error": str(exc)[:300]})
            return False
        if fresh == self._credentials:
            return False
        self._credentials = fresh
        self.version += 1
        log.info("judge credentials reloaded", extra={"file": str(self._file), "credentials": sorted(fresh)})
        return True

    def __contains__(self, name: str) -> bool:
        return name in self._credentials

    def check(self, *, name: str, tenant_id: str, base_url: str) -> JudgeCredential:
        """The credential, if `tenant_id` may use it with `base_url`; else `CredentialUnavailable`."""
        self.reload()
        credential = self._credentials.get(name)
        if credential is None:
            raise CredentialUnavailable(f"no credential {name!r} is declared")
        if not credential.serves(tenant_id):
            raise CredentialUnavailable(f"credential {name!r} is not granted to tenant {tenant_id!r}")
        if not credential.sent_to(base_url):
            raise CredentialUnavailable(f"credential {name!r} is not for the endpoint {base_url!r}",
                                        field="base_url")
        return credential

    def api_key(self, *, name: str, tenant_id: str, base_url: str) -> str:
        """The key `tenant_id` may send to `base_url` under credential `name`; else `CredentialUnavailable`."""
        credential = self.check(name=name, tenant_id=tenant_id, base_url=base_url)
        if credential.key is not None:
            value = credential.key.get_secret_value()
        else:
            environ = os.environ if self._environ is None else self._environ
            value = environ.get(credential.key_env or "", "")
        if not value:
            raise CredentialUnavailable(f"credential {name!r}: its key variable {credential.key_env} is not set")
        return value


@dataclass(frozen=True)
class JudgeAccess:
    """What a tenant's judge may use and reach: the operator's credentials and the egress policy. The API
    checks a config against it when an evaluator is created or replaced; the worker, when it connects."""

    credentials: JudgeCredentials
    egress: EgressPolicy

    @classmethod
    def of(cls, settings: Any, *, resolver: Resolver | None = None) -> JudgeAccess:
        """From `EvaluatorSettings` (`credentials`, `credentials_file`, `egress_allow`)."""
        return cls(settings.judge_credentials(), egress_policy(settings, resolver=resolver))
