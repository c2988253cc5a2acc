-- Prompt management (services/prompts, docs/prompts.md): prompts, their immutable versions, movable labels
-- with an audited history, and experiments between versions or labels. Every key leads with the tenant.

CREATE TABLE prompts (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    type        text        NOT NULL CHECK (type IN ('text', 'chat')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- A version never changes: no UPDATE or DELETE is ever issued on it.
CREATE TABLE prompt_versions (
    tenant_id       text        NOT NULL,
    name            text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    template        jsonb       NOT NULL,          -- a string (text) or a list of {role, content} (chat)
    config          jsonb       NOT NULL DEFAULT '{}',
    variables       text[]      NOT NULL,
    content_hash    text        NOT NULL,          -- sha256 of template and config: an unchanged push is no version
    commit_message  text        NOT NULL DEFAULT '',
    author          text        NOT NULL,          -- the id of the key that created it
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version),
    FOREIGN KEY (tenant_id, name) REFERENCES prompts (tenant_id, name)
);

-- A label points at one version of its prompt; `latest` is never stored (it is the highest version).
CREATE TABLE prompt_labels (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    label       text        NOT NULL CHECK (label <> 'latest'),
    version     integer     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (tenant_id, name, label),
    FOREIGN KEY (tenant_id, name, version) REFERENCES prompt_versions (tenant_id, name, version)
);

-- Every label move, append-only: who moved which label from which version to which, when.
CREATE TABLE prompt_label_history (
    id            bigserial   PRIMARY KEY,
    tenant_id     text        NOT NULL,
    name          text        NOT NULL,
    label         text        NOT NULL,
    from_version  integer,                         -- NULL: the label was new
    to_version    integer,                         -- NULL: the label was removed
    moved_by      text        NOT NULL,
    moved_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prompt_label_history_by_prompt ON prompt_label_history (tenant_id, name, id);

-- An experiment splits the callers of one label of a prompt between variants (versions or labels).
CREATE TABLE prompt_experiments (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    prompt_name   text        NOT NULL,
    label         text        NOT NULL,            -- the label whose callers are split (usually production)
    unit          text        NOT NULL CHECK (unit IN ('user', 'session', 'trace')),
    variants      jsonb       NOT NULL,            -- [{name, version | label, weight}]
    holdout       double precision NOT NULL DEFAULT 0 CHECK (holdout >= 0 AND holdout < 1),
    status        text        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'stopped')),
    description   text        NOT NULL DEFAULT '',
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    stopped_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, prompt_name) REFERENCES prompts (tenant_id, name)
);
-- At most one running experiment per prompt and label: a caller is never in two.
CREATE UNIQUE INDEX prompt_experiments_one_running ON prompt_experiments (tenant_id, prompt_name, label)
    WHERE status = 'running';

-- Versions, labels and experiments are configuration: a change reaches every running process (shared 0002).
CREATE TRIGGER prompt_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON prompt_versions
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER prompt_labels_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON prompt_labels
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
CREATE TRIGGER prompt_experiments_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON prompt_experiments
    FOR EACH STATEMENT EXECUTE FUNCTION llmops_config_changed();
