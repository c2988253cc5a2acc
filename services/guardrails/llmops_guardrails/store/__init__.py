"""Every SQL statement of the guardrails service, one module per aggregate.

- `alerts`: `guardrail_alerts` and the events counted into them (`guardrail_alert_events`);
- `findings`: `guardrail_findings`;
- `policies`: the versioned overrides in `guardrail_policies`;
- `channels`: `notification_channels`;
- `deliveries`: the notifier's delivery log, `notification_deliveries`.

Store functions take the connection (or pool) first and everything else by keyword, return asyncpg
records (or plain values), and decide nothing: the service modules, the worker's handler, the notifier
and the CLI call them.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool
"""A connection (inside a transaction when the caller needs one) or the pool."""
