-- Evaluator configs: a change notifies running workers (shared 0002), which reload before their next batch.
CREATE TRIGGER evaluators_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON evaluators
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
