"""Plain, ordered SQL migrations, recorded in `schema_migrations`.

Layout: `deploy/migrations/<component>/NNNN_what.sql`. Each service owns its component's tables; the
`shared` component (tenants, API keys, dead letters) is applied first, the others in name order.
A migration runs once, in its own transaction; re-running `llmops migrate` is a no-op. Editing a
migration that was already applied is refused (its checksum is recorded): add a new one instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x11_0B_5_3161  # any constant; one migrator at a time per database


@dataclass(frozen=True)
class Migration:
    component: str
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def default_migrations_dir() -> Path:
    """`LLMOPS_MIGRATIONS_DIR`, or `deploy/migrations` of the checkout this package runs from."""
    configured = os.environ.get("LLMOPS_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "deploy" / "migrations"


def discover(root: Path) -> list[Migration]:
    if not root.is_dir():
        raise MigrationError(f"no migrations folder at {root} (set LLMOPS_MIGRATIONS_DIR)")
    components = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (p.name != "shared", p.name))
    found: list[Migration] = []
    for folder in components:
        for path in sorted(folder.glob("*.sql")):
            match = _FILE.match(path.name)
            if not match:
                raise MigrationError(f"badly named migration {path} (want NNNN_name.sql)")
            found.append(Migration(folder.name, match.group(1), match.group(2), path.read_text()))
    return found


async def migrate(database_url: str, root: Path | None = None) -> list[Migration]:
    """Apply what is pending; returns the migrations applied now."""
    pending_all = discover(root or default_migrations_dir())
    conn = await asyncpg.connect(database_url)
    applied_now: list[Migration] = []
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                component  text NOT NULL,
                version    text NOT NULL,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )
            """
        )
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
            done = {(r["component"], r["version"]): r["checksum"] for r in rows}
            for m in pending_all:
                recorded = done.get((m.component, m.version))
                if recorded is not None:
                    if recorded != m.checksum:
                        raise MigrationError(
                            f"{m.component}/{m.version}_{m.name}.sql changed after it was applied; add a new migration"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                        m.component, m.version, m.name, m.checksum,
                    )
                applied_now.append(m)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return applied_now
