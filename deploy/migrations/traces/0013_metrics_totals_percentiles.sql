-- A tenant's month of hourly metrics with no grouping and no filter reads `trace_metrics_tenant_hour_totals`
-- (traces/0007): one row per hour, so each point's percentiles are those of ONE row's histograms. Sending
-- the two 162-element histograms of 720 rows (~2.8 MB in binary) and computing the percentiles in the API
-- took most of that request at 10 M spans (Postgres 7 ms, the fetch 24-44 ms, the shaping 19-39 ms;
-- bench/RESULTS.md). This keeps each row's latency and TTFT percentiles, as the bucket each falls in, in
-- stored generated columns, computed when the writer updates the row (one or two rows a batch), so that
-- read sends four small arrays instead.
--
-- `traces_hist_ranks(h, qs)`: for each of `qs` (ascending, 0 < q <= 1), the 0-based bucket of the nearest-rank
-- q-quantile of the histogram `h` (the first bucket whose running count reaches ceil(q * total), at least
-- 1), as `llmops_traces.histogram.percentiles` finds it; NULL for an empty histogram. The API reports
-- `histogram.REPORTED[bucket]`, so the values are the same as from the histogram itself.
CREATE FUNCTION traces_hist_ranks(h bigint[], qs double precision[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total   bigint := 0;
    running bigint := 0;
    targets bigint[];
    ranks   integer[] := '{}';
    k       integer := 1;
    x       bigint;
    i       integer;
BEGIN
    IF h IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH x IN ARRAY h LOOP
        total := total + x;
    END LOOP;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    targets := ARRAY(SELECT greatest(ceil(q * total), 1)::bigint FROM unnest(qs) WITH ORDINALITY AS u(q, n) ORDER BY n);
    FOR i IN 1 .. cardinality(h) LOOP
        running := running + h[i];
        WHILE k <= cardinality(targets) AND running >= targets[k] LOOP
            ranks := ranks || (i - 1);
            k := k + 1;
        END LOOP;
        EXIT WHEN k > cardinality(targets);
    END LOOP;
    RETURN ranks;
END $$;

-- p50, p95, p99 (`llmops_traces.metrics.QUANTILES`). A small table (a row per tenant and hour): rewritten
-- once here.
ALTER TABLE trace_metrics_tenant_hour_totals
    ADD COLUMN latency_ranks integer[] GENERATED ALWAYS AS (traces_hist_ranks(latency_hist, '{0.5,0.95,0.99}')) STORED,
    ADD COLUMN ttft_ranks integer[] GENERATED ALWAYS AS (traces_hist_ranks(ttft_hist, '{0.5,0.95,0.99}')) STORED;
