-- Billing: the per-tenant hourly total (docs/billing.md, "Rollups"), so that a month by hour, a month's
-- total or any usage without grouping or filters reads one row per hour (744 a month) instead of every
-- hourly rollup row of the month (one per app, environment, provider, model and prompt). Like the other
-- rollups: written only from ledger rows actually inserted, in the worker's batch statement; re-pricing
-- moves its cost differences into it. Token sums cover every event, cost sums priced events only.
CREATE TABLE usage_hourly_totals (
    tenant_id                text NOT NULL,
    bucket                   timestamptz NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket)
);

-- What is already there, from the hourly rollup (equal to the ledger's sums). Run this migration with the
-- billing workers and re-pricing stopped, or rows they write meanwhile may be missed or counted twice.
INSERT INTO usage_hourly_totals (tenant_id, bucket, event_count, unpriced_count, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, bucket, sum(event_count), sum(unpriced_count), sum(input_tokens), sum(output_tokens),
       sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(reasoning_tokens), sum(cost_input),
       sum(cost_cache_read), sum(cost_cache_write), sum(cost_output), sum(cost_reasoning), sum(cost_request),
       sum(cost_total)
FROM usage_hourly
GROUP BY 1, 2;
