-- Monitors, second step: a repeated `billing.usage` message counts once (issue 15).
--
-- Billing sends its usage messages through an outbox; a process that dies after Kafka took a message and
-- before its delete committed sends it again (same tenant_id and event_id, another offset). The worker's
-- usage route records, per consumer group, which message (partition, offset) first brought each event;
-- a message is observed only if it is that one: the same message redelivered after a crash is (the panes'
-- offset marks then count it once), a repeated send is not. Rows are deleted after
-- `LLMOPS_MONITORS_USAGE_SEEN_KEEP_H` (24 h; windows are at most an hour long).
CREATE TABLE monitor_usage_seen (
    consumer          text NOT NULL,                  -- the worker's group (LLMOPS_MONITORS_GROUP)
    tenant_id         text NOT NULL,
    event_id          uuid NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    seen_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id, event_id)
);
CREATE INDEX monitor_usage_seen_age ON monitor_usage_seen (seen_at);
