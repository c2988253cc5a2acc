-- The prompts report (and the console's experiment page) reads an experiment's calls from the ledger by tenant,
-- prompt and time (`llmops_prompts.store.calls`: every priced call's cost for the bootstrap over the whole
-- experiment, and each hour the report cache does not hold). No ledger index starts with the prompt, so each of
-- those reads scanned every ledger row of the range: at 10 M spans (bench/console_pages.py) December's 500,000
-- rows for its 10,000 experiment calls, 93-124 ms a report. This index holds the calls of an experiment only
-- (`prompt_variant` is '' outside one), so billing's writes of other calls do not touch it, and it covers what
-- the cost read needs. Additive; built at the migration from the ledger as it is.
CREATE INDEX usage_ledger_experiment_calls ON usage_ledger (tenant_id, prompt_name, occurred_at)
    INCLUDE (prompt_variant, cost_total, event_id) WHERE prompt_variant <> '';
