-- Conveyor SQLite schema, version 5: chain steps by parent.
-- The pruner keeps a completed job while a chain step that reads its result (parent_id)
-- is not terminal; this index answers "does a live step name this job?" per candidate.
-- Partial: only chain steps carry a parent_id, so plain jobs add nothing to it.

CREATE INDEX jobs_parent ON jobs (parent_id, state) WHERE parent_id IS NOT NULL;
