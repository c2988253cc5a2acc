-- Billing, sixteenth step: `usage_trace_costs` keeps one index instead of two (issue 17, item 3).
--
-- Its primary key (0010) and `usage_trace_costs_cost_by_trace` (0011, for index-only reads of a trace's cost)
-- had the same key, (tenant_id, trace_id, bucket): the worker's batch statement wrote both for every trace
-- and day it touched (in the benchmark's mix, a row per billed event). The primary key now carries the
-- covering index's included columns, so the reads stay index-only and the upserts' conflict target, the
-- same three columns, is this key.
ALTER TABLE usage_trace_costs DROP CONSTRAINT usage_trace_costs_pkey;
DROP INDEX usage_trace_costs_cost_by_trace;
ALTER TABLE usage_trace_costs ADD CONSTRAINT usage_trace_costs_pkey PRIMARY KEY (tenant_id, trace_id, bucket)
    INCLUDE (event_count, unpriced_count, cost_total);
