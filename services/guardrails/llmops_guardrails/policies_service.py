"""Stored policies: versioned YAML overrides per tenant (`app_id = ''`) and per app, in `guardrail_policies`.

The effective policy of an event is **default <- tenant <- app** (latest version of each). `PolicyStore`
caches effective policies per (tenant, app), so the stream worker and the API read Postgres once per
tenant/app, not per event or request. A change is in force at once: each process holds a
`ConfigWatcher` (Postgres LISTEN/NOTIFY on `guardrail_policies`, a trigger of migration guardrails/0003);
the cache remembers the watcher's stamp it was filled under, and a moved stamp empties it before the next
read. `policy_cache_ttl_s` remains the fallback: an entry is re-read at least that often, which is what
bounds staleness while the watcher is disconnected (it moves every stamp when it reconnects).

`policy_version` names what was applied, for findings and clean events: `default`, `t3` (tenant version
3), `a2` (app version 2) or `t3.a2`.

A stored document that no longer validates (the shipped default changed under it) is not used: the
worker falls back to the next level up (app -> tenant -> default) and logs an error naming the tenant,
app and version, never the document. Writing one through the API cannot happen: a PUT validates the
merged result, and a tenant-wide PUT also re-validates every app override of that tenant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import yaml
from pydantic import ValidationError

from llmops_guardrails.policy import Policy, PolicyError, default_document, load_policy, parse_document
from llmops_guardrails.schemas import (
    EffectivePolicyInvalid,
    EffectivePolicyPublic,
    PoliciesPublic,
    PolicyLatest,
    PolicyPublic,
    PolicyPut,
    PolicyVersion,
    PolicyVersionsPublic,
    PolicyView,
)
from llmops_guardrails.store import Executor
from llmops_guardrails.store import policies as policies_store
from llmops_shared import problems
from llmops_shared.config_changes import ConfigWatcher

log = logging.getLogger(__name__)

Target = tuple[str, str]  # (tenant_id, app_id); app_id '' = tenant-wide
POLICY_TABLES = ("guardrail_policies",)
"""What the effective policies are read from: a change to it empties every `PolicyStore` (`ConfigWatcher`)."""


@dataclass(frozen=True)
class StoredPolicy:
    tenant_id: str
    app_id: str
    version: int
    document: str
    created_at: datetime
    created_by: str

    def public(self) -> PolicyPublic:
        return PolicyPublic(tenant_id=self.tenant_id, app_id=self.app_id or None, version=self.version,
                            document=self.document, created_at=self.created_at, created_by=self.created_by)


@dataclass(frozen=True)
class EffectivePolicy:
    policy: Policy
    version: str  # default | t<n> | a<n> | t<n>.a<n>


def version_label(tenant: StoredPolicy | None, app: StoredPolicy | None) -> str:
    parts = ([f"t{tenant.version}"] if tenant else []) + ([f"a{app.version}"] if app else [])
    return ".".join(parts) or "default"


def _row(r: asyncpg.Record) -> StoredPolicy:
    return StoredPolicy(r["tenant_id"], r["app_id"], r["version"], r["document"], r["created_at"], r["created_by"])


async def latest_documents(db: Executor, targets: Iterable[Target]) -> dict[Target, StoredPolicy]:
    """The latest stored version for each target and for each target's tenant (app '')."""
    listed = list(targets)
    wanted = set(listed) | {(t, "") for t, _ in listed}
    if not wanted:
        return {}
    tenants, apps = zip(*sorted(wanted), strict=True)
    rows = await policies_store.latest_of(db, tenant_ids=tenants, app_ids=apps)
    return {(r["tenant_id"], r["app_id"]): _row(r) for r in rows}


def effective_from(tenant: StoredPolicy | None, app: StoredPolicy | None, *,
                   base: dict[str, Any] | None = None) -> EffectivePolicy:
    """default <- tenant <- app; a stored level that does not validate is skipped (logged)."""
    levels: list[tuple[StoredPolicy | None, StoredPolicy | None]] = [(tenant, app)]
    if app is not None:
        levels.append((tenant, None))
    if tenant is not None:
        levels.append((None, None))
    last: PolicyError | None = None
    for t, a in levels:
        try:
            policy = load_policy(t.document if t else None, a.document if a else None, base=base)
        except PolicyError as exc:
            last = exc
            broken = a if a is not None else t
            log.error("stored guardrail policy is invalid; falling back to the level above", extra={
                "tenant_id": broken.tenant_id if broken else None, "app_id": broken.app_id if broken else None,
                "version": broken.version if broken else None, "errors": len(exc.errors)})
            continue
        return EffectivePolicy(policy, version_label(t, a))
    assert last is not None
    raise last


