-- Billing, nineteenth step: the rollups every batch updates leave room on their pages (issue 17, item 3).
--
-- `usage_hourly` and `usage_daily` (the batch statement) and `usage_daily_users` and `usage_daily_tags` (the
-- batch statement and the rollup follower) are upserted by every batch: mostly UPDATEs of rows already there.
-- Packed full (fillfactor 100), a page had no room for a row's new version, so most updates were not HOT:
-- each wrote a new entry into every index of the table (the wide text primary keys) and left a dead one
-- behind for vacuum. In the benchmark's mix, 18-45% of these updates were HOT (`pg_stat_user_tables`); with
-- half of each new page left free, ~100%, and the follower's apply costs ~11-15% less Postgres CPU
-- (bench/RESULTS.md, billing12). The price: these four tables take up to twice the pages (they are small
-- beside the ledger: one row per key and hour or day).
--
-- Pages written from now on keep the room; existing pages fill as before until rewritten (VACUUM FULL).
-- `usage_hourly_totals` and `usage_monthly_users` (the usage queries of issue 17 item 4 read them) and
-- `usage_hourly_models` (already HOT: one row per tenant, hour, environment and model) are left as they are;
-- `usage_trace_costs` cannot have HOT updates (its primary key includes the summed columns).
ALTER TABLE usage_hourly SET (fillfactor = 50);
ALTER TABLE usage_daily SET (fillfactor = 50);
ALTER TABLE usage_daily_users SET (fillfactor = 50);
ALTER TABLE usage_daily_tags SET (fillfactor = 50);
