-- Conveyor SQLite schema, version 1.
-- Times are UTC epoch seconds (REAL). Columns mirror conveyor.job.Job.

CREATE TABLE jobs (
    id                    TEXT    NOT NULL PRIMARY KEY,
    queue                 TEXT    NOT NULL,
    task                  TEXT    NOT NULL,
    payload               BLOB    NOT NULL,
    state                 TEXT    NOT NULL,
    priority              INTEGER NOT NULL DEFAULT 0,
    attempt               INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL DEFAULT 3,
    run_at                REAL    NOT NULL,
    timeout               REAL,
    lease_token           TEXT,
    lease_expires_at      REAL,
    worker_id             TEXT,
    depends_on            TEXT,              -- JSON array of job ids, NULL when none
    blocked_by            INTEGER NOT NULL DEFAULT 0,
    on_dependency_failure TEXT    NOT NULL DEFAULT 'fail',
    parent_id             TEXT,
    tags                  TEXT,              -- ',a,b,' so one tag matches exactly; NULL when none
    unique_key            TEXT,
    idempotency_key       TEXT,
    task_version          INTEGER NOT NULL DEFAULT 1,
    result                BLOB,
    errors                TEXT,              -- JSON array of JobError dicts, NULL when none
    failure_reason        TEXT,
    rescue_count          INTEGER NOT NULL DEFAULT 0,
    cancel_requested      INTEGER NOT NULL DEFAULT 0,
    created_at            REAL    NOT NULL,
    started_at            REAL,
    finished_at           REAL,
    heartbeat_at          REAL,
    has_dependents        INTEGER NOT NULL DEFAULT 0  -- 1 once some job waits on this one
);

-- Partial indexes: each holds only the rows its query can want, so a state change
-- touches few index entries and the claim index stays as small as the backlog.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state IN ('scheduled', 'retrying');
CREATE INDEX jobs_lease ON jobs (lease_expires_at, id) WHERE state = 'processing';
CREATE INDEX jobs_finished ON jobs (state, finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE INDEX jobs_queue_state ON jobs (queue, state);

-- One row per (dependent, dependency) still to be resolved.
CREATE TABLE job_dependencies (
    job_id     TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX job_dependencies_by_dependency ON job_dependencies (depends_on, job_id);

-- expires_at NULL: held while the holder job is active.
CREATE TABLE unique_keys (
    key        TEXT NOT NULL PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at REAL
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    key         TEXT NOT NULL PRIMARY KEY,
    job_id      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
