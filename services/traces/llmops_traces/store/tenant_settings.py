"""`trace_tenant_settings`: what a tenant chose (metadata only, its retention)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class TenantSettings:
    metadata_only: bool = False
    retention_days: int | None = None  # None: the deployment's default


async def get(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str) -> TenantSettings:
    row = await db.fetchrow("SELECT metadata_only, retention_days FROM trace_tenant_settings WHERE tenant_id = $1",
                            tenant_id)
    return TenantSettings(row["metadata_only"], row["retention_days"]) if row else TenantSettings()


async def get_many(conn: asyncpg.Connection, *, tenant_ids: Iterable[str]) -> dict[str, TenantSettings]:
    """The settings of the tenants that have any (the others use the defaults)."""
    rows = await conn.fetch("""SELECT tenant_id, metadata_only, retention_days FROM trace_tenant_settings
                               WHERE tenant_id = ANY($1::text[])""", sorted(set(tenant_ids)))
    return {r["tenant_id"]: TenantSettings(r["metadata_only"], r["retention_days"]) for r in rows}


async def put(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, settings: TenantSettings) -> None:
    await db.execute(
        """INSERT INTO trace_tenant_settings (tenant_id, metadata_only, retention_days) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET metadata_only = excluded.metadata_only,
               retention_days = excluded.retention_days, updated_at = now()""",
        tenant_id, settings.metadata_only, settings.retention_days)


async def longest_retention(db: asyncpg.Pool | asyncpg.Connection) -> int | None:
    """The longest retention any tenant chose, or None."""
    value: int | None = await db.fetchval("SELECT max(retention_days) FROM trace_tenant_settings")
    return value
