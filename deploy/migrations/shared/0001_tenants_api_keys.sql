-- Tenants and API keys: shared by every service.
CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A key is shown once, at creation. Only its SHA-256 is kept: keys are 256-bit random secrets, so a
-- fast hash is as safe as a slow one here and keeps the per-request look-up cheap.
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,              -- public part, also the key's prefix ("lk_<key_id>_...")
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    key_hash      bytea NOT NULL UNIQUE,
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    name          text NOT NULL DEFAULT '',
    rate_limit_per_s integer CHECK (rate_limit_per_s IS NULL OR rate_limit_per_s > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Messages a worker could not process, whatever the service; `llmops dlq replay` sends them back.
CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    consumer      text NOT NULL,                 -- the consumer group that gave up on it
    topic         text NOT NULL,
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    message_key   bytea,
    reason        text NOT NULL,
    error         text NOT NULL,
    event_id      uuid,
    tenant_id     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    replayed_at   timestamptz,
    UNIQUE (consumer, topic, partition, "offset")
);
