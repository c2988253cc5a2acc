-- The evaluator's tables: evaluators, judge scores, human feedback, the review queue, golden-dataset runs.
--
-- Privacy: nothing here holds raw prompt or completion text. The judge only ever sees interactions as they
-- are on llm.interactions.clean (redacted per policy), so its reasoning, which may quote what it saw, quotes
-- redacted text only. Golden-dataset items are stored by id, not by text.

-- One evaluator of one tenant; `config` is an llmops_evaluator.config.EvaluatorConfig as JSON. It names
-- the environment variable holding the judge's key, never the key.
CREATE TABLE evaluators (
    evaluator_id  text PRIMARY KEY CHECK (evaluator_id ~ '^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$'),
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    config        jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluators_tenant ON evaluators (tenant_id);

-- One row per (event, evaluator, rubric version), whatever happened: ok, unparseable, error (also
-- dead-lettered) or skipped (rubric not applicable, spend cap reached). Upserted: a redelivery never
-- replaces an `ok` row; a later attempt replaces a row that was not `ok`.
CREATE TABLE evaluation_results (
    event_id        uuid NOT NULL,
    evaluator_id    text NOT NULL REFERENCES evaluators (evaluator_id),
    rubric          text NOT NULL,
    rubric_version  integer NOT NULL CHECK (rubric_version > 0),
    tenant_id       text NOT NULL,
    app_id          text NOT NULL,
    occurred_at     timestamptz NOT NULL,            -- the judged interaction's time
    status          text NOT NULL CHECK (status IN ('ok', 'unparseable', 'error', 'skipped')),
    score           double precision CHECK (score >= 0 AND score <= 1),  -- normalised
    raw_score       integer,                         -- on the rubric's scale
    label           text,
    reasoning       text,                            -- the judge's, over redacted text
    judge_model     text NOT NULL,
    input_tokens    integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    from_cache      boolean NOT NULL DEFAULT false,
    error_type      text,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, evaluator_id, rubric, rubric_version),
    CHECK ((status = 'ok') = (score IS NOT NULL)),
    CHECK (status = 'ok' OR error_type IS NOT NULL)
);
CREATE INDEX evaluation_results_tenant_time ON evaluation_results (tenant_id, evaluator_id, occurred_at);
CREATE INDEX evaluation_results_failed ON evaluation_results (evaluator_id, created_at) WHERE status <> 'ok';

-- A person's judgment of an interaction, on a rubric (or overall when rubric is ''), for agreement reports.
CREATE TABLE human_feedback (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    event_id      uuid NOT NULL,
    rubric        text NOT NULL DEFAULT '',
    score         double precision CHECK (score >= 0 AND score <= 1),
    label         text,
    comment       text,
    reviewer      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, event_id, rubric, reviewer),
    CHECK (score IS NOT NULL OR label IS NOT NULL)
);
CREATE INDEX human_feedback_event ON human_feedback (tenant_id, event_id);

-- Interactions waiting for a person. A reviewer takes an item by setting lock_owner and lock_expires_at
-- (SELECT ... FOR UPDATE SKIP LOCKED); an expired lock makes the item available again.
CREATE TABLE review_queue (
    item_id          bigserial PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (tenant_id),
    event_id         uuid NOT NULL,
    evaluator_id     text REFERENCES evaluators (evaluator_id),
    rubric           text NOT NULL DEFAULT '',
    reason           text NOT NULL,                  -- low_score, unparseable, disagreement, random_sample...
    priority         integer NOT NULL DEFAULT 0,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dismissed')),
    lock_owner       text,
    lock_expires_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (tenant_id, event_id, rubric),
    CHECK ((lock_owner IS NULL) = (lock_expires_at IS NULL))
);
CREATE INDEX review_queue_pending ON review_queue (tenant_id, priority DESC, created_at) WHERE status = 'pending';

-- Golden-dataset runs (`llmops eval run`): a dataset's items through a target model, judged, and compared
-- with a baseline run.
CREATE TABLE eval_runs (
    run_id           uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (tenant_id),
    dataset          text NOT NULL,
    dataset_sha256   text NOT NULL,
    target_model     text NOT NULL,
    judge_model      text NOT NULL,
    rubrics          text[] NOT NULL,
    baseline_run_id  uuid REFERENCES eval_runs (run_id),
    status           text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'passed', 'failed', 'error')),
    summary          jsonb NOT NULL DEFAULT '{}'::jsonb,   -- per rubric: mean, pass rate, drop vs baseline
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX eval_runs_tenant ON eval_runs (tenant_id, dataset, started_at DESC);

CREATE TABLE eval_run_items (
    run_id          uuid NOT NULL REFERENCES eval_runs (run_id) ON DELETE CASCADE,
    item_id         text NOT NULL,
    rubric          text NOT NULL,
    rubric_version  integer NOT NULL CHECK (rubric_version > 0),
    status          text NOT NULL CHECK (status IN ('ok', 'unparseable', 'error', 'skipped')),
    score           double precision CHECK (score >= 0 AND score <= 1),
    label           text,
    reasoning       text,
    passed          boolean,
    input_tokens    integer NOT NULL DEFAULT 0,
    output_tokens   integer NOT NULL DEFAULT 0,
    error_type      text,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, item_id, rubric, rubric_version)
);
