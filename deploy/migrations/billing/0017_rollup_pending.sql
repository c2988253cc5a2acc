-- Billing, seventeenth step: the per-event rollups leave the batch's transaction (issue 17, item 3).
--
-- `usage_daily_users` and `usage_trace_costs` get about one upserted row per billed event (every event
-- of a day has its own user x app x model or trace in busy traffic): ~40% of the worker's batch statement.
-- The batch statement now puts the inserted rows' fields those two rollups need into ONE row of
-- `billing_rollup_pending` (an array, in the batch's transaction: committed with the ledger rows or not
-- at all); a follower task in every billing worker process takes pending rows (FOR UPDATE SKIP LOCKED,
-- several batches at once), adds them to the two rollups and deletes them in one transaction, about every
-- second (`LLMOPS_BILLING_ROLLUP_FOLLOW_INTERVAL_S`). So each inserted row reaches them exactly once, a
-- second or so after its ledger row; every other rollup is still written by the batch statement.
CREATE TYPE billing_rollup_item AS (
    tenant_id                 text,
    occurred_at               timestamptz,
    trace_id                  text,
    user_id                   text,
    app_id                    text,
    environment               text,
    provider                  text,
    model_key                 text,
    unpriced                  boolean,
    input_tokens              bigint,
    output_tokens             bigint,
    cache_read_input_tokens   bigint,
    cache_write_input_tokens  bigint,
    reasoning_tokens          bigint,
    cost_input                numeric,
    cost_cache_read           numeric,
    cost_cache_write          numeric,
    cost_output               numeric,
    cost_reasoning            numeric,
    cost_request              numeric,
    cost_total                numeric
);

CREATE TABLE billing_rollup_pending (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    items       billing_rollup_item[] NOT NULL
);
-- A batch's array is a few hundred kB: stored out of line uncompressed (compressing it costs the batch's
-- transaction more CPU than the bytes it saves are worth; the row lives about a second).
ALTER TABLE billing_rollup_pending ALTER COLUMN items SET STORAGE EXTERNAL;
