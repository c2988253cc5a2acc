-- Channel secrets at rest (docs/security.md, "Channel secrets"): a channel's URL (webhook and Slack URLs
-- carry tokens) and its secret (a webhook's signing key, a PagerDuty routing key) are stored encrypted with
-- the operator's key (Fernet, `LLMOPS_GUARDRAILS_CHANNEL_KEYS`) once `sealed`; what the API shows of them
-- is kept beside them, masked: `url_hint` (scheme://host/…) and `secret_hint` (****abcd).
--
-- Rows written before this migration hold plain text (sealed = false). The key is the application's, not
-- the database's, so SQL cannot encrypt them: the notifier seals them when it starts
-- (`llmops_guardrails.channel_secrets.reseal`), and reads both forms meanwhile.
--
-- PagerDuty events go to PagerDuty's Events API only (the operator's `LLMOPS_NOTIFIER_PAGERDUTY_URL`), no
-- longer to a URL a tenant chose: a PagerDuty channel has no URL of its own.
ALTER TABLE notification_channels
    ADD COLUMN sealed      boolean NOT NULL DEFAULT false,
    ADD COLUMN url_hint    text,
    ADD COLUMN secret_hint text;

UPDATE notification_channels SET url = '' WHERE kind = 'pagerduty';

ALTER TABLE notification_channels
    ADD CONSTRAINT notification_channels_pagerduty_no_url CHECK (kind <> 'pagerduty' OR url = ''),
    -- Sealed values are Fernet tokens (version byte 0x80, then the time: `gAAAAA` in base64): never plain text.
    ADD CONSTRAINT notification_channels_sealed_tokens CHECK (
        NOT sealed OR ((url = '' OR url LIKE 'gAAAAA%') AND (secret = '' OR secret LIKE 'gAAAAA%')));
