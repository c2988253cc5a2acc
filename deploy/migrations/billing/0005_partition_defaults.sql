-- Billing, fifth step: bounded partitions (docs/billing.md, "Partitions and retention").
--
-- 1. The ledger gets a DEFAULT partition. Its writer creates month partitions only for months near its
--    clock (`llmops_ensure_month_partitions`, shared 0004); a row of any other month lands in the default
--    partition instead of creating one (one batch spanning 200 months made 200 partitions before).
-- 2. `usage_events_seen`, the ledger's dedupe table, is partitioned by month like the ledger, so its old
--    months are dropped whole (`llmops retention`). A partitioned table's unique keys must include the
--    partition key: its key becomes (event_id, occurred_at). An event's occurred_at never changes (the
--    event is immutable in Kafka), so a redelivered event still finds its row, and the writer's ON CONFLICT
--    names that key. Rows are copied from the old table, which is then dropped; run this migration with the
--    billing workers stopped.
-- 3. `billing_ensure_ledger_partitions(instants)` (0001) keeps working, now through the shared function,
--    for every month it is given, moving rows out of the default partition when it holds some.

CREATE TABLE usage_ledger_default PARTITION OF usage_ledger DEFAULT;

DROP FUNCTION billing_ensure_ledger_partitions(timestamptz[]);
CREATE FUNCTION billing_ensure_ledger_partitions(instants timestamptz[]) RETURNS integer
LANGUAGE sql AS $$
    SELECT llmops_ensure_month_partitions('usage_ledger', instants, '-infinity', 'infinity')
$$;

ALTER TABLE usage_events_seen RENAME TO usage_events_seen_unpartitioned;
ALTER INDEX usage_events_seen_pkey RENAME TO usage_events_seen_unpartitioned_pkey;
CREATE TABLE usage_events_seen (
    event_id               uuid NOT NULL,
    occurred_at            timestamptz NOT NULL,
    seen_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE usage_events_seen_default PARTITION OF usage_events_seen DEFAULT;
SELECT llmops_ensure_month_partitions('usage_events_seen',
                                      ARRAY(SELECT DISTINCT date_trunc('month', occurred_at) FROM usage_events_seen_unpartitioned),
                                      now() - interval '93 days', now() + interval '62 days');
INSERT INTO usage_events_seen (event_id, occurred_at, seen_at)
SELECT event_id, occurred_at, seen_at FROM usage_events_seen_unpartitioned;
DROP TABLE usage_events_seen_unpartitioned;

-- The outbox's sent rows are purged after a while (`llmops retention`): find them by when they were sent.
CREATE INDEX billing_alert_outbox_published ON billing_alert_outbox (published_at) WHERE published_at IS NOT NULL;
