-- The experiment report's cache of closed hours (services/prompts, docs/prompts.md, "The report at scale"):
-- per (tenant, prompt, unit) and stretch of time that has ended (a whole UTC hour, or the part of one that a
-- report's window starts or ends in: at most one such part per hour is kept) what the report reads from the
-- ledger, the spans, the findings and the judge's results of that stretch, aggregated once by the prompts API
-- and read back instead of the raw rows. A stretch's row is used only while its `stamp` (of its hour) (what the sources' own per-hour counters said when it was
-- aggregated, in the same snapshot) still matches: a late event, a re-pricing, a late or replaced score, a
-- late finding or an erasure changes the counters, and the hour is aggregated again (and replaced, never
-- added to: re-aggregating is idempotent). Numbers and 64-bit hashes of unit ids only; no text.

CREATE TABLE prompt_report_hours (
    tenant_id    text        NOT NULL,
    prompt_name  text        NOT NULL,
    unit         text        NOT NULL CHECK (unit IN ('user', 'session', 'trace')),
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    hour         timestamptz NOT NULL,               -- the UTC hour of [since, until)
    stamp        text        NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, prompt_name, unit, since, until),
    CHECK (hour <= since AND since < until AND until <= hour + interval '1 hour')
);
CREATE INDEX prompt_report_hours_by_hour ON prompt_report_hours (tenant_id, prompt_name, unit, hour);

-- One row per variant seen in the stretch (every variant of the prompt, not only one experiment's).
CREATE TABLE prompt_report_hour_variants (
    tenant_id    text        NOT NULL,
    prompt_name  text        NOT NULL,
    unit         text        NOT NULL,
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    variant      text        NOT NULL,
    calls        bigint      NOT NULL,
    errors       bigint      NOT NULL,
    findings     bigint      NOT NULL,           -- calls with at least one guardrail finding
    cost_n       bigint      NOT NULL,           -- priced calls
    cost_sum     numeric     NOT NULL,           -- exact sums of cost_total and of its square
    cost_sq      numeric     NOT NULL,
    units        bytea       NOT NULL,           -- the distinct units' 64-bit hashes (int8send each)
    latencies    bytea       NOT NULL,           -- the spans' latencies, ascending (float8send each)
    scores       jsonb       NOT NULL,           -- {rubric: [n, "sum", "sum of squares"]}
    PRIMARY KEY (tenant_id, prompt_name, unit, since, until, variant),
    FOREIGN KEY (tenant_id, prompt_name, unit, since, until) REFERENCES prompt_report_hours ON DELETE CASCADE
);
-- Hashes and floats do not compress: skip the attempt.
ALTER TABLE prompt_report_hour_variants ALTER COLUMN units SET STORAGE EXTERNAL,
                                        ALTER COLUMN latencies SET STORAGE EXTERNAL;
