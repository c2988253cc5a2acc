-- The notifier's delivery log becomes its durable work queue too: one row per (alert message, channel),
-- written in the notifier's batch transaction before anything is sent, carrying the alert message to send
-- (ids, names, counts and times: an alert message never holds prompt text). Statuses:
--   pending     to be sent, from next_attempt_at
--   sending     claimed by a notifier (claim_token); next_attempt_at is when the claim lapses: a row still
--               `sending` then (the notifier died between send and record) is sent again, with the same
--               idempotency key (the message id)
--   delivered   a 2xx answer
--   suppressed  a repeat of a still-open alert within the channel's repeat_interval_s
--   parked      the attempts in a row ran out, or the channel's circuit breaker is open: retried in the
--               background from next_attempt_at, with growing backoff, until delivered
--   superseded  a later message of the same alert was delivered to the channel first: this one is stale
--   cancelled   its channel was deleted before it could be delivered
--   failed      only rows written before this migration (the old notifier gave up and dropped the page)
ALTER TABLE notification_deliveries
    ADD COLUMN alert           jsonb,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN claim_token     uuid,
    ADD COLUMN claimed_at      timestamptz,
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();

ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_status_check;
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_status_check CHECK (status IN (
    'pending', 'sending', 'delivered', 'suppressed', 'parked', 'superseded', 'cancelled', 'failed'));
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_queued_complete CHECK (
    status NOT IN ('pending', 'sending', 'parked') OR (alert IS NOT NULL AND next_attempt_at IS NOT NULL));

-- One row per alert message and channel (rows from before this migration, without `alert`, excepted: the
-- old log could hold several outcomes of one message; its `delivered` ones stay unique by
-- notification_deliveries_once, and the notifier does not queue a message they show delivered).
CREATE UNIQUE INDEX notification_deliveries_one ON notification_deliveries (message_id, channel_id)
    WHERE alert IS NOT NULL;
-- What is due: pending and parked rows whose time came, claims that lapsed.
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending', 'parked');
-- The API: a channel's deliveries, newest first, by status or all.
CREATE INDEX notification_deliveries_channel_status ON notification_deliveries (channel_id, status, id DESC);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, id DESC);
