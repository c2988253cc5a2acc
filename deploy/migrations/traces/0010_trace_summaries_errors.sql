-- The summary rows with an error, by tenant and time: `GET /v1/traces?status=error` reads the matching traces
-- from them when its time-ordered walk of every row (`store/reads.py`, `_walked_page`) ends before a page
-- is full, i.e. when few traces have an error (a sequential scan of the range's partitions otherwise: at
-- 10 M spans, a day is 83,000 rows for ~6,000 with an error). Additive: an index only.
CREATE INDEX trace_summaries_tenant_errors ON trace_summaries (tenant_id, first_at DESC) WHERE error_count > 0;
