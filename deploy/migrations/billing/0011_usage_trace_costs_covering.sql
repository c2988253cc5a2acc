-- The trace store's trace list sorted by cost reads every matching trace's cost (`usage_trace_costs` by
-- tenant, trace id and the range's days) before it cuts the page: an app's week at 10 M spans, ~580 traces,
-- each one an index probe and a heap page. The columns it reads are in this index, so each probe is an
-- index-only scan: one random page instead of two, in an index about half the size of the table and its key.
-- Additive. Its price: the worker's upserts of these rows also update this index (no HOT update, as
-- the cost and count columns are in it).
CREATE INDEX usage_trace_costs_cost_by_trace ON usage_trace_costs (tenant_id, trace_id, bucket)
    INCLUDE (event_count, unpriced_count, cost_total);
