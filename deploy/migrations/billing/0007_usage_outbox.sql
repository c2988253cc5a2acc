-- Billing, seventh step: the `billing.usage` messages go through an outbox (issue 15).
--
-- The worker publishes each usage-ledger row it inserted to `billing.usage` (the monitors service's costs).
-- Sending after the commit alone lost the messages of a batch whose process died between the commit and
-- the send (the redelivered batch inserts nothing, so it sends nothing). Now the message is written here in
-- the ledger's own transaction; after the commit the worker claims its rows (`FOR UPDATE SKIP LOCKED`),
-- sends them and deletes them in one transaction; rows a crashed process left are claimed and sent by the
-- relay of any billing worker (at start-up, then every `outbox_relay_interval_s`). A row is deleted once
-- sent, so the table holds only what is in flight or left behind. The message keeps the ledger row's
-- (tenant_id, event_id): a consumer recognises a repeat (a crash after the send, before the delete).
CREATE TABLE billing_usage_outbox (
    tenant_id   text NOT NULL,
    event_id    uuid NOT NULL,
    msg_key     text NOT NULL,                      -- the Kafka key: tenant_id/app_id
    payload     text NOT NULL,                      -- the JSON message (`UsageMessage`), exactly as sent
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX billing_usage_outbox_age ON billing_usage_outbox (created_at);
