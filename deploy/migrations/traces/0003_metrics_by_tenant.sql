-- Request metrics per hour WITHOUT the app and prompt dimensions: (tenant, hour, environment, model).
-- `/v1/metrics` reads it when neither its grouping nor its filters need app or prompt version (a tenant's
-- whole dashboard). At volume the finer hourly rollup holds a row per app, model and prompt of each hour
-- (bench/traces_store.py: 1,000 apps, 334,320 rows for a month), and summing their histograms took 17 s;
-- this one holds a row per environment and model of each hour (about 7,000 for the same month).
-- Kept like `trace_metrics_hourly` (counts and histograms, no text, no user); updated in the worker's
-- transaction from the span rows actually inserted. Rows before this migration are summed from the finer
-- rollup once, below.
CREATE TABLE trace_metrics_tenant_hourly (
    tenant_id       text NOT NULL,
    bucket          timestamptz NOT NULL,
    environment     text NOT NULL,
    model           text NOT NULL,        -- '' when none
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

-- The same element-wise sum in PL/pgSQL, adding only the non-zero elements of `b`, without the SQL
-- function's sub-select and sort per call: a month of this table at 10 M spans (bench/traces_store.py,
-- 5,760 rows, two histograms each) sums in 200 to 380 ms against about 600 ms with the function of 0001,
-- on the shared, loaded machine. A rollup upsert adds a batch's few non-zero buckets only.
CREATE OR REPLACE FUNCTION traces_hist_add(a bigint[], b bigint[]) RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE
PARALLEL SAFE AS $$
DECLARE
    i integer;
BEGIN
    IF a IS NULL THEN
        RETURN b;
    ELSIF b IS NULL THEN
        RETURN a;
    END IF;
    IF cardinality(a) < cardinality(b) THEN
        a := a || array_fill(0::bigint, ARRAY[cardinality(b) - cardinality(a)]);
    END IF;
    FOR i IN 1 .. cardinality(b) LOOP
        IF b[i] <> 0 THEN
            a[i] := coalesce(a[i], 0) + b[i];
        END IF;
    END LOOP;
    RETURN a;
END $$;

INSERT INTO trace_metrics_tenant_hourly (tenant_id, bucket, environment, model, requests, errors, input_tokens,
    output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_count, ttft_hist)
SELECT tenant_id, bucket, environment, model, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
       sum(latency_count), sum(latency_sum_ms), traces_hist_sum(latency_hist), sum(ttft_count),
       traces_hist_sum(ttft_hist)
FROM trace_metrics_hourly GROUP BY tenant_id, bucket, environment, model;
