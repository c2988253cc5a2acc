"""Evaluator configs in Postgres (`evaluators`): every SQL statement about them.

A row holds the config as JSON (`EvaluatorConfig.model_dump_json()`) and `enabled` beside it. Its key is
(`tenant_id`, `evaluator_id`): ids are the tenant's own, and two tenants may use the same one (migration
evaluator/0006). Reads scoped to a tenant take `tenant_id`; `enabled_evaluator_rows` (every tenant's, for
the stream worker) does not.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from llmops_evaluator.config import EvaluatorConfig


async def insert_evaluator(*, conn: asyncpg.Connection, config: EvaluatorConfig) -> asyncpg.Record | None:
    """Create an evaluator; None when the tenant already has one with its id."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """INSERT INTO evaluators (evaluator_id, tenant_id, config, enabled) VALUES ($1, $2, $3::jsonb, $4)
           ON CONFLICT (tenant_id, evaluator_id) DO NOTHING RETURNING *""",
        config.id, config.tenant_id, config.model_dump_json(), config.enabled)
    return row


async def save_evaluator(*, conn: asyncpg.Connection, config: EvaluatorConfig) -> None:
    """Create or replace the tenant's evaluator."""
    await conn.execute(
        """
        INSERT INTO evaluators (evaluator_id, tenant_id, config, enabled) VALUES ($1, $2, $3::jsonb, $4)
        ON CONFLICT (tenant_id, evaluator_id) DO UPDATE SET config = EXCLUDED.config, enabled = EXCLUDED.enabled,
            updated_at = now()
        """,
        config.id, config.tenant_id, config.model_dump_json(), config.enabled,
    )


async def evaluator_row(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str) -> asyncpg.Record | None:
    """One evaluator of the tenant (enabled or not), or None."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM evaluators WHERE evaluator_id = $1 AND tenant_id = $2", evaluator_id, tenant_id)
    return row


async def evaluator_rows(*, conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    """The tenant's evaluators (enabled or not), by id."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM evaluators WHERE tenant_id = $1 ORDER BY evaluator_id", tenant_id)
    return rows


async def disable_evaluator(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str) -> bool:
    """Mark the tenant's evaluator disabled (row and config); False when it has no such evaluator."""
    done = await conn.fetchval(
        """UPDATE evaluators SET enabled = false, config = jsonb_set(config, '{enabled}', 'false'), updated_at = now()
           WHERE evaluator_id = $1 AND tenant_id = $2 RETURNING evaluator_id""", evaluator_id, tenant_id)
    return done is not None


async def tenant_configs(*, conn: asyncpg.Connection, tenant_id: str) -> list[dict[str, Any]]:
    """The raw (unvalidated) configs of the tenant's evaluators, enabled or not."""
    rows = await conn.fetch("SELECT config FROM evaluators WHERE tenant_id = $1", tenant_id)
    return [config_json(row["config"]) for row in rows]


async def load_evaluators(*, conn: asyncpg.Connection, tenant_id: str | None = None) -> list[EvaluatorConfig]:
    """The enabled evaluators (of one tenant, or all). A config that no longer validates raises."""
    rows = await conn.fetch(
        """SELECT config FROM evaluators WHERE enabled AND ($1::text IS NULL OR tenant_id = $1)
           ORDER BY tenant_id, evaluator_id""",
        tenant_id,
    )
    return [EvaluatorConfig.model_validate(config_json(row["config"])) for row in rows]


async def enabled_evaluator_rows(*, conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """(`tenant_id`, `evaluator_id`, `config`) of every tenant's enabled evaluators, configs not validated.

    For a reader that must survive a config that no longer validates (the stream worker keeps the version
    it loaded before).
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT tenant_id, evaluator_id, config FROM evaluators WHERE enabled ORDER BY tenant_id, evaluator_id")
    return rows


def config_json(value: Any) -> Any:
    """A `config` column as Python (asyncpg hands jsonb over as text)."""
    return json.loads(value) if isinstance(value, str) else value
