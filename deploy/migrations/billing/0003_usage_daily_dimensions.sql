-- Billing, third step: daily rollups by user and by tag (docs/billing.md), so that usage grouped by user
-- or tag does not read the ledger. Like usage_daily: updated only from ledger rows actually inserted, in
-- the same statement; re-pricing moves its cost differences into them too. Token sums cover every event,
-- cost sums priced events only. Buckets are UTC days.

-- One row per (day, user, app, environment, provider, model): user_id is '' for events without a user.
CREATE TABLE usage_daily_users (
    tenant_id                text NOT NULL,
    bucket                   date NOT NULL,
    user_id                  text NOT NULL,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    provider                 text NOT NULL,
    model_key                text NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, user_id, app_id, environment, provider, model_key)
);

-- One row per (day, tag, app, environment, provider, model). An event counts once under EACH of its tags
-- (and under '' when it has none), so the sum over tags double-counts events with several tags: that is
-- what per-tag usage means. Totals come from usage_daily, never from here.
CREATE TABLE usage_daily_tags (
    tenant_id                text NOT NULL,
    bucket                   date NOT NULL,
    tag                      text NOT NULL,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    provider                 text NOT NULL,
    model_key                text NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, tag, app_id, environment, provider, model_key)
);

-- The ledger already written (dev databases): built once from it. Run this migration with the billing
-- workers and re-pricing stopped, or rows they write meanwhile may be missed or counted twice.
INSERT INTO usage_daily_users (tenant_id, bucket, user_id, app_id, environment, provider, model_key,
    event_count, unpriced_count, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens,
    reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_request,
    cost_total)
SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, coalesce(user_id, ''), app_id, environment, provider,
       model_key, count(*), count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens),
       sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(reasoning_tokens),
       coalesce(sum(cost_input), 0), coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0),
       coalesce(sum(cost_output), 0), coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0),
       coalesce(sum(cost_total), 0)
FROM usage_ledger
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO usage_daily_tags (tenant_id, bucket, tag, app_id, environment, provider, model_key,
    event_count, unpriced_count, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens,
    reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_request,
    cost_total)
SELECT l.tenant_id, (l.occurred_at AT TIME ZONE 'UTC')::date, t.tag, l.app_id, l.environment, l.provider,
       l.model_key, count(*), count(*) FILTER (WHERE l.unpriced), sum(l.input_tokens), sum(l.output_tokens),
       sum(l.cache_read_input_tokens), sum(l.cache_write_input_tokens), sum(l.reasoning_tokens),
       coalesce(sum(l.cost_input), 0), coalesce(sum(l.cost_cache_read), 0), coalesce(sum(l.cost_cache_write), 0),
       coalesce(sum(l.cost_output), 0), coalesce(sum(l.cost_reasoning), 0), coalesce(sum(l.cost_request), 0),
       coalesce(sum(l.cost_total), 0)
FROM usage_ledger l
CROSS JOIN LATERAL unnest(CASE WHEN cardinality(l.tags) = 0 THEN ARRAY[''] ELSE l.tags END) AS t(tag)
GROUP BY 1, 2, 3, 4, 5, 6, 7;
