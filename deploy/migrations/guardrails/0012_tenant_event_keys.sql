-- Guardrails: an event id is the tenant's own (issue 11, item 5). Two tenants may send events with the same
-- `event_id`: each tenant's findings are stored, and neither can make the other's count as already stored.
-- `guardrail_findings`' key becomes (tenant_id, event_id, finding_no, occurred_at) (occurred_at: the table is
-- partitioned by month, guardrails/0010; the key is dropped and added on the partitioned table, which rebuilds
-- it on every partition, the default one included; every row already has its tenant_id).
--
-- `guardrail_alert_events` keeps its keys, (alert_id, event_id, occurred_at) and (fingerprint, event_id,
-- occurred_at): an alert and a fingerprint belong to one tenant (the fingerprint names it, escaped), so an
-- event is already counted once per tenant there.
--
-- Run this migration with the guardrails workers stopped.

ALTER TABLE guardrail_findings DROP CONSTRAINT guardrail_findings_pkey;
ALTER TABLE guardrail_findings ADD PRIMARY KEY (tenant_id, event_id, finding_no, occurred_at);
