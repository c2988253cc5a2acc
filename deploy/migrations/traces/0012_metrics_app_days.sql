-- One app's month of hourly metrics in a few pages. `trace_metrics_hourly` is written hour by hour for every
-- app at once, so an app's rows of a month sit one per heap page: at 10 M spans of 1,000 apps
-- (bench/traces_store.py) an app's month was ~1,400 rows on ~1,300 pages, 3 s when not cached.
--
-- `trace_metrics_app_days` holds, per tenant, app and ended UTC day, that day's hourly rollup rows of the app
-- in one row: the keys and measures as parallel arrays (entry i of each is one hourly row), the histograms
-- sparse (`<h>_entries`, `<h>_positions`, `<h>_counts`: entry, 1-based bucket and count of every non-zero
-- bucket), a few hundred bytes a day instead of a page per hour. `llmops_traces.compaction` writes a
-- tenant's day in (tenant, app) order once the day has ended, and marks it in `trace_metrics_compacted_days`.
-- A series of one app reads the marked days here and the others (today, late-written days) from the hourly
-- rollup, which stays complete: it is still written for every span and remains the truth.
--
-- Exactness with late events: the writer calls `traces_metrics_days_written` in its batch transaction for
-- every (tenant, day) it adds hourly rows to; that removes the day's mark, so reads go back to the hourly
-- rollup until the day is compacted again. The compactor and the writer meet on an advisory lock per
-- (tenant, day): the writer takes it shared, the compactor exclusive before reading the hourly rows, so a
-- compaction never misses an increment committed after its read, and a mark is never left on a day the
-- writer changed after its compaction.
CREATE TABLE trace_metrics_app_days (
    tenant_id        text NOT NULL,
    app_id           text NOT NULL,
    day              timestamptz NOT NULL,           -- the UTC day's midnight
    bucket           timestamptz[] NOT NULL,         -- per entry: the hourly row's key ...
    environment      text[] NOT NULL,
    model            text[] NOT NULL,
    prompt_name      text[] NOT NULL,
    prompt_version   text[] NOT NULL,
    requests         bigint[] NOT NULL,              -- ... and measures
    errors           bigint[] NOT NULL,
    input_tokens     bigint[] NOT NULL,
    output_tokens    bigint[] NOT NULL,
    latency_count    bigint[] NOT NULL,
    latency_sum_ms   double precision[] NOT NULL,
    ttft_count       bigint[] NOT NULL,
    latency_entries  integer[] NOT NULL,             -- sparse histograms: entry (1-based), bucket (1-based), count
    latency_positions integer[] NOT NULL,
    latency_counts   bigint[] NOT NULL,
    ttft_entries     integer[] NOT NULL,
    ttft_positions   integer[] NOT NULL,
    ttft_counts      bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, app_id, day)
);

-- Kept in the row (compressed if need be), not in TOAST: at 10 M spans an app's day is ~2.5 kB, and out of line
-- a cold read of an app's month would add a TOAST index and heap page per row (1,000 rows of a day: 334 heap
-- pages this way, against 250 heap and 101 TOAST pages).
ALTER TABLE trace_metrics_app_days
    ALTER COLUMN bucket SET STORAGE MAIN, ALTER COLUMN environment SET STORAGE MAIN,
    ALTER COLUMN model SET STORAGE MAIN, ALTER COLUMN prompt_name SET STORAGE MAIN,
    ALTER COLUMN prompt_version SET STORAGE MAIN, ALTER COLUMN requests SET STORAGE MAIN,
    ALTER COLUMN errors SET STORAGE MAIN, ALTER COLUMN input_tokens SET STORAGE MAIN,
    ALTER COLUMN output_tokens SET STORAGE MAIN, ALTER COLUMN latency_count SET STORAGE MAIN,
    ALTER COLUMN latency_sum_ms SET STORAGE MAIN, ALTER COLUMN ttft_count SET STORAGE MAIN,
    ALTER COLUMN latency_entries SET STORAGE MAIN, ALTER COLUMN latency_positions SET STORAGE MAIN,
    ALTER COLUMN latency_counts SET STORAGE MAIN, ALTER COLUMN ttft_entries SET STORAGE MAIN,
    ALTER COLUMN ttft_positions SET STORAGE MAIN, ALTER COLUMN ttft_counts SET STORAGE MAIN;

CREATE TABLE trace_metrics_compacted_days (
    tenant_id     text NOT NULL,
    day           timestamptz NOT NULL,
    compacted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

CREATE FUNCTION traces_metrics_day_key(tenant_id text, day timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('trace_metrics_app_days/' || tenant_id, extract(epoch FROM day)::bigint)
$$;

-- The writer's side (see above): in the batch transaction, after its hourly increments. A VOLATILE function's
-- statements each take a new snapshot, so the DELETE sees a compaction that committed while it waited.
CREATE FUNCTION traces_metrics_days_written(tenants text[], days timestamptz[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(traces_metrics_day_key(t, d)) FROM unnest(tenants, days) AS u(t, d);
    DELETE FROM trace_metrics_compacted_days c USING unnest(tenants, days) AS u(t, d)
    WHERE c.tenant_id = u.t AND c.day = u.d;
END $$;
