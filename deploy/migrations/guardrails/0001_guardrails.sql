-- Guardrails: policies, findings, alerts, notification channels and the delivery log.
-- Nothing here holds raw prompt or completion text: findings keep a salted hash of the value.

CREATE TABLE guardrail_policies (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    app_id      text NOT NULL DEFAULT '',          -- '' = the tenant's policy for every app
    version     integer NOT NULL CHECK (version > 0),
    document    text NOT NULL,                     -- the YAML as submitted
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',          -- the API key id
    UNIQUE (tenant_id, app_id, version)
);

CREATE TABLE guardrail_findings (
    event_id        uuid NOT NULL,
    finding_no      integer NOT NULL,
    tenant_id       text NOT NULL,
    app_id          text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    message_index   integer,                       -- NULL for a plain-text input/output
    part            text NOT NULL,                 -- input | output
    role            text,
    detector        text NOT NULL,
    entity_type     text NOT NULL,                 -- PII entity or rule-specific type
    rule_id         text,
    start_offset    integer NOT NULL,
    end_offset      integer NOT NULL,
    score           double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    value_hash      text NOT NULL,                 -- HMAC-SHA256 with the deployment's salt; never the value
    policy_version  text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, finding_no)
);
CREATE INDEX guardrail_findings_tenant_time ON guardrail_findings (tenant_id, occurred_at DESC);

CREATE TABLE guardrail_alerts (
    alert_id        uuid PRIMARY KEY,
    fingerprint     text NOT NULL,                 -- tenant, app, rule, detector
    tenant_id       text NOT NULL,
    app_id          text NOT NULL,
    rule_id         text NOT NULL,
    detector        text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    title           text NOT NULL,
    count           integer NOT NULL DEFAULT 0,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one unresolved alert per fingerprint: occurrences group into it.
CREATE UNIQUE INDEX guardrail_alerts_one_active ON guardrail_alerts (fingerprint) WHERE status <> 'resolved';
CREATE INDEX guardrail_alerts_tenant ON guardrail_alerts (tenant_id, status, last_seen DESC);

-- Which events an alert counted: makes `count` idempotent under redelivery.
CREATE TABLE guardrail_alert_events (
    alert_id    uuid NOT NULL REFERENCES guardrail_alerts (alert_id),
    event_id    uuid NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

CREATE TABLE notification_channels (
    channel_id          bigserial PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (tenant_id),
    name                text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('webhook', 'slack', 'pagerduty')),
    url                 text NOT NULL,
    secret              text NOT NULL DEFAULT '',  -- webhook HMAC key or PagerDuty routing key
    min_severity        text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('info', 'warning', 'critical')),
    repeat_interval_s   integer NOT NULL DEFAULT 3600 CHECK (repeat_interval_s >= 0),
    enabled             boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    message_id      text NOT NULL,                 -- one alert message (an alert's open/update/resolve)
    alert_id        text NOT NULL,
    fingerprint     text NOT NULL,
    channel_id      bigint NOT NULL REFERENCES notification_channels (channel_id),
    tenant_id       text NOT NULL,
    action          text NOT NULL CHECK (action IN ('trigger', 'resolve')),
    status          text NOT NULL CHECK (status IN ('delivered', 'suppressed', 'failed')),
    attempts        integer NOT NULL,
    http_status     integer,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- A delivered notification is never sent twice for the same alert message and channel.
CREATE UNIQUE INDEX notification_deliveries_once
    ON notification_deliveries (message_id, channel_id) WHERE status = 'delivered';
CREATE INDEX notification_deliveries_tenant ON notification_deliveries (tenant_id, created_at DESC);
