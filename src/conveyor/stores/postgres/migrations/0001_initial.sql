-- Conveyor PostgreSQL schema, version 1.
-- Times are UTC epoch seconds (double precision), like every other driver; columns
-- mirror conveyor.job.Job. Every table lives in the store's schema (search_path).

CREATE TABLE jobs (
    id                    text             NOT NULL PRIMARY KEY,
    queue                 text             NOT NULL,
    task                  text             NOT NULL,
    payload               bytea            NOT NULL,
    state                 text             NOT NULL,
    priority              integer          NOT NULL DEFAULT 0,
    attempt               integer          NOT NULL DEFAULT 0,
    max_attempts          integer          NOT NULL DEFAULT 3,
    run_at                double precision NOT NULL,
    timeout               double precision,
    lease_token           text,
    lease_expires_at      double precision,
    worker_id             text,
    depends_on            text[],           -- NULL when none
    blocked_by            integer          NOT NULL DEFAULT 0,
    on_dependency_failure text             NOT NULL DEFAULT 'fail',
    parent_id             text,
    tags                  text[],           -- NULL when none
    unique_key            text,
    idempotency_key       text,
    task_version          integer          NOT NULL DEFAULT 1,
    result                bytea,
    errors                jsonb,            -- array of JobError objects, NULL when none
    failure_reason        text,
    rescue_count          integer          NOT NULL DEFAULT 0,
    cancel_requested      boolean          NOT NULL DEFAULT false,
    created_at            double precision NOT NULL,
    started_at            double precision,
    finished_at           double precision,
    heartbeat_at          double precision,
    has_dependents        boolean          NOT NULL DEFAULT false,
    CONSTRAINT jobs_state_known CHECK (state IN (
        'blocked', 'scheduled', 'pending', 'processing', 'retrying',
        'completed', 'failed', 'cancelled'))
);

-- Partial indexes: each holds only the rows its query can want, so the claim index
-- stays as small as the backlog and a state change touches few index entries.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state IN ('scheduled', 'retrying');
CREATE INDEX jobs_lease ON jobs (lease_expires_at, id) WHERE state = 'processing';
CREATE INDEX jobs_finished ON jobs (state, finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE INDEX jobs_queue_state ON jobs (queue, state);
CREATE INDEX jobs_tags ON jobs USING gin (tags) WHERE tags IS NOT NULL;

-- One row per (dependent, dependency) still to be resolved.
CREATE TABLE job_dependencies (
    job_id     text NOT NULL,
    depends_on text NOT NULL,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX job_dependencies_by_dependency ON job_dependencies (depends_on, job_id);

-- expires_at NULL: held while the holder job is active. The primary key makes a
-- second hold of a key impossible; enqueue also serialises on the key (advisory lock).
CREATE TABLE unique_keys (
    key        text NOT NULL PRIMARY KEY,
    job_id     text NOT NULL,
    expires_at double precision
);

CREATE TABLE idempotency_keys (
    key         text             NOT NULL PRIMARY KEY,
    job_id      text             NOT NULL,
    fingerprint text             NOT NULL,
    expires_at  double precision NOT NULL
);

-- The node registry: data is the whole NodeInfo as JSON.
CREATE TABLE nodes (
    id           text             NOT NULL PRIMARY KEY,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    data         jsonb            NOT NULL
);
CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
