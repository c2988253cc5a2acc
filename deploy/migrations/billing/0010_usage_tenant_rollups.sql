-- Billing: usage per tenant, hour, environment and model as reported (docs/billing.md, "Rollups"), the key
-- of the trace store's tenant-level request metrics (`trace_metrics_tenant_hourly`), so that the cost of a
-- tenant's series grouped or filtered by model or environment (`GET /v1/metrics`, the console's overview)
-- reads a few rows per hour instead of the ledger (a month at 3 M spans: 1.5 M ledger rows) or the hourly
-- rollup by app (keyed by the normalised model key, not the model as reported). Like the other rollups:
-- written only from ledger rows actually inserted, in the worker's batch statement; re-pricing moves its
-- cost differences into it. Token sums cover every event, cost sums priced events only.
CREATE TABLE usage_hourly_models (
    tenant_id                text NOT NULL,
    bucket                   timestamptz NOT NULL,
    environment              text NOT NULL,
    model                    text NOT NULL,   -- as reported by the app; '' when not reported
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
    PRIMARY KEY (tenant_id, bucket, environment, model)
);

-- What is already there, from the ledger. Run this migration with the billing workers and re-pricing
-- stopped, or rows they write meanwhile may be missed or counted twice.
INSERT INTO usage_hourly_models (tenant_id, bucket, environment, model, event_count, unpriced_count, input_tokens,
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', environment, model, count(*),
       count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
       sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger
GROUP BY 1, 2, 3, 4;

-- Billing: cost per tenant, trace and UTC day (docs/billing.md, "Rollups"), so that the trace store's trace
-- list sorted by cost (`GET /v1/traces?sort=cost`: every matching trace's cost before the page is cut) reads
-- a row per trace and day instead of joining each trace's spans to their ledger rows (an app's week at 3 M
-- spans: ~180 traces, 700 random ledger and span reads, 0.3-0.6 s). Sums over the ledger rows that carry the
-- trace id, like the other rollups: written only from ledger rows actually inserted, in the worker's batch
-- statement; re-pricing moves its cost differences into it.
CREATE TABLE usage_trace_costs (
    tenant_id                text NOT NULL,
    trace_id                 text NOT NULL,
    bucket                   date NOT NULL,   -- the UTC day of the ledger rows
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
    PRIMARY KEY (tenant_id, trace_id, bucket)
);

-- What is already there, from the ledger (same conditions as above).
INSERT INTO usage_trace_costs (tenant_id, trace_id, bucket, event_count, unpriced_count, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, trace_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE unpriced),
       sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens),
       sum(reasoning_tokens), coalesce(sum(cost_input), 0), coalesce(sum(cost_cache_read), 0),
       coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0), coalesce(sum(cost_reasoning), 0),
       coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger
GROUP BY 1, 2, 3;
