-- The day partitions of the trace tables through the shared function (shared 0005), which survives
-- writers racing for the same new day; 0001's copy of it did not.
CREATE OR REPLACE FUNCTION traces_ensure_day_partitions(parent regclass, instants timestamptz[],
                                                        not_before timestamptz, not_after timestamptz)
RETURNS integer LANGUAGE sql AS $$
    SELECT llmops_ensure_range_partitions(parent, instants, not_before, not_after, 'day')
$$;
