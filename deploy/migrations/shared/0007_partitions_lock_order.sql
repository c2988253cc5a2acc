-- Partition creation takes its locks in the order queries do: the parent, then the default partition.
--
-- 0005's function locked the default partition (to look for rows of the new range in it) and only then
-- the parent, which `CREATE TABLE ... PARTITION OF` locks in ACCESS EXCLUSIVE mode. A query of the table
-- locks the parent first and its partitions after: one that had the parent and waited for the default
-- partition deadlocked with the writer, and Postgres aborted one of them (seen as a reader's `count(*)` on
-- the ledger or the span table chosen as the victim, and a writer's batch could as well). Now the writer
-- takes the parent in ACCESS EXCLUSIVE mode before the default partition: a query holding the parent
-- finishes first, one arriving later waits for the writer. The rest is 0005's function unchanged.
CREATE OR REPLACE FUNCTION llmops_ensure_range_partitions(parent regclass, instants timestamptz[],
                                               not_before timestamptz, not_after timestamptz, unit text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    schema_name  text;
    table_name   text;
    key_column   text;
    default_name text;
    step         interval;
    suffix       text;
    range_start  timestamp;
    lower_bound  timestamptz;
    upper_bound  timestamptz;
    part_name    text;
    held         boolean;
    created      integer := 0;
BEGIN
    IF unit = 'month' THEN
        step := interval '1 month'; suffix := 'YYYY_MM';
    ELSIF unit = 'day' THEN
        step := interval '1 day'; suffix := 'YYYY_MM_DD';
    ELSE
        RAISE EXCEPTION 'unit must be month or day, not %', unit;
    END IF;
    SELECT n.nspname, c.relname INTO schema_name, table_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    SELECT a.attname INTO key_column
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent AND p.partstrat = 'r' AND p.partnatts = 1;
    IF key_column IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent;
    END IF;
    SELECT d.relname INTO default_name
    FROM pg_partitioned_table p JOIN pg_class d ON d.oid = p.partdefid WHERE p.partrelid = parent;
    FOR range_start IN
        SELECT DISTINCT r FROM unnest(instants) AS i, LATERAL (SELECT date_trunc(unit, i AT TIME ZONE 'UTC') AS r) t
        WHERE i IS NOT NULL
          AND (r + step) AT TIME ZONE 'UTC' > not_before AND r AT TIME ZONE 'UTC' < not_after
        ORDER BY r
    LOOP
        part_name := table_name || '_' || to_char(range_start, suffix);
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(hashtext('llmops.partitions.' || schema_name || '.' || table_name));
        -- Inserts hold ROW EXCLUSIVE on the parent, which this mode lets through; taking it reads the
        -- catalog afresh, so a partition another writer made while we waited is seen here.
        EXECUTE format('LOCK TABLE %I.%I IN SHARE UPDATE EXCLUSIVE MODE', schema_name, table_name);
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        lower_bound := range_start AT TIME ZONE 'UTC';
        upper_bound := (range_start + step) AT TIME ZONE 'UTC';
        BEGIN
            held := false;
            IF default_name IS NOT NULL THEN
                -- The parent before its default partition, the order in which every query locks them
                -- (CREATE TABLE ... PARTITION OF takes this lock on the parent anyway).
                EXECUTE format('LOCK TABLE ONLY %I.%I IN ACCESS EXCLUSIVE MODE', schema_name, table_name);
                EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', schema_name, default_name);
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %I >= $1 AND %I < $2)',
                               schema_name, default_name, key_column, key_column)
                    INTO held USING lower_bound, upper_bound;
            END IF;
            IF held THEN
                EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               schema_name, part_name, schema_name, table_name);
                EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                               'INSERT INTO %I.%I SELECT * FROM moved',
                               schema_name, default_name, key_column, key_column, schema_name, part_name)
                    USING lower_bound, upper_bound;
                EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                               schema_name, table_name, schema_name, part_name, lower_bound, upper_bound);
            ELSE
                EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                               schema_name, part_name, schema_name, table_name, lower_bound, upper_bound);
            END IF;
            created := created + 1;
        EXCEPTION WHEN duplicate_table THEN
            NULL;  -- made by another writer meanwhile: what we wanted
        END;
    END LOOP;
    RETURN created;
END $$;
