-- Monitors (docs/monitors.md): definitions per tenant, what each window's evaluation decided, the state of
-- each (monitor, group), the firings, and the outbox of alert messages.

CREATE TABLE monitors (
    monitor_id      bigserial PRIMARY KEY,
    tenant_id       text NOT NULL,
    name            text NOT NULL,
    metric          text NOT NULL,
    aggregation     text NOT NULL,
    window_spec     text NOT NULL,                  -- '5m' (tumbling) or '1h/5m' (hopping: size/step)
    app_id          text,                           -- NULL: every app of the tenant
    group_by        text[] NOT NULL DEFAULT '{}',   -- of environment, model, prompt (tenant and app always)
    condition       jsonb NOT NULL,                 -- {"op", "threshold"} or {"op", "baseline", "factor", "days"}
    min_samples     integer NOT NULL CHECK (min_samples >= 0),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    channel_ids     bigint[] NOT NULL DEFAULT '{}', -- notifier channels; empty: every channel of the tenant
    resolve_after   integer NOT NULL CHECK (resolve_after >= 1),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (tenant_id, name)
);
CREATE INDEX monitors_live ON monitors (tenant_id) WHERE deleted_at IS NULL;
CREATE TRIGGER monitors_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON monitors
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();

-- One row per (monitor, group, window) evaluated: its value (what a baseline is computed from) and the
-- idempotency of the evaluation itself (a window evaluated again after a crash finds its row and stops).
CREATE TABLE monitor_evaluations (
    monitor_id      bigint NOT NULL,
    group_key       text NOT NULL,
    window_end      timestamptz NOT NULL,
    value           double precision,               -- NULL: no sample in the window
    samples         double precision NOT NULL,
    breaching       boolean NOT NULL,
    evaluated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (monitor_id, group_key, window_end)
);
CREATE INDEX monitor_evaluations_age ON monitor_evaluations (evaluated_at);

-- Where each (monitor, group) stands: ok or firing, and how many windows in a row have been clear.
CREATE TABLE monitor_states (
    monitor_id      bigint NOT NULL,
    group_key       text NOT NULL,
    tenant_id       text NOT NULL,
    status          text NOT NULL CHECK (status IN ('ok', 'firing')),
    firing_id       bigint,
    clear_streak    integer NOT NULL DEFAULT 0,
    last_window_end timestamptz NOT NULL,
    PRIMARY KEY (monitor_id, group_key)
);
CREATE INDEX monitor_states_firing ON monitor_states (monitor_id) WHERE status = 'firing';

-- A firing: opened by one window, resolved by a later one. Unique per (monitor, group, window): the row is
-- inserted, in the evaluation's transaction, before its alert message is published.
CREATE TABLE monitor_firings (
    firing_id           bigserial PRIMARY KEY,
    monitor_id          bigint NOT NULL,
    tenant_id           text NOT NULL,
    group_key           text NOT NULL,
    window_end          timestamptz NOT NULL,
    value               double precision,
    reference           double precision,           -- the threshold, or the baseline times its factor
    resolved_window_end timestamptz,
    opened_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    UNIQUE (monitor_id, group_key, window_end)
);
CREATE INDEX monitor_firings_tenant ON monitor_firings (tenant_id, monitor_id, firing_id DESC);

-- Alert messages decided in an evaluation's transaction, sent after its commit (and by the relay after a
-- crash between the two); `message_id` is the notifier's idempotency key (alert id, status, count).
CREATE TABLE monitor_alert_outbox (
    message_id      text PRIMARY KEY,
    fingerprint     text NOT NULL,
    tenant_id       text NOT NULL,
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX monitor_alert_outbox_pending ON monitor_alert_outbox (created_at) WHERE published_at IS NULL;
