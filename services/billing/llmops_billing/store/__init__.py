"""Billing's SQL, one module per aggregate. Nothing else in the service holds a query string.

- `ledger`: `usage_ledger` (its own dedupe): the batch write (staging table, COPY, one statement),
  re-pricing's locked chunks and cost updates;
- `rollups`: `usage_hourly`, `usage_daily`, `usage_daily_users`, `usage_daily_tags`: upserts from inserted
  rows, re-pricing's deltas;
- `usage`: the API's reads over the ledger and the rollups: usage pages and exports, statement lines;
- `budgets`: `budgets`, `budget_alerts_sent`, a period's spend (from `usage_daily`), the evaluation lock;
- `prices`: `model_prices`, `model_price_tiers`, `tenant_price_discounts`;
- `unpriced`: `unpriced_models`;
- `outbox`: `billing_alert_outbox`;
- `pending_rollups`: `billing_rollup_pending` (a batch's share of `usage_daily_users` and `usage_trace_costs`
  until the follower adds it);
- `usage_outbox`: `billing_usage_outbox_batches` and `billing_usage_outbox` (the `billing.usage` messages until
  they are sent);
- `reprice_runs`: `billing_reprice_runs`.

Every function takes its connection (or pool) first and everything else by keyword. A store imports
only the pure modules (`ledger`, `prices`, `money`, `usage_query`): it returns their objects, or
records its caller maps (budgets, outbox, usage_outbox: their domain modules call the store, not the reverse).
Table and column names in SQL built from Python are constants of these modules, never input.
"""