class PolicyStore:
    """Effective policies per (tenant, app): cached until `guardrail_policies` changes (when a `watcher` is
    given) and for at most `ttl_s` seconds (the fallback while the watcher is disconnected)."""

    def __init__(self, ttl_s: float, *, base: dict[str, Any] | None = None, watcher: ConfigWatcher | None = None
                 ) -> None:
        self.ttl_s = ttl_s
        self.base = base if base is not None else default_document()
        self.watcher = watcher
        self._cache: dict[Target, tuple[float, EffectivePolicy]] = {}
        self._stamp: tuple[int, ...] | None = None  # the watcher's stamp the cache was filled under

    def _follow_changes(self) -> tuple[int, ...] | None:
        """Empty the cache when the stamp moved; returns the stamp (None without a watcher). Called before
        reading Postgres: what a read returns is cached only if the stamp has not moved since, so nothing
        read before a change outlives it (a change committed during the read moves the stamp)."""
        if self.watcher is None:
            return None
        stamp = self.watcher.stamp(POLICY_TABLES)
        if stamp != self._stamp:
            if self._cache:
                log.debug("guardrail policies changed; cache emptied", extra={"entries": len(self._cache)})
            self._cache.clear()
            self._stamp = stamp
        return stamp

    async def effective(self, db: Executor, targets: Iterable[Target]) -> dict[Target, EffectivePolicy]:
        stamp = self._follow_changes()
        now = time.monotonic()
        wanted = set(targets)
        out: dict[Target, EffectivePolicy] = {}
        missing = []
        for target in wanted:
            hit = self._cache.get(target)
            if hit is not None and hit[0] > now:
                out[target] = hit[1]
            else:
                missing.append(target)
        if missing:
            stored = await latest_documents(db, missing)
            keep = self.watcher is None or self.watcher.stamp(POLICY_TABLES) == stamp == self._stamp
            for tenant_id, app_id in missing:
                eff = effective_from(stored.get((tenant_id, "")), stored.get((tenant_id, app_id)) if app_id else None,
                                     base=self.base)
                if keep:
                    self._cache[(tenant_id, app_id)] = (now + self.ttl_s, eff)
                out[(tenant_id, app_id)] = eff
            if len(self._cache) > 100_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return out

    async def one(self, db: Executor, tenant_id: str, app_id: str = "") -> EffectivePolicy:
        return (await self.effective(db, [(tenant_id, app_id)]))[(tenant_id, app_id)]

    def invalidate(self, tenant_id: str) -> None:
        """Forget a tenant's entries now (the API after its own PUT: read-your-writes before the notification)."""
        for key in [k for k in self._cache if k[0] == tenant_id]:
            del self._cache[key]


# --------------------------------------------------------------------------------------------------
# The API's (and the CLI's) service functions.

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


class InvalidPolicy(problems.Invalid):
    """422: a policy document that cannot be used. `errors` has one entry per problem, at `[location, field]`,
    its `msg` naming the path inside the document (`rules[0](id=pii-redact).threshold: ...`); `messages`
    lists the same texts."""

    def __init__(self, field: str, messages: Sequence[str], *, location: str = "body") -> None:
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        super().__init__(field, f"invalid policy: {messages[0] if messages else 'no detail'}{more}",
                         location=location)
        self.messages = list(messages)
        self.errors = [problems.FieldError(loc=[location, field], msg=m) for m in messages]


