-- One app's cost series (`GET /v1/metrics?app=...` of the traces API, and any per-app cost over time) sums
-- `cost_total` of the app's ledger rows. Through `usage_ledger_tenant_app_time` that reads one heap row per
-- billed event, spread over the month's pages (at 10 M spans, ~5,000 rows of an app's month on as many
-- pages: 150 ms when not cached). This index also holds the columns such a series groups or filters by and the
-- cost, so the read is an index-only scan of the app's entries, which sit together. The ledger is
-- append-only, so autovacuum keeps its pages all-visible. Additive: the existing index stays.
CREATE INDEX usage_ledger_tenant_app_costs ON usage_ledger (tenant_id, app_id, occurred_at)
    INCLUDE (environment, model, cost_total);
