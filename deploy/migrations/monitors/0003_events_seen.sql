-- Monitors, third step: every source counts an event once, not only `billing.usage` (issue 15).
--
-- The guardrails and evaluator workers, like billing's outbox, may publish a message again after a crash
-- of their own (same event, another offset): a clean interaction or a judge score would then count twice
-- in a window. Each route of the worker now records, per consumer group and route (`consumer` is
-- `<group>/<route code>`: "c" clean interactions, "s" judge scores, "u" usage), which message first brought
-- each event, and observes only that one. A judge score's id is a UUIDv5 of (event, evaluator, rubric,
-- rubric version). Rows are deleted after `LLMOPS_MONITORS_EVENTS_SEEN_KEEP_H` (24 h).
ALTER TABLE monitor_usage_seen RENAME TO monitor_events_seen;
ALTER INDEX monitor_usage_seen_age RENAME TO monitor_events_seen_age;
ALTER INDEX monitor_usage_seen_pkey RENAME TO monitor_events_seen_pkey;
DELETE FROM monitor_events_seen;  -- rows of the old per-group key; a restart re-reads nothing older than a day