def read_submitted(body: bytes, content_type: str) -> str | dict[str, Any] | None:
    """The override a `PUT /v1/policy` carries: the YAML itself (a YAML or text content type), or the
    `document` of `{"document": ...}`. `InvalidPolicy` for a body of another shape."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() in YAML_TYPES:
        return body.decode("utf-8", "replace")
    try:
        return PolicyPut.model_validate_json(body or b"{}").document
    except ValidationError as exc:
        raise InvalidPolicy("document", ['expected {"document": <YAML text or mapping>}', *[
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)]]) from exc


def parse_submitted(document: str | dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """A submitted override as (YAML text to store, parsed mapping). Raises `PolicyError`."""
    if document is None:
        return "", {}
    if isinstance(document, dict):
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return text, document
    return document, parse_document(document, source="document")


async def get_stored(db: Executor, *, tenant_id: str, app_id: str, version: int | None = None) -> StoredPolicy | None:
    row = await policies_store.get_version(db, tenant_id=tenant_id, app_id=app_id, version=version)
    return _row(row) if row else None


async def list_versions(db: Executor, *, tenant_id: str, app_id: str) -> PolicyVersionsPublic:
    rows = await policies_store.list_versions(db, tenant_id=tenant_id, app_id=app_id)
    return PolicyVersionsPublic(versions=[
        PolicyVersion(version=r["version"], created_at=r["created_at"], created_by=r["created_by"]) for r in rows])


async def list_latest(db: Executor, *, tenant_id: str) -> PoliciesPublic:
    rows = await policies_store.list_latest(db, tenant_id=tenant_id)
    return PoliciesPublic(policies=[
        PolicyLatest(app_id=r["app_id"] or None, version=r["version"], created_at=r["created_at"],
                     created_by=r["created_by"]) for r in rows])


async def effective_policy(db: Executor, *, tenant_id: str, app_id: str) -> EffectivePolicy:
    """Strict: the effective policy of a tenant/app, raising `PolicyError` if a stored level is invalid."""
    stored = await latest_documents(db, [(tenant_id, app_id)])
    tenant, app = stored.get((tenant_id, "")), stored.get((tenant_id, app_id)) if app_id else None
    policy = load_policy(tenant.document if tenant else None, app.document if app else None)
    return EffectivePolicy(policy, version_label(tenant, app))


async def policy_view(db: Executor, *, tenant_id: str, app_id: str, version: int | None = None) -> PolicyView:
    """A stored override (the latest, or `version`: `NotFound` when there is none) and the effective policy,
    or why a stored level no longer validates."""
    stored = await get_stored(db, tenant_id=tenant_id, app_id=app_id, version=version)
    if version is not None and stored is None:
        raise problems.NotFound("no such policy version")
    effective: EffectivePolicyPublic | EffectivePolicyInvalid
    try:
        found = await effective_policy(db, tenant_id=tenant_id, app_id=app_id)
        effective = EffectivePolicyPublic(version=found.version, policy=found.policy.model_dump(mode="json"))
    except PolicyError as exc:
        effective = EffectivePolicyInvalid(errors=exc.errors)
    return PolicyView(stored=stored.public() if stored else None, effective=effective)


async def put_policy(pool: asyncpg.Pool, *, tenant_id: str, app_id: str, document: str | dict[str, Any] | None,
                     created_by: str) -> StoredPolicy:
    """Validate and store a new version of a tenant's (app_id '') or an app's override.

    Raises `InvalidPolicy` (each error names its path; errors of an app override re-validated under a new
    tenant policy are prefixed with the app).
    """
    try:
        stored = await _validate_and_store(pool, tenant_id=tenant_id, app_id=app_id, document=document,
                                           created_by=created_by)
    except PolicyError as exc:
        raise InvalidPolicy("document", exc.errors) from exc
    log.info("guardrail policy stored", extra={"tenant_id": tenant_id, "app_id": app_id, "version": stored.version})
    return stored


async def _validate_and_store(pool: asyncpg.Pool, *, tenant_id: str, app_id: str,
                              document: str | dict[str, Any] | None, created_by: str) -> StoredPolicy:
    text, parsed = parse_submitted(document)
    async with pool.acquire() as conn, conn.transaction():
        await policies_store.lock_tenant(conn, tenant_id=tenant_id)  # versions dense, validation on a stable picture
        if app_id:
            tenant = await get_stored(conn, tenant_id=tenant_id, app_id="")
            load_policy(tenant.document if tenant else None, parsed)
        else:
            load_policy(parsed)
            errors: list[str] = []
            for app in await policies_store.latest_app_documents(conn, tenant_id=tenant_id):
                try:
                    load_policy(parsed, app["document"])
                except PolicyError as exc:
                    errors += [f"app '{app['app_id']}' override under this tenant policy: {e}" for e in exc.errors]
            if errors:
                raise PolicyError(errors)
        row = await policies_store.insert_next_version(conn, tenant_id=tenant_id, app_id=app_id, document=text,
                                                       created_by=created_by)
    return _row(row)
