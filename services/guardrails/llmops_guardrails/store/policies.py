"""`guardrail_policies`: versioned override documents per tenant (`app_id = ''`) and per app; never edited."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from llmops_guardrails.store import Executor

_STORED = "tenant_id, app_id, version, document, created_at, created_by"


async def latest_of(db: Executor, *, tenant_ids: Sequence[str], app_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The latest version of each (tenant_id, app_id) pair given (the two sequences side by side) that has one."""
    return await db.fetch(
        """SELECT DISTINCT ON (p.tenant_id, p.app_id) p.tenant_id, p.app_id, p.version, p.document, p.created_at,
                  p.created_by
           FROM guardrail_policies p
           JOIN unnest($1::text[], $2::text[]) AS w(tenant_id, app_id)
             ON p.tenant_id = w.tenant_id AND p.app_id = w.app_id
           ORDER BY p.tenant_id, p.app_id, p.version DESC""",
        list(tenant_ids), list(app_ids))


async def get_version(db: Executor, *, tenant_id: str, app_id: str, version: int | None = None
                      ) -> asyncpg.Record | None:
    """That version, or the latest when `version` is None."""
    return await db.fetchrow(
        f"""SELECT {_STORED} FROM guardrail_policies
            WHERE tenant_id = $1 AND app_id = $2 AND ($3::int IS NULL OR version = $3)
            ORDER BY version DESC LIMIT 1""",  # noqa: S608 (our columns)
        tenant_id, app_id, version)


async def list_versions(db: Executor, *, tenant_id: str, app_id: str) -> list[asyncpg.Record]:
    """(version, created_at, created_by), newest first."""
    return await db.fetch(
        """SELECT version, created_at, created_by FROM guardrail_policies
           WHERE tenant_id = $1 AND app_id = $2 ORDER BY version DESC""", tenant_id, app_id)


async def list_latest(db: Executor, *, tenant_id: str) -> list[asyncpg.Record]:
    """(app_id, version, created_at, created_by) of the latest version of each of the tenant's overrides."""
    return await db.fetch(
        """SELECT DISTINCT ON (app_id) app_id, version, created_at, created_by FROM guardrail_policies
           WHERE tenant_id = $1 ORDER BY app_id, version DESC""", tenant_id)


async def latest_app_documents(conn: Executor, *, tenant_id: str) -> list[asyncpg.Record]:
    """(app_id, document) of the latest version of each app override of a tenant."""
    return await conn.fetch(
        """SELECT DISTINCT ON (app_id) app_id, document FROM guardrail_policies
           WHERE tenant_id = $1 AND app_id <> '' ORDER BY app_id, version DESC""", tenant_id)


async def lock_tenant(conn: asyncpg.Connection, *, tenant_id: str) -> None:
    """One writer per tenant until the transaction ends: versions stay dense, validation sees a stable picture."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('guardrail_policies'), hashtext($1))", tenant_id)


async def insert_next_version(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, document: str,
                              created_by: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO guardrail_policies (tenant_id, app_id, version, document, created_by)
            SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM guardrail_policies
            WHERE tenant_id = $1 AND app_id = $2
            RETURNING {_STORED}""",  # noqa: S608 (our columns)
        tenant_id, app_id, document, created_by)
    assert row is not None
    return row
