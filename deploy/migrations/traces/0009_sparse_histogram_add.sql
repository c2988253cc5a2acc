-- The writer's rollup increments travel sparse: per rollup row, the histogram positions (1-based) a batch
-- touched and their counts, a few per row, instead of two 162-element arrays per row. At the trace store
-- benchmark's rates (a batch of 1,000 spans touches ~370 rollup rows of each table) sending the dense
-- arrays cost 30 ms per 60,000 elements, and adding them with `traces_hist_add` (a loop over every
-- element) about as much again; this function loops over the touched positions only.
-- `a` NULL (a new row) reads as `buckets` zeros, a shorter one is padded with zeros; the positions are
-- within 1 .. `buckets` (the writer's `histogram.bucket_of` + 1).
CREATE FUNCTION traces_hist_add_sparse(a bigint[], positions integer[], counts bigint[], buckets integer)
RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    i integer;
    p integer;
BEGIN
    IF a IS NULL THEN
        a := array_fill(0::bigint, ARRAY[buckets]);
    ELSIF cardinality(a) < buckets THEN
        a := a || array_fill(0::bigint, ARRAY[buckets - cardinality(a)]);
    END IF;
    FOR i IN 1 .. coalesce(cardinality(positions), 0) LOOP
        p := positions[i];
        a[p] := coalesce(a[p], 0) + counts[i];
    END LOOP;
    RETURN a;
END $$;
