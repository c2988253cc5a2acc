-- Billing, eighteenth step: a batch's `billing.usage` messages are one outbox row (issue 17, item 3).
--
-- `billing_usage_outbox` (0007) held one row per inserted ledger row: per billed event a heap row and two
-- index entries written in the batch statement, then a primary-key probe and a delete when the worker took
-- it after the commit (~10 ms of a 2,000-event batch's statement and ~16 ms of its take). The batch statement
-- now writes its messages' keys and payloads as two arrays into ONE row of `billing_usage_outbox_batches`;
-- the worker takes that row by id after the commit (`FOR UPDATE SKIP LOCKED`, deleted in the transaction that
-- lasts until Kafka has the messages), and the relay takes rows a crashed process left, as before.
-- `billing_usage_outbox` stays for rows written by workers before this step (the relay drains both tables).
CREATE TABLE billing_usage_outbox_batches (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    msg_keys    text[] NOT NULL,                    -- the Kafka keys: tenant_id/app_id
    payloads    text[] NOT NULL                     -- the JSON messages (`UsageMessage`), exactly as sent
);
-- A batch's payloads are a few hundred kB: stored out of line uncompressed (the row lives well under a second;
-- compressing it would cost the batch statement more CPU than it saves).
ALTER TABLE billing_usage_outbox_batches ALTER COLUMN payloads SET STORAGE EXTERNAL;
