-- Billing: price catalogue, usage ledger, rollups, budgets. Owned by the billing service (docs/billing.md).
--
-- Money is USD in NUMERIC(38,20) everywhere: per-token prices such as 0.000000075 and every amount
-- computed from them (integer tokens times a price of at most 20 decimals) store exactly; 18 integer
-- digits leave room for any rollup. Nothing is rounded in the database; rounding is for display only.
-- Key columns of rollups use '' rather than NULL (prompt, provider, ...) so ON CONFLICT can match them.

-- ------------------------------------------------------------------------------------------------
-- Price catalogue

-- One row per price in force from `effective_from` (until the next row of the same tenant, provider
-- and model, or until `effective_until`). tenant_id NULL is the list price; a tenant's row is its
-- negotiated price. A price change is a new row: rows that are already history cannot be edited.
CREATE TABLE model_prices (
    id                     bigserial PRIMARY KEY,
    tenant_id              text REFERENCES tenants (tenant_id),
    provider               text NOT NULL DEFAULT '',          -- '' : any provider
    model                  text NOT NULL,                     -- as imported or entered
    model_key              text NOT NULL,                     -- llmops_billing.normalise.normalise_model
    effective_from         timestamptz NOT NULL,
    effective_until        timestamptz,
    currency               text NOT NULL DEFAULT 'USD' CHECK (currency = 'USD'),
    input_per_token        numeric(38,20) NOT NULL CHECK (input_per_token >= 0),
    output_per_token       numeric(38,20) NOT NULL CHECK (output_per_token >= 0),
    cache_read_per_token   numeric(38,20) CHECK (cache_read_per_token >= 0),    -- NULL: the input price
    cache_write_per_token  numeric(38,20) CHECK (cache_write_per_token >= 0),   -- NULL: the input price
    reasoning_per_token    numeric(38,20) CHECK (reasoning_per_token >= 0),     -- NULL: the output price
    request_fee            numeric(38,20) NOT NULL DEFAULT 0 CHECK (request_fee >= 0),
    source                 text NOT NULL,
    price_version          text NOT NULL UNIQUE,
    created_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (effective_until IS NULL OR effective_until > effective_from),
    UNIQUE NULLS NOT DISTINCT (tenant_id, provider, model_key, effective_from)
);
CREATE INDEX model_prices_by_model ON model_prices (model_key, provider, effective_from DESC);
CREATE INDEX model_prices_by_tenant ON model_prices (tenant_id) WHERE tenant_id IS NOT NULL;

-- Long-context tiers: when a request's input tokens exceed `above_input_tokens`, these prices bill the
-- whole request (a NULL price here is the row's own).
CREATE TABLE model_price_tiers (
    price_id               bigint NOT NULL REFERENCES model_prices (id) ON DELETE CASCADE,
    above_input_tokens     integer NOT NULL CHECK (above_input_tokens >= 0),
    input_per_token        numeric(38,20) CHECK (input_per_token >= 0),
    output_per_token       numeric(38,20) CHECK (output_per_token >= 0),
    cache_read_per_token   numeric(38,20) CHECK (cache_read_per_token >= 0),
    cache_write_per_token  numeric(38,20) CHECK (cache_write_per_token >= 0),
    reasoning_per_token    numeric(38,20) CHECK (reasoning_per_token >= 0),
    PRIMARY KEY (price_id, above_input_tokens)
);

-- History is not rewritten: a price row may only get (or change) its effective_until, and only a row
-- not yet in force may be deleted (a mistaken future price).
CREATE FUNCTION billing_model_prices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.effective_from <= now() THEN
            RAISE EXCEPTION 'model_prices row % is already in force: add a new row instead of deleting it',
                OLD.price_version USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF (NEW.tenant_id, NEW.provider, NEW.model, NEW.model_key, NEW.effective_from, NEW.currency,
        NEW.input_per_token, NEW.output_per_token, NEW.cache_read_per_token, NEW.cache_write_per_token,
        NEW.reasoning_per_token, NEW.request_fee, NEW.source, NEW.price_version)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.provider, OLD.model, OLD.model_key, OLD.effective_from, OLD.currency,
        OLD.input_per_token, OLD.output_per_token, OLD.cache_read_per_token, OLD.cache_write_per_token,
        OLD.reasoning_per_token, OLD.request_fee, OLD.source, OLD.price_version) THEN
        RAISE EXCEPTION 'model_prices row % cannot be edited: add a row with a later effective_from',
            OLD.price_version USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER model_prices_immutable BEFORE UPDATE OR DELETE ON model_prices
    FOR EACH ROW EXECUTE FUNCTION billing_model_prices_immutable();

