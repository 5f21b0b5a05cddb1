-- Conveyor SQLite schema, version 3: large payloads live in their own table.
-- A state change rewrites the whole jobs row, overflow pages included; a 1 MiB
-- payload kept inline was copied twice more per job (claim and completion).
-- Payloads above rows.INLINE_PAYLOAD_MAX bytes go here; jobs.payload is then empty.

CREATE TABLE job_payloads (
    job_id  TEXT NOT NULL PRIMARY KEY,
    payload BLOB NOT NULL
);

CREATE TRIGGER jobs_drop_payload AFTER DELETE ON jobs
BEGIN
    DELETE FROM job_payloads WHERE job_id = old.id;
END;
