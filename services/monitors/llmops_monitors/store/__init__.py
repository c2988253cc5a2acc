"""The monitors service's SQL, one module per aggregate. Nothing else in the service holds a query string.

- `monitors`: `monitors`, the definitions (the API's reads and writes, the worker's load);
- `firings`: `monitor_evaluations`, `monitor_states`, `monitor_firings`: what each closed window decided;
- `outbox`: `monitor_alert_outbox`: alert messages decided in an evaluation, sent after its commit;
- `events_seen`: `monitor_events_seen`: which message of a route first brought each event.

Every function takes its connection (or pool) first and everything else by keyword. Every read or change
on behalf of a tenant names the tenant: an id of another tenant finds nothing.
"""

from __future__ import annotations

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool
