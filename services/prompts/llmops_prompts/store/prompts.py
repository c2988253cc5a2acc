"""`prompts`, `prompt_versions`, `prompt_labels` and `prompt_label_history`. Every function names its tenant:
another tenant's prompt is not found. Versions are only ever inserted; labels move with a history row in the
same transaction."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import orjson

from llmops_shared.problems import Conflict

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

_VERSION = ("v.tenant_id, v.name, p.type, v.version, v.template, v.config, v.variables, v.content_hash, "
            "v.commit_message, v.author, v.created_at")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def decode(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["template"] = orjson.loads(out["template"])
    out["config"] = orjson.loads(out["config"])
    out["variables"] = list(out["variables"])
    return out


async def create_version(conn: asyncpg.Connection, *, tenant_id: str, name: str, type_: str, template: Any,
                         config: dict[str, Any], variables: list[str], content_hash: str, commit_message: str,
                         author: str) -> tuple[dict[str, Any], bool]:
    """A new version (and the prompt, on its first), or the latest one when its content hash is the same.
    Call inside a transaction: the prompt's row is locked, so versions of one prompt are numbered in turn."""
    await conn.execute("INSERT INTO prompts (tenant_id, name, type, created_by) VALUES ($1, $2, $3, $4) "
                       "ON CONFLICT DO NOTHING", tenant_id, name, type_, author)
    existing = await conn.fetchval("SELECT type FROM prompts WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
                                   tenant_id, name)
    if existing != type_:
        raise Conflict(f"prompt {name!r} is a {existing} prompt; its type cannot change")
    latest = await conn.fetchrow(
        f"SELECT {_VERSION} FROM prompt_versions v JOIN prompts p USING (tenant_id, name) "  # noqa: S608
        "WHERE v.tenant_id = $1 AND v.name = $2 ORDER BY v.version DESC LIMIT 1", tenant_id, name)
    if latest is not None and latest["content_hash"] == content_hash:
        return decode(latest), False
    row = await conn.fetchrow(
        """WITH v AS (
               INSERT INTO prompt_versions (tenant_id, name, version, template, config, variables, content_hash,
                                            commit_message, author)
               VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9) RETURNING *)
           SELECT """ + _VERSION + " FROM v JOIN prompts p USING (tenant_id, name)",  # noqa: S608
        tenant_id, name, (latest["version"] if latest else 0) + 1, _json(template), _json(config), variables,
        content_hash, commit_message, author)
    assert row is not None
    return decode(row), True


async def get_version(db: Db, *, tenant_id: str, name: str, version: int) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {_VERSION} FROM prompt_versions v JOIN prompts p USING (tenant_id, name) "  # noqa: S608
        "WHERE v.tenant_id = $1 AND v.name = $2 AND v.version = $3", tenant_id, name, version)
    return None if row is None else decode(row)


async def latest_version(db: Db, *, tenant_id: str, name: str) -> int | None:
    value: int | None = await db.fetchval(
        "SELECT max(version) FROM prompt_versions WHERE tenant_id = $1 AND name = $2", tenant_id, name)
    return value


async def label_version(db: Db, *, tenant_id: str, name: str, label: str) -> int | None:
    """The version a label points at (`latest`: the highest), or None."""
    if label == "latest":
        return await latest_version(db, tenant_id=tenant_id, name=name)
    value: int | None = await db.fetchval(
        "SELECT version FROM prompt_labels WHERE tenant_id = $1 AND name = $2 AND label = $3", tenant_id, name, label)
    return value


async def labels(db: Db, *, tenant_id: str, name: str) -> dict[str, int]:
    """Every label of the prompt and its version, `latest` included."""
    rows = await db.fetch("SELECT label, version FROM prompt_labels WHERE tenant_id = $1 AND name = $2 ORDER BY label",
                          tenant_id, name)
    out = {r["label"]: r["version"] for r in rows}
    latest = await latest_version(db, tenant_id=tenant_id, name=name)
    if latest is not None:
        out["latest"] = latest
    return out


async def move_label(conn: asyncpg.Connection, *, tenant_id: str, name: str, label: str, version: int | None,
                     moved_by: str) -> bool:
    """Point `label` at `version` (None: remove it), recording the move; False when nothing changed. Call
    inside a transaction."""
    before: int | None = await conn.fetchval(
        "SELECT version FROM prompt_labels WHERE tenant_id = $1 AND name = $2 AND label = $3 FOR UPDATE",
        tenant_id, name, label)
    if before == version:
        return False
    if version is None:
        await conn.execute("DELETE FROM prompt_labels WHERE tenant_id = $1 AND name = $2 AND label = $3",
                           tenant_id, name, label)
    else:
        await conn.execute(
            """INSERT INTO prompt_labels (tenant_id, name, label, version, updated_by) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, name, label)
               DO UPDATE SET version = EXCLUDED.version, updated_by = EXCLUDED.updated_by, updated_at = now()""",
            tenant_id, name, label, version, moved_by)
    await conn.execute(
        "INSERT INTO prompt_label_history (tenant_id, name, label, from_version, to_version, moved_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)", tenant_id, name, label, before, version, moved_by)
    return True


async def exists(db: Db, *, tenant_id: str, name: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM prompts WHERE tenant_id = $1 AND name = $2", tenant_id, name))


async def list_prompts(db: Db, *, tenant_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT p.name, p.type, p.created_at,
                  (SELECT max(version) FROM prompt_versions v WHERE v.tenant_id = p.tenant_id AND v.name = p.name)
                      AS latest_version,
                  COALESCE((SELECT jsonb_object_agg(label, version) FROM prompt_labels l
                            WHERE l.tenant_id = p.tenant_id AND l.name = p.name), '{}') AS labels
           FROM prompts p WHERE p.tenant_id = $1 ORDER BY p.name""", tenant_id)


async def list_versions(db: Db, *, tenant_id: str, name: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {_VERSION} FROM prompt_versions v JOIN prompts p USING (tenant_id, name) "  # noqa: S608
        "WHERE v.tenant_id = $1 AND v.name = $2 ORDER BY v.version DESC", tenant_id, name)
    return [decode(r) for r in rows]


async def label_history(db: Db, *, tenant_id: str, name: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT label, from_version, to_version, moved_by, moved_at FROM prompt_label_history "
        "WHERE tenant_id = $1 AND name = $2 ORDER BY id DESC", tenant_id, name)
