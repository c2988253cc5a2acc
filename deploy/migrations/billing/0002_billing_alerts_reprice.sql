-- Billing, second step: the alert outbox and the re-pricing audit trail (docs/billing.md).

-- Alerts (budget threshold crossings, unpriced models) are decided inside the worker's batch transaction
-- and written here in that same transaction; they are sent to Kafka after the commit and marked
-- published once the broker has them. A crash between the commit and the send leaves the row pending,
-- and the worker's relay sends it later: an alert decided is never lost. The message is sent with its
-- deterministic alert_id, so a repeat is recognisable downstream.
CREATE TABLE billing_alert_outbox (
    alert_id               uuid PRIMARY KEY,
    fingerprint            text NOT NULL,                     -- the Kafka key
    tenant_id              text NOT NULL,
    rule                   text NOT NULL,
    payload                text NOT NULL,                     -- the JSON message, exactly as sent
    created_at             timestamptz NOT NULL DEFAULT now(),
    published_at           timestamptz
);
CREATE INDEX billing_alert_outbox_pending ON billing_alert_outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX billing_alert_outbox_tenant ON billing_alert_outbox (tenant_id, created_at DESC);

-- One row per `llmops billing reprice` run: what it covered and what it changed.
CREATE TABLE billing_reprice_runs (
    id                     bigserial PRIMARY KEY,
    from_ts                timestamptz NOT NULL,
    to_ts                  timestamptz NOT NULL,
    tenant_id              text,                              -- NULL: every tenant
    model_key              text,                              -- NULL: every model
    dry_run                boolean NOT NULL DEFAULT false,
    rows_examined          bigint NOT NULL DEFAULT 0,
    rows_changed           bigint NOT NULL DEFAULT 0,
    cost_before            numeric(38,20) NOT NULL DEFAULT 0, -- sum of cost_total of the changed rows
    cost_after             numeric(38,20) NOT NULL DEFAULT 0,
    started_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz,
    CHECK (to_ts > from_ts)
);

