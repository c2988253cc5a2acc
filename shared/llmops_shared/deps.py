"""FastAPI dependencies every API shares, as `Annotated` aliases defined once.

    async def get_budget(*, principal: BillingReader, db: Pool, budget_id: int) -> BudgetPublic: ...

The principal aliases answer 401 for a missing, invalid or revoked key and 403 for a key without the
scope (`admin` has every scope). `Pool` is the app's Postgres pool; `Conn` one connection of it, held
for the request; `Now` what "now" is for the request: the app's clock (`app.state.clock`, which each
`create_app` takes so that tests can pass a fixed one), read once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from llmops_shared.apikeys import Principal, Scope
from llmops_shared.http import require_scope


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


async def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Conn = Annotated[asyncpg.Connection, Depends(_connection)]
Now = Annotated[datetime, Depends(_now)]

Ingester = Annotated[Principal, Depends(require_scope(Scope.INGEST_WRITE))]
Checker = Annotated[Principal, Depends(require_scope(Scope.GUARDRAILS_CHECK))]
AlertsReader = Annotated[Principal, Depends(require_scope(Scope.ALERTS_READ))]
AlertsWriter = Annotated[Principal, Depends(require_scope(Scope.ALERTS_WRITE))]
BillingReader = Annotated[Principal, Depends(require_scope(Scope.BILLING_READ))]
TracesReader = Annotated[Principal, Depends(require_scope(Scope.TRACES_READ))]
PromptsReader = Annotated[Principal, Depends(require_scope(Scope.PROMPTS_READ))]
PromptsWriter = Annotated[Principal, Depends(require_scope(Scope.PROMPTS_WRITE))]
EvalWriter = Annotated[Principal, Depends(require_scope(Scope.EVAL_WRITE))]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
