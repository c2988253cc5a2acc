-- Two coarser twins of `trace_metrics_tenant_hourly` (0003), so that a tenant's month reads a row per day
-- or per hour instead of one per environment and model of each hour. Summing two 162-bucket histograms
-- costs ~50 us a row: at 3 M spans a month of the tenant rollup (5,760 rows) took 370 ms hourly and 790 ms
-- daily by model (bench/traces_store.py); the same month is 720 rows here by hour, 240 by day.
--
-- `trace_metrics_tenant_daily`: per tenant, UTC day, environment and model (a day series grouped or
-- filtered by those only, over whole UTC days). `trace_metrics_tenant_hour_totals`: per tenant and hour
-- (an hour series with no grouping and no filter). Kept like the others (counts and histograms, no text, no
-- user): the writer adds the same increments it adds to the tenant hourly rollup, in the same transaction,
-- so each row always equals the tenant hourly rows of its day (or hour) summed.
CREATE TABLE trace_metrics_tenant_daily (
    tenant_id       text NOT NULL,
    bucket          timestamptz NOT NULL,  -- the UTC day's midnight
    environment     text NOT NULL,
    model           text NOT NULL,         -- '' when none
    requests        bigint NOT NULL,
    errors          bigint NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    latency_count   bigint NOT NULL,
    latency_sum_ms  double precision NOT NULL,
    latency_hist    bigint[] NOT NULL,
    ttft_count      bigint NOT NULL,
    ttft_hist       bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, bucket, environment, model)
);

CREATE TABLE trace_metrics_tenant_hour_totals (
    tenant_id       text NOT NULL,
    bucket          timestamptz NOT NULL,
    requests        bigint NOT NULL,
    errors          bigint NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    latency_count   bigint NOT NULL,
    latency_sum_ms  double precision NOT NULL,
    latency_hist    bigint[] NOT NULL,
    ttft_count      bigint NOT NULL,
    ttft_hist       bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, bucket)
);

-- What is already there, from the tenant hourly rollup. Run this migration with the traces workers
-- stopped, or rows they write meanwhile may be missed.
INSERT INTO trace_metrics_tenant_daily (tenant_id, bucket, environment, model, requests, errors, input_tokens,
    output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_count, ttft_hist)
SELECT tenant_id, date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', environment, model,
       sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(latency_count), sum(latency_sum_ms),
       traces_hist_sum(latency_hist), sum(ttft_count), traces_hist_sum(ttft_hist)
FROM trace_metrics_tenant_hourly GROUP BY 1, 2, 3, 4;

INSERT INTO trace_metrics_tenant_hour_totals (tenant_id, bucket, requests, errors, input_tokens, output_tokens,
    latency_count, latency_sum_ms, latency_hist, ttft_count, ttft_hist)
SELECT tenant_id, bucket, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(latency_count),
       sum(latency_sum_ms), traces_hist_sum(latency_hist), sum(ttft_count), traces_hist_sum(ttft_hist)
FROM trace_metrics_tenant_hourly GROUP BY 1, 2;
