-- Evaluator ids are the tenant's own (issue 11, item 5): the key of an evaluator is (tenant_id, evaluator_id),
-- so two tenants may both have `support-quality`, and creating one never tells a tenant that another tenant
-- uses an id. Results and review items refer to an evaluator by (tenant_id, evaluator_id); a result's key
-- gains tenant_id (two tenants' events may share an id). Works whether or not `evaluation_results` is
-- partitioned (a partitioned table's primary key must hold its partition key, occurred_at).

-- Foreign keys that refer to the evaluators' old key, whatever they are named.
DO $$
DECLARE fk record;
BEGIN
    FOR fk IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
              WHERE contype = 'f' AND confrelid = 'evaluators'::regclass
                AND conparentid = 0  -- a partitioned table's own constraint, not its partitions' copies
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
    END LOOP;
END $$;

ALTER TABLE evaluators DROP CONSTRAINT evaluators_pkey;
ALTER TABLE evaluators ADD PRIMARY KEY (tenant_id, evaluator_id);
DROP INDEX IF EXISTS evaluators_tenant;  -- the primary key leads with tenant_id

DO $$
DECLARE
    partitioned boolean := (SELECT relkind = 'p' FROM pg_class WHERE oid = 'evaluation_results'::regclass);
    pkey text := (SELECT conname FROM pg_constraint
                  WHERE conrelid = 'evaluation_results'::regclass AND contype = 'p');
BEGIN
    EXECUTE format('ALTER TABLE evaluation_results DROP CONSTRAINT %I', pkey);
    EXECUTE 'ALTER TABLE evaluation_results ADD PRIMARY KEY (tenant_id, event_id, evaluator_id, rubric, rubric_version'
            || CASE WHEN partitioned THEN ', occurred_at)' ELSE ')' END;
END $$;

ALTER TABLE evaluation_results
    ADD FOREIGN KEY (tenant_id, evaluator_id) REFERENCES evaluators (tenant_id, evaluator_id);
ALTER TABLE review_queue
    ADD FOREIGN KEY (tenant_id, evaluator_id) REFERENCES evaluators (tenant_id, evaluator_id);

DROP INDEX IF EXISTS evaluation_results_failed;
CREATE INDEX evaluation_results_failed ON evaluation_results (tenant_id, evaluator_id, created_at)
    WHERE status <> 'ok';
