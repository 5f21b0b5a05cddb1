-- Conveyor PostgreSQL schema, version 3: chain steps by parent.
-- The pruner keeps a completed job while a chain step that reads its result (parent_id)
-- is not terminal; this index answers "does a live step name this job?" per candidate.
-- Partial: it holds only chain steps (the jobs with a parent_id) that are not finished,
-- so it stays as small as the chains in flight, plain jobs never touch it, and a
-- candidate without a live step costs one probe that finds nothing.

CREATE INDEX jobs_live_steps ON jobs (parent_id)
    WHERE parent_id IS NOT NULL AND state NOT IN ('completed', 'failed', 'cancelled');
