-- Guardrails: what the stream worker and the API need on top of 0001.

-- An event counts once per alert *fingerprint*, not only once per alert: a batch redelivered after its
-- alert was resolved must not count its events again into the next alert of that fingerprint.
-- `created_at` is when the event was counted (clock time inside the worker's transaction): the
-- produce -> alert latency of the benchmark.
ALTER TABLE guardrail_alert_events
    ADD COLUMN fingerprint text,
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN created_at  timestamptz NOT NULL DEFAULT clock_timestamp();
UPDATE guardrail_alert_events e SET fingerprint = a.fingerprint
FROM guardrail_alerts a WHERE a.alert_id = e.alert_id AND e.fingerprint IS NULL;
ALTER TABLE guardrail_alert_events ALTER COLUMN fingerprint SET NOT NULL;
CREATE UNIQUE INDEX guardrail_alert_events_once ON guardrail_alert_events (fingerprint, event_id);

-- What the alert is about, for the API and the notifications: the rule's own severity (low..critical;
-- `severity` is the notification scale info/warning/critical), the entity types / rule names seen, and
-- a summary made of counts and times (never content).
ALTER TABLE guardrail_alerts
    ADD COLUMN policy_severity text CHECK (policy_severity IN ('low', 'medium', 'high', 'critical')),
    ADD COLUMN kinds           text[] NOT NULL DEFAULT '{}',
    ADD COLUMN summary         text NOT NULL DEFAULT '';
-- The API lists a tenant's alerts newest first, paginated by (last_seen, alert_id).
CREATE INDEX guardrail_alerts_tenant_seen ON guardrail_alerts (tenant_id, last_seen DESC, alert_id DESC);

-- Channels can be deleted through the API; their delivery log stays (channel_id set to NULL).
ALTER TABLE notification_deliveries ALTER COLUMN channel_id DROP NOT NULL;
ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_channel_id_fkey;
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_channel_id_fkey
    FOREIGN KEY (channel_id) REFERENCES notification_channels (channel_id) ON DELETE SET NULL;
ALTER TABLE notification_channels ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