-- A tenant's negotiated percentage off the list price: for one model ('' = every model), one provider
-- ('' = every provider). The most specific one in force applies; discounts do not stack, and do not
-- apply to a tenant's own price rows.
CREATE TABLE tenant_price_discounts (
    id                     bigserial PRIMARY KEY,
    tenant_id              text NOT NULL REFERENCES tenants (tenant_id),
    provider               text NOT NULL DEFAULT '',
    model_key              text NOT NULL DEFAULT '',
    percent                numeric(38,20) NOT NULL CHECK (percent > 0 AND percent <= 100),
    effective_from         timestamptz NOT NULL,
    effective_until        timestamptz,
    discount_id            text NOT NULL UNIQUE,
    note                   text NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (effective_until IS NULL OR effective_until > effective_from),
    UNIQUE (tenant_id, provider, model_key, effective_from)
);

-- ------------------------------------------------------------------------------------------------
-- Usage ledger: one row per billable interaction event, priced when it was written.

-- A partitioned table's unique keys must include the partition key, so event_id alone cannot be unique
-- in usage_ledger. This table is the dedupe: the writer inserts here first (ON CONFLICT DO NOTHING
-- RETURNING) and writes ledger rows only for the event ids that came back, in the same transaction.
CREATE TABLE usage_events_seen (
    event_id               uuid PRIMARY KEY,
    occurred_at            timestamptz NOT NULL,
    seen_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE usage_ledger (
    event_id                 uuid NOT NULL,
    occurred_at              timestamptz NOT NULL,
    tenant_id                text NOT NULL,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    trace_id                 text NOT NULL,
    span_id                  text NOT NULL,
    span_kind                text NOT NULL,
    status                   text NOT NULL,
    provider                 text NOT NULL DEFAULT '',        -- normalised; '' when not reported
    model                    text NOT NULL DEFAULT '',        -- as reported by the app
    response_model           text NOT NULL DEFAULT '',        -- as reported by the provider
    model_key                text NOT NULL DEFAULT '',        -- the catalogue key that priced it (or would)
    prompt_name              text NOT NULL DEFAULT '',
    prompt_version           text NOT NULL DEFAULT '',
    prompt_variant           text NOT NULL DEFAULT '',
    user_id                  text,
    tags                     text[] NOT NULL DEFAULT '{}',
    input_tokens             bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens            bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cache_read_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (cache_read_input_tokens >= 0),
    cache_write_input_tokens bigint NOT NULL DEFAULT 0 CHECK (cache_write_input_tokens >= 0),
    reasoning_tokens         bigint NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
    cost_input               numeric(38,20),                  -- all cost_* NULL when unpriced
    cost_cache_read          numeric(38,20),
    cost_cache_write         numeric(38,20),
    cost_output              numeric(38,20),
    cost_reasoning           numeric(38,20),
    cost_request             numeric(38,20),
    cost_total               numeric(38,20),
    unpriced                 boolean NOT NULL,
    unpriced_reason          text,                            -- unknown_model | no_model | no_usage
    price_version            text,                            -- model_prices.price_version (+ discount id)
    price_tier               integer,                         -- the long-context tier applied, if any
    priced_at                timestamptz NOT NULL,
    CHECK (cache_read_input_tokens + cache_write_input_tokens <= input_tokens),
    CHECK (reasoning_tokens <= output_tokens),
    CHECK (unpriced = (cost_total IS NULL)),
    CHECK (unpriced = (unpriced_reason IS NOT NULL)),
    CHECK (unpriced OR price_version IS NOT NULL),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX usage_ledger_tenant_time ON usage_ledger (tenant_id, occurred_at);
CREATE INDEX usage_ledger_tenant_app_time ON usage_ledger (tenant_id, app_id, occurred_at);
CREATE INDEX usage_ledger_unpriced ON usage_ledger (tenant_id, model_key, occurred_at) WHERE unpriced;

-- Monthly partitions (UTC months), created on demand by the writer before it inserts a batch:
-- SELECT billing_ensure_ledger_partitions(ARRAY[...occurred_at...]). No default partition, so a row can
-- never land where a later partition would have to move it. Old months are dropped by detaching their
-- partition; usage_events_seen rows older than the oldest kept month can be deleted with them.
CREATE FUNCTION billing_ensure_ledger_partitions(instants timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamp;
    part_name   text;
    created     integer := 0;
BEGIN
    FOR month_start IN
        SELECT DISTINCT date_trunc('month', i AT TIME ZONE 'UTC') FROM unnest(instants) AS i WHERE i IS NOT NULL
    LOOP
        part_name := 'usage_ledger_' || to_char(month_start, 'YYYY_MM');
        IF to_regclass(part_name) IS NULL THEN
            -- one creator at a time; the loser of a race sees the table once the lock is released
            PERFORM pg_advisory_xact_lock(hashtext('llmops.billing.usage_ledger.partitions'));
            IF to_regclass(part_name) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF usage_ledger FOR VALUES FROM (%L) TO (%L)',
                               part_name,
                               month_start AT TIME ZONE 'UTC',
                               (month_start + interval '1 month') AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Models seen without a price: one row per tenant, provider and model as reported. The worker raises an
-- alert when a row is first inserted (and after it was resolved), never a silent zero.
CREATE TABLE unpriced_models (
    tenant_id              text NOT NULL,
    provider               text NOT NULL,
    model                  text NOT NULL,
    model_key              text NOT NULL,
    reason                 text NOT NULL,
    first_seen_at          timestamptz NOT NULL,
    last_seen_at           timestamptz NOT NULL,
    event_count            bigint NOT NULL CHECK (event_count > 0),
    alerted_at             timestamptz,
    resolved_at            timestamptz,
    PRIMARY KEY (tenant_id, provider, model)
);

-- ------------------------------------------------------------------------------------------------
-- Rollups, updated only from ledger rows actually inserted, in the same transaction.
-- Token sums cover every event; cost sums cover priced events only (unpriced_count says how many are
-- missing from them). Buckets are UTC hours and UTC days.

CREATE TABLE usage_hourly (
    tenant_id                text NOT NULL,
    bucket                   timestamptz NOT NULL,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    provider                 text NOT NULL,
    model_key                text NOT NULL,
    prompt_name              text NOT NULL,
    prompt_version           text NOT NULL,
    prompt_variant           text NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, app_id, environment, provider, model_key,
                 prompt_name, prompt_version, prompt_variant)
);
CREATE INDEX usage_hourly_tenant_bucket ON usage_hourly (tenant_id, bucket);

CREATE TABLE usage_daily (
    tenant_id                text NOT NULL,
    bucket                   date NOT NULL,
    app_id                   text NOT NULL,
    environment              text NOT NULL,
    provider                 text NOT NULL,
    model_key                text NOT NULL,
    prompt_name              text NOT NULL,
    prompt_version           text NOT NULL,
    prompt_variant           text NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, app_id, environment, provider, model_key,
                 prompt_name, prompt_version, prompt_variant)
);
CREATE INDEX usage_daily_tenant_bucket ON usage_daily (tenant_id, bucket);

-- ------------------------------------------------------------------------------------------------
-- Budgets and their alerts.

CREATE TABLE budgets (
    id                     bigserial PRIMARY KEY,
    tenant_id              text NOT NULL REFERENCES tenants (tenant_id),
    app_id                 text NOT NULL DEFAULT '',          -- '' : every app of the tenant
    period                 text NOT NULL CHECK (period IN ('day', 'month')),   -- UTC calendar periods
    amount                 numeric(38,20) NOT NULL CHECK (amount > 0),
    thresholds             integer[] NOT NULL DEFAULT '{50,80,100}'
                           CHECK (cardinality(thresholds) > 0 AND array_position(thresholds, NULL) IS NULL
                                  AND 0 < ALL (thresholds) AND 1000 >= ALL (thresholds)),
    enforcement            text NOT NULL DEFAULT 'soft' CHECK (enforcement IN ('soft', 'hard')),
    name                   text NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    archived_at            timestamptz
);
CREATE UNIQUE INDEX budgets_one_active ON budgets (tenant_id, app_id, period) WHERE archived_at IS NULL;

-- Each threshold crossing alerts once per budget period: the alerter inserts here with
-- ON CONFLICT DO NOTHING and notifies only when the row was inserted.
CREATE TABLE budget_alerts_sent (
    budget_id              bigint NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    period_start           timestamptz NOT NULL,
    threshold              integer NOT NULL CHECK (threshold > 0),
    spent                  numeric(38,20) NOT NULL,
    amount                 numeric(38,20) NOT NULL,
    sent_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (budget_id, period_start, threshold)
);
