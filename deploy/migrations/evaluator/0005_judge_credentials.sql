-- Judge keys are credentials the operator grants (issue 11, item 1; docs/security.md). An evaluator named
-- `judge.api_key_env`, the environment variable holding its key, which let a tenant have any variable of the
-- worker sent to any server. It now names `judge.credential`, declared by the operator
-- (LLMOPS_EVALUATOR_CREDENTIALS) with its key, the base URLs it may be sent to and the tenants it is granted to.
--
-- Stored configs are moved, not disabled: `api_key_env` becomes `credential` with the same text. Nothing is
-- sent until the operator declares a credential of that name for that tenant and endpoint (to keep such an
-- evaluator judging as before: {"ACME_JUDGE_KEY": {"key_env": "ACME_JUDGE_KEY", "base_urls": [...],
-- "tenants": ["acme"]}}); until then its judgments are error rows saying "credential unavailable". A config
-- that named LLMOPS_DATABASE_URL names a credential no operator declares.
UPDATE evaluators
SET config = jsonb_set(config #- '{judge,api_key_env}', '{judge,credential}', config #> '{judge,api_key_env}')
WHERE jsonb_typeof(config -> 'judge') = 'object' AND (config -> 'judge') ? 'api_key_env';
