-- Conveyor SQLite schema, version 2: the node registry.
-- One row per worker node (a supervisor and its children). data holds the whole
-- NodeInfo as JSON, workers included; started_at and heartbeat_at are copied out of it
-- for ordering and pruning. Times are UTC epoch seconds (REAL).

CREATE TABLE nodes (
    id           TEXT NOT NULL PRIMARY KEY,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    data         TEXT NOT NULL
);

CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
