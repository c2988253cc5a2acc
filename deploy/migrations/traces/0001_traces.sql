-- Traces: every interaction of `llm.interactions.clean` (redacted text only) as a span row, the tenants'
-- trace settings, erasure tombstones and the request-metrics rollups (docs/traces.md).
--
-- `trace_spans` and `trace_metrics_minute` grow with traffic: they are range-partitioned by UTC day of
-- `occurred_at` (`<table>_YYYY_MM_DD`) with a DEFAULT partition, and old days are dropped whole by
-- `llmops retention` (never a DELETE, except in the default partition). The writer creates the day
-- partitions its rows need, in its batch transaction, for days near its clock (`traces_ensure_day_partitions`);
-- a row of any other day goes to the default partition, so no input creates partitions without bound.
-- Trace-level attributes (user, session, tags, environment, app) are on every row, so no filter joins.
-- Every index starts with the tenant; the time-range indexes go on with the time.

-- The day twin of `llmops_ensure_month_partitions` (shared 0004): the same window, the same move out of
-- the default partition when it holds rows of a day being created, the same lock.
CREATE FUNCTION traces_ensure_day_partitions(parent regclass, instants timestamptz[],
                                             not_before timestamptz, not_after timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    schema_name  text;
    table_name   text;
    key_column   text;
    default_name text;
    day_start    timestamp;
    lower_bound  timestamptz;
    upper_bound  timestamptz;
    part_name    text;
    held         boolean;
    created      integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO schema_name, table_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    SELECT a.attname INTO key_column
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent AND p.partstrat = 'r' AND p.partnatts = 1;
    IF key_column IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent;
    END IF;
    SELECT d.relname INTO default_name
    FROM pg_partitioned_table p JOIN pg_class d ON d.oid = p.partdefid WHERE p.partrelid = parent;
    FOR day_start IN
        SELECT DISTINCT d FROM unnest(instants) AS i, LATERAL (SELECT date_trunc('day', i AT TIME ZONE 'UTC') AS d) t
        WHERE i IS NOT NULL
          AND (d + interval '1 day') AT TIME ZONE 'UTC' > not_before AND d AT TIME ZONE 'UTC' < not_after
        ORDER BY d
    LOOP
        part_name := table_name || '_' || to_char(day_start, 'YYYY_MM_DD');
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(hashtext('llmops.partitions.' || schema_name || '.' || table_name));
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        lower_bound := day_start AT TIME ZONE 'UTC';
        upper_bound := (day_start + interval '1 day') AT TIME ZONE 'UTC';
        held := false;
        IF default_name IS NOT NULL THEN
            EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', schema_name, default_name);
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %I >= $1 AND %I < $2)',
                           schema_name, default_name, key_column, key_column)
                INTO held USING lower_bound, upper_bound;
        END IF;
        IF held THEN
            EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           schema_name, part_name, schema_name, table_name);
            EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                           'INSERT INTO %I.%I SELECT * FROM moved',
                           schema_name, default_name, key_column, key_column, schema_name, part_name)
                USING lower_bound, upper_bound;
            EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           schema_name, table_name, schema_name, part_name, lower_bound, upper_bound);
        ELSE
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                           schema_name, part_name, schema_name, table_name, lower_bound, upper_bound);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- One row per interaction (a span). `occurred_at` is the span's start; it ends `latency_ms` later.
-- Keyed by (tenant_id, event_id) (+ occurred_at, the partition key, which never changes for an event).
-- input, output, metadata and error_message are NULL when the tenant's settings say "metadata only".
CREATE TABLE trace_spans (
    tenant_id                text NOT NULL,
    occurred_at              timestamptz NOT NULL,
    event_id                 uuid NOT NULL,
    trace_id                 text NOT NULL,
    span_id                  text NOT NULL,
    parent_span_id           text,
    span_kind                text NOT NULL,
    name                     text,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    provider                 text,
    model                    text,
    response_model           text,
    status                   text NOT NULL,
    error_type               text,
    error_message            text,
    prompt_name              text,
    prompt_version           text,
    prompt_variant           text,
    user_id                  text,                -- opaque (a pseudonym, once issue 11's privacy work lands)
    session_id               text,
    tags                     text[] NOT NULL DEFAULT '{}',
    latency_ms               double precision,
    ttft_ms                  double precision,
    input_tokens             bigint NOT NULL DEFAULT 0,
    output_tokens            bigint NOT NULL DEFAULT 0,
    cache_read_input_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_input_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens         bigint NOT NULL DEFAULT 0,
    finding_count            integer NOT NULL DEFAULT 0,   -- from the guardrails summary of the clean event
    finding_types            text[] NOT NULL DEFAULT '{}',
    text_stored              boolean NOT NULL,
    input                    jsonb,               -- redacted messages or text
    output                   jsonb,
    metadata                 jsonb,
    stored_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE trace_spans_default PARTITION OF trace_spans DEFAULT;
CREATE INDEX trace_spans_tenant_time ON trace_spans (tenant_id, occurred_at DESC);
CREATE INDEX trace_spans_tenant_app_time ON trace_spans (tenant_id, app_id, occurred_at DESC);
CREATE INDEX trace_spans_tenant_session ON trace_spans (tenant_id, session_id, occurred_at DESC)
    WHERE session_id IS NOT NULL;
CREATE INDEX trace_spans_tenant_user ON trace_spans (tenant_id, user_id, occurred_at DESC) WHERE user_id IS NOT NULL;
-- A trace is read by its id, without a time range: one index probe per day partition.
CREATE INDEX trace_spans_tenant_trace ON trace_spans (tenant_id, trace_id);

-- What a tenant chose: no text stored (metadata only), and how long its spans are kept.
CREATE TABLE trace_tenant_settings (
    tenant_id       text PRIMARY KEY REFERENCES tenants (tenant_id),
    metadata_only   boolean NOT NULL DEFAULT false,
    retention_days  integer CHECK (retention_days > 0),   -- NULL: the deployment's default
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Erasures: a span of an erased trace or user that occurred before `erased_before` is not stored again
-- (a redelivery, a dead-letter replay). Kept for good: one row per erasure request.
CREATE TABLE trace_erasures (
    tenant_id      text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('trace', 'user')),
    subject        text NOT NULL,
    erased_before  timestamptz NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, subject)
);

-- Histograms: fixed log-spaced buckets (`llmops_traces.histogram`), added element by element, so any set of
-- rollup rows merges exactly into one histogram.
CREATE FUNCTION traces_hist_add(a bigint[], b bigint[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0) FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i) ORDER BY i) END
$$;
CREATE AGGREGATE traces_hist_sum(bigint[]) (SFUNC = traces_hist_add, STYPE = bigint[], COMBINEFUNC = traces_hist_add,
                                             PARALLEL = SAFE);

-- Request metrics per minute (partitioned by day, dropped with the spans) and per hour (kept), keyed by
-- what `/v1/metrics` groups by. Updated in the worker's transaction from the span rows actually inserted.
CREATE TABLE trace_metrics_minute (
    tenant_id       text NOT NULL,
    bucket          timestamptz NOT NULL,
    app_id          text NOT NULL,
    environment     text NOT NULL,
    model           text NOT NULL,        -- '' when none
    prompt_name     text NOT NULL,
    prompt_version  text NOT NULL,
    requests        bigint NOT NULL,
    errors          bigint NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    latency_count   bigint NOT NULL,      -- spans with a latency (the histogram's total)
    latency_sum_ms  double precision NOT NULL,
    latency_hist    bigint[] NOT NULL,
    ttft_count      bigint NOT NULL,
    ttft_hist       bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version)
) PARTITION BY RANGE (bucket);
CREATE TABLE trace_metrics_minute_default PARTITION OF trace_metrics_minute DEFAULT;

CREATE TABLE trace_metrics_hourly (LIKE trace_metrics_minute,
    PRIMARY KEY (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version));
