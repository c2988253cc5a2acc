-- Monthly range partitions (UTC months) for the tables that grow with traffic: the billing ledger and its
-- dedupe table, guardrail findings and alert events, evaluation results (docs/architecture.md,
-- "Retention"). Each such table has a DEFAULT partition and month partitions named <table>_YYYY_MM,
-- created on demand by its writer (`llmops_shared.partitions.ensure_month_partitions`) for the months of
-- the rows it is about to insert, but only for months that overlap [not_before, not_after) (a window
-- around the writer's clock): a row outside it (a backfill, a producer's broken clock) goes to the
-- default partition, so no input can create partitions without bound. Old months are dropped whole by
-- `llmops retention`.
--
-- Postgres refuses to create a partition while the default partition holds rows of its range; so when it
-- does (a month that was outside the window when its rows came, inside it now), those rows are moved:
-- the new month is created as a plain table, the rows are moved into it from the default partition and it
-- is attached. The default partition is locked meanwhile, so no row of that month slips in between.
-- One creator per table at a time (an advisory lock); the loser of a race sees the table once it is free.
CREATE FUNCTION llmops_ensure_month_partitions(parent regclass, instants timestamptz[],
                                               not_before timestamptz, not_after timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    schema_name  text;
    table_name   text;
    key_column   text;
    default_name text;
    month_start  timestamp;
    lower_bound  timestamptz;
    upper_bound  timestamptz;
    part_name    text;
    held         boolean;
    created      integer := 0;
BEGIN
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
    FOR month_start IN
        SELECT DISTINCT m FROM unnest(instants) AS i, LATERAL (SELECT date_trunc('month', i AT TIME ZONE 'UTC') AS m) t
        WHERE i IS NOT NULL
          AND (m + interval '1 month') AT TIME ZONE 'UTC' > not_before AND m AT TIME ZONE 'UTC' < not_after
        ORDER BY m
    LOOP
        part_name := table_name || '_' || to_char(month_start, 'YYYY_MM');
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(hashtext('llmops.partitions.' || schema_name || '.' || table_name));
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        lower_bound := month_start AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month') AT TIME ZONE 'UTC';
        held := false;
        IF default_name IS NOT NULL THEN
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
    END LOOP;
    RETURN created;
END $$;
