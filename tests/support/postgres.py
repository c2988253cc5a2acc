"""A Postgres server of a test's own (a free port, a folder of its own), to stop and start at will without
touching the shared stack's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmops_devtools.stack.postgres import PostgresServer
from llmops_devtools.testing import free_port
from llmops_shared import db, migrations


@contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """Not started yet; stopped (immediately) and removed at the end."""
    # Not under pytest's tmp_path: as root the server runs as `postgres`, which must reach its folder.
    home = Path(tempfile.mkdtemp(prefix="llmops-own-pg-"))
    os.chmod(home, 0o755)  # noqa: S103 - a folder of folders, readable so `postgres` can traverse it
    server = PostgresServer(home / "postgres", port=free_port())
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(home, ignore_errors=True)


async def migrated_database(server: PostgresServer, name: str = "llmops_outage") -> str:
    """The URL of a database on `server`, created and migrated if it is not yet."""
    url = f"postgresql://postgres@127.0.0.1:{server.port}/{name}"
    await db.ensure_database(url)
    await migrations.migrate(url)
    return url
