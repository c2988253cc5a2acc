-- A summary row per trace and UTC day of its spans, kept by the writer, so that `GET /v1/traces` reads a
-- row per trace instead of summing every span of every trace in range (EXPLAIN ANALYZE at 2 M spans: about
-- 1 s for a day of one tenant, 16,700 traces).
--
-- Keyed (tenant_id, trace_id, day): a trace whose spans fall on two UTC days has two rows, so that each row
-- sums the spans of ONE day partition of `trace_spans` and goes with it: `llmops retention` drops the day
-- partitions of both tables together (never a DELETE), and the rows then still equal what is left.
-- The writer upserts the rows of the spans it inserted, in its batch transaction (`store/summaries.py`):
-- counts and tokens add up, first/last instants widen, the root-first span's name, app and environment
-- win (the root span, else the earliest, then the lowest span id), user and session are the largest
-- (`max`), tags the union (sorted); text is compared byte-wise (COLLATE "C") here and in the writer.
-- Erasure deletes spans and recomputes the rows of their traces from what is left
-- (`traces_rebuild_summaries`). Cost and judge scores are other workers' (billing's ledger, the
-- evaluator's results): they are joined for the page only, never stored here.
CREATE TABLE trace_summaries (
    tenant_id      text NOT NULL,
    day            timestamptz NOT NULL,     -- the UTC day of the spans summed (the partition key)
    trace_id       text NOT NULL,
    first_at       timestamptz NOT NULL,     -- min(occurred_at)
    last_at        timestamptz NOT NULL,     -- max(occurred_at)
    ended_at       timestamptz NOT NULL,     -- max(occurred_at + latency)
    span_count     integer NOT NULL,
    error_count    integer NOT NULL,
    finding_count  integer NOT NULL,
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    root_is_root   boolean NOT NULL,         -- the root-first span: is it a root (no parent)?
    root_at        timestamptz NOT NULL,     -- ... its start
    root_span_id   text NOT NULL,            -- ... its id
    root_name      text,                     -- ... its name, app and environment
    app_id         text NOT NULL,
    environment    text NOT NULL,
    user_id        text,                     -- max(user_id)
    session_id     text,                     -- max(session_id)
    tags           text[] NOT NULL DEFAULT '{}',  -- the union, sorted
    PRIMARY KEY (tenant_id, trace_id, day)
) PARTITION BY RANGE (day);
CREATE TABLE trace_summaries_default PARTITION OF trace_summaries DEFAULT;
CREATE INDEX trace_summaries_tenant_time ON trace_summaries (tenant_id, first_at DESC);
CREATE INDEX trace_summaries_tenant_app_time ON trace_summaries (tenant_id, app_id, first_at DESC);
CREATE INDEX trace_summaries_tenant_user ON trace_summaries (tenant_id, user_id, first_at DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX trace_summaries_tenant_session ON trace_summaries (tenant_id, session_id, first_at DESC)
    WHERE session_id IS NOT NULL;

-- The summary rows of `spans` (a set of trace_spans rows), grouped by tenant, trace and day: the writer's
-- upserts must always equal this (tests/integration/traces/test_summaries.py checks it).
CREATE AGGREGATE traces_text_cat(text[]) (SFUNC = array_cat, STYPE = text[], INITCOND = '{}');
CREATE VIEW trace_summaries_of_spans AS
SELECT s.tenant_id, date_trunc('day', s.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day, s.trace_id,
       min(s.occurred_at) AS first_at, max(s.occurred_at) AS last_at,
       max(s.occurred_at + make_interval(secs => coalesce(s.latency_ms, 0) / 1000.0)) AS ended_at,
       count(*)::int AS span_count, count(*) FILTER (WHERE s.status = 'error')::int AS error_count,
       sum(s.finding_count)::int AS finding_count, sum(s.input_tokens)::bigint AS input_tokens,
       sum(s.output_tokens)::bigint AS output_tokens,
       (array_agg(s.parent_span_id IS NULL ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1]
           AS root_is_root,
       (array_agg(s.occurred_at ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1] AS root_at,
       (array_agg(s.span_id ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1] AS root_span_id,
       (array_agg(s.name ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1] AS root_name,
       (array_agg(s.app_id ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1] AS app_id,
       (array_agg(s.environment ORDER BY s.parent_span_id IS NOT NULL, s.occurred_at, s.span_id COLLATE "C"))[1]
           AS environment,
       max(s.user_id COLLATE "C") AS user_id, max(s.session_id COLLATE "C") AS session_id,
       ARRAY(SELECT DISTINCT t COLLATE "C" FROM unnest(traces_text_cat(s.tags)) AS t ORDER BY 1) AS tags
FROM trace_spans s
GROUP BY s.tenant_id, date_trunc('day', s.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', s.trace_id;

-- Recompute the summary rows of some traces of a tenant from their spans (after an erasure deleted some).
CREATE FUNCTION traces_rebuild_summaries(tenant text, trace_ids text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    written integer;
BEGIN
    DELETE FROM trace_summaries WHERE tenant_id = tenant AND trace_id = ANY(trace_ids);
    INSERT INTO trace_summaries (tenant_id, day, trace_id, first_at, last_at, ended_at, span_count, error_count,
        finding_count, input_tokens, output_tokens, root_is_root, root_at, root_span_id, root_name, app_id,
        environment, user_id, session_id, tags)
    SELECT tenant_id, day, trace_id, first_at, last_at, ended_at, span_count, error_count, finding_count,
           input_tokens, output_tokens, root_is_root, root_at, root_span_id, root_name, app_id, environment,
           user_id, session_id, tags
    FROM trace_summaries_of_spans WHERE tenant_id = tenant AND trace_id = ANY(trace_ids);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;

-- Spans stored before this migration.
INSERT INTO trace_summaries (tenant_id, day, trace_id, first_at, last_at, ended_at, span_count, error_count,
    finding_count, input_tokens, output_tokens, root_is_root, root_at, root_span_id, root_name, app_id,
    environment, user_id, session_id, tags)
SELECT tenant_id, day, trace_id, first_at, last_at, ended_at, span_count, error_count, finding_count,
       input_tokens, output_tokens, root_is_root, root_at, root_span_id, root_name, app_id, environment,
       user_id, session_id, tags
FROM trace_summaries_of_spans;
