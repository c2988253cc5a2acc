-- The evaluator, fourth step: `evaluation_results` is partitioned by UTC month of `occurred_at` (the judged
-- interaction's time), with a DEFAULT partition, so old months are dropped whole by `llmops retention`
-- (docs/architecture.md, "Retention"); month partitions are created by the writer
-- (`llmops_shared.partitions.ensure_month_partitions`, shared 0004).
--
-- A partitioned table's unique keys must include the partition key: the primary key becomes (event_id,
-- evaluator_id, rubric, rubric_version, occurred_at) and the worker's upsert names it in ON CONFLICT. An
-- event's occurred_at never changes, so a redelivered event still meets its row (and an `ok` row is still
-- never replaced). Rows are copied from the old table, which is then dropped; run this migration with the
-- evaluator workers stopped.

ALTER TABLE evaluation_results RENAME TO evaluation_results_unpartitioned;
ALTER INDEX evaluation_results_pkey RENAME TO evaluation_results_unpartitioned_pkey;
ALTER INDEX evaluation_results_tenant_time RENAME TO evaluation_results_unpartitioned_tenant_time;
ALTER INDEX evaluation_results_failed RENAME TO evaluation_results_unpartitioned_failed;
ALTER INDEX evaluation_results_tenant_recent RENAME TO evaluation_results_unpartitioned_tenant_recent;

CREATE TABLE evaluation_results (
    LIKE evaluation_results_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (event_id, evaluator_id, rubric, rubric_version, occurred_at),
    FOREIGN KEY (evaluator_id) REFERENCES evaluators (evaluator_id)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE evaluation_results_default PARTITION OF evaluation_results DEFAULT;
CREATE INDEX evaluation_results_tenant_time ON evaluation_results (tenant_id, evaluator_id, occurred_at);
CREATE INDEX evaluation_results_failed ON evaluation_results (evaluator_id, created_at) WHERE status <> 'ok';
CREATE INDEX evaluation_results_tenant_recent
    ON evaluation_results (tenant_id, occurred_at, event_id, evaluator_id, rubric, rubric_version);

SELECT llmops_ensure_month_partitions('evaluation_results',
                                      ARRAY(SELECT DISTINCT date_trunc('month', occurred_at) FROM evaluation_results_unpartitioned),
                                      now() - interval '93 days', now() + interval '62 days');
INSERT INTO evaluation_results SELECT * FROM evaluation_results_unpartitioned;
DROP TABLE evaluation_results_unpartitioned;
