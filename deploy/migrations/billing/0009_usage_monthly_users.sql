-- Billing: usage per tenant, UTC month and user (docs/billing.md, "Rollups"), so that a month by user
-- reads one row per user of the month instead of one per user, day, app, environment, provider and model
-- (usage_daily_users). bucket is the month's first day; user_id is the pseudonym, '' for events without
-- a user. Like the other rollups: written only from ledger rows actually inserted, in the worker's batch
-- statement; re-pricing moves its cost differences into it.
CREATE TABLE usage_monthly_users (
    tenant_id                text NOT NULL,
    bucket                   date NOT NULL CHECK (extract(day FROM bucket) = 1),
    user_id                  text NOT NULL,
    event_count              bigint NOT NULL,
    unpriced_count           bigint NOT NULL,
    input_tokens             bigint NOT NULL,
    output_tokens            bigint NOT NULL,
    cache_read_input_tokens  bigint NOT NULL,
    cache_write_input_tokens bigint NOT NULL,
    reasoning_tokens         bigint NOT NULL,
    cost_input               numeric(38,20) NOT NULL,
    cost_cache_read          numeric(38,20) NOT NULL,
    cost_cache_write         numeric(38,20) NOT NULL,
    cost_output              numeric(38,20) NOT NULL,
    cost_reasoning           numeric(38,20) NOT NULL,
    cost_request             numeric(38,20) NOT NULL,
    cost_total               numeric(38,20) NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, bucket, user_id)
);

-- What is already there, from the daily by-user rollup (equal to the ledger's sums). Run this migration
-- with the billing workers and re-pricing stopped, or rows they write meanwhile may be missed or counted
-- twice.
INSERT INTO usage_monthly_users (tenant_id, bucket, user_id, event_count, unpriced_count, input_tokens,
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input,
    cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('month', bucket)::date, user_id, sum(event_count), sum(unpriced_count),
       sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens),
       sum(reasoning_tokens), sum(cost_input), sum(cost_cache_read), sum(cost_cache_write), sum(cost_output),
       sum(cost_reasoning), sum(cost_request), sum(cost_total)
FROM usage_daily_users
GROUP BY 1, 2, 3;
