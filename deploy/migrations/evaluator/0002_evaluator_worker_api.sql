-- The stream worker and the API (issue 6, items 3 and 4).

-- What the worker needs to publish a judgment's usage event again, byte for byte, when a batch is
-- redelivered after its rows were committed: the event's id, its time and the judge's latency.
ALTER TABLE evaluation_results
    ADD COLUMN judged_at       timestamptz,                        -- when the judge answered
    ADD COLUMN latency_ms      double precision CHECK (latency_ms >= 0),
    ADD COLUMN usage_event_id  uuid;                               -- the judge usage event of this row, if any

-- GET /v1/results: newest first, keyset pagination on the primary key within a tenant.
CREATE INDEX evaluation_results_tenant_recent
    ON evaluation_results (tenant_id, occurred_at, event_id, evaluator_id, rubric, rubric_version);

-- GET /v1/agreement: a tenant's feedback on one rubric.
CREATE INDEX human_feedback_rubric ON human_feedback (tenant_id, rubric);

-- Who completed a review item, and with which feedback.
ALTER TABLE review_queue
    ADD COLUMN completed_by  text,
    ADD COLUMN feedback_id   bigint REFERENCES human_feedback (id) ON DELETE SET NULL;
