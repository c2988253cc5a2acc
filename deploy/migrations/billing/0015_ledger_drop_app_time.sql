-- Billing, fifteenth step: one index fewer to write for every ledger row (issue 17, item 3).
--
-- `usage_ledger_tenant_app_costs` (0012) has the same key as `usage_ledger_tenant_app_time` (0001):
-- (tenant_id, app_id, occurred_at), plus included columns. Every read that could use the older index can
-- use the newer one (same key order, index-only for more reads), while the worker paid for both on every
-- inserted row. Dropping it removes one of the ledger's five index insertions per billed event; 0014 is
-- another branch's number.
DROP INDEX IF EXISTS usage_ledger_tenant_app_time;
