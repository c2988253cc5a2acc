-- API keys: a key created, revoked or changed (by `llmops keys`, an API or plain SQL) notifies every running
-- API (shared 0002), whose in-process cache of verified keys (`llmops_shared.apikeys.KeyStore`) is emptied
-- at once: a revocation is in force in every process within a second.
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
