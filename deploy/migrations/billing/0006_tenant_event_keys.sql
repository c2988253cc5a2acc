-- Billing, sixth step: an event id is the tenant's own (issue 11, item 5). Two tenants may send events with the
-- same `event_id` (by chance, or one copying the other's ids): each tenant's copy is billed once, and neither
-- can make the other's count as a duplicate. So the keys that recognise a redelivered event gain tenant_id:
--
-- 1. `usage_events_seen` (the ledger's dedupe table) gets a tenant_id column, filled from the ledger row its
--    event wrote (the writer inserts both from the same staging row, so they share event_id and
--    occurred_at); its key becomes (tenant_id, event_id, occurred_at). A row without a ledger row (only when
--    the ledger's month was dropped by retention, at least 45 days after the event, past any redelivery;
--    or a row written by hand) names no tenant and is deleted.
-- 2. `usage_ledger`'s key becomes (tenant_id, event_id, occurred_at).
--
-- Both tables are partitioned by month (billing/0005): the primary keys are dropped and added on the
-- partitioned tables, which rebuilds them on every partition, the default ones included. Run this migration
-- with the billing workers and re-pricing stopped.

ALTER TABLE usage_events_seen ADD COLUMN tenant_id text;
UPDATE usage_events_seen s SET tenant_id = l.tenant_id
FROM usage_ledger l WHERE l.event_id = s.event_id AND l.occurred_at = s.occurred_at;
DELETE FROM usage_events_seen WHERE tenant_id IS NULL;
ALTER TABLE usage_events_seen ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE usage_events_seen DROP CONSTRAINT usage_events_seen_pkey;
ALTER TABLE usage_events_seen ADD PRIMARY KEY (tenant_id, event_id, occurred_at);

ALTER TABLE usage_ledger DROP CONSTRAINT usage_ledger_pkey;
ALTER TABLE usage_ledger ADD PRIMARY KEY (tenant_id, event_id, occurred_at);
