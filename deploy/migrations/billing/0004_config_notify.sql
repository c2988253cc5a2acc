-- Prices, discounts and budgets are configuration: a change notifies running processes (shared 0002).
CREATE TRIGGER model_prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER model_price_tiers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON model_price_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER tenant_price_discounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant_price_discounts
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER budgets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON budgets
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
