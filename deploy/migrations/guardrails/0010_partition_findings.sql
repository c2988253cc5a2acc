-- Guardrails, partitioned by time: `guardrail_findings` and `guardrail_alert_events` grow with traffic, so
-- they are partitioned by UTC month of `occurred_at` (the scanned interaction's time), with a DEFAULT
-- partition, and old months are dropped whole by `llmops retention` (docs/architecture.md, "Retention");
-- month partitions are created by the writers (`llmops_shared.partitions.ensure_month_partitions`,
-- shared 0004).
--
-- A partitioned table's unique keys must include the partition key:
-- - findings: (event_id, finding_no) becomes (event_id, finding_no, occurred_at), named by the insert's
--   ON CONFLICT;
-- - alert events: (alert_id, event_id) and the once-per-fingerprint (fingerprint, event_id) both gain
--   occurred_at (NOT NULL now: rows from before 0002 take their created_at). Their insert says
--   ON CONFLICT DO NOTHING without a target, so it is unchanged.
-- An event's occurred_at never changes (the event is immutable in Kafka), so a redelivered event meets its
-- rows as before: nothing is counted twice. Rows are copied and the old tables dropped; run this migration
-- with the guardrails workers stopped.

ALTER TABLE guardrail_findings RENAME TO guardrail_findings_unpartitioned;
ALTER INDEX guardrail_findings_pkey RENAME TO guardrail_findings_unpartitioned_pkey;
ALTER INDEX guardrail_findings_tenant_time RENAME TO guardrail_findings_unpartitioned_tenant_time;
CREATE TABLE guardrail_findings (
    LIKE guardrail_findings_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (event_id, finding_no, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE guardrail_findings_default PARTITION OF guardrail_findings DEFAULT;
CREATE INDEX guardrail_findings_tenant_time ON guardrail_findings (tenant_id, occurred_at DESC);
SELECT llmops_ensure_month_partitions('guardrail_findings',
                                      ARRAY(SELECT DISTINCT date_trunc('month', occurred_at) FROM guardrail_findings_unpartitioned),
                                      now() - interval '93 days', now() + interval '62 days');
INSERT INTO guardrail_findings SELECT * FROM guardrail_findings_unpartitioned;
DROP TABLE guardrail_findings_unpartitioned;

ALTER TABLE guardrail_alert_events RENAME TO guardrail_alert_events_unpartitioned;
ALTER INDEX guardrail_alert_events_pkey RENAME TO guardrail_alert_events_unpartitioned_pkey;
ALTER INDEX guardrail_alert_events_once RENAME TO guardrail_alert_events_unpartitioned_once;
ALTER TABLE guardrail_alert_events_unpartitioned
    RENAME CONSTRAINT guardrail_alert_events_alert_id_fkey TO guardrail_alert_events_unpartitioned_alert_id_fkey;
CREATE TABLE guardrail_alert_events (
    alert_id    uuid NOT NULL REFERENCES guardrail_alerts (alert_id),
    event_id    uuid NOT NULL,
    fingerprint text NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (alert_id, event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE guardrail_alert_events_default PARTITION OF guardrail_alert_events DEFAULT;
CREATE UNIQUE INDEX guardrail_alert_events_once ON guardrail_alert_events (fingerprint, event_id, occurred_at);
SELECT llmops_ensure_month_partitions('guardrail_alert_events',
                                      ARRAY(SELECT DISTINCT date_trunc('month', coalesce(occurred_at, created_at))
                                            FROM guardrail_alert_events_unpartitioned),
                                      now() - interval '93 days', now() + interval '62 days');
INSERT INTO guardrail_alert_events (alert_id, event_id, fingerprint, occurred_at, created_at)
SELECT alert_id, event_id, fingerprint, coalesce(occurred_at, created_at), created_at
FROM guardrail_alert_events_unpartitioned;
DROP TABLE guardrail_alert_events_unpartitioned;
