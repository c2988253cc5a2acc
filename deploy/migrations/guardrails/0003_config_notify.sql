-- Policies and notification channels: a change notifies running processes (shared 0002).
CREATE TRIGGER guardrail_policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON guardrail_policies
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER notification_channels_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notification_channels
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
