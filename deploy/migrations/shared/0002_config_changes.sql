-- Configuration changes reach running processes at once: every statement that changes a configuration
-- table notifies the channel `llmops_config` with the table's name, delivered when its transaction
-- commits. Processes LISTEN (`llmops_shared.config_changes.ConfigWatcher`) and reload what changed.
CREATE FUNCTION llmops_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('llmops_config', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
