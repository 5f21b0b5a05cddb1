-- Conveyor SQLite schema, version 4: records, the coordination primitive.
-- A versioned value under (namespace, key), written only by compare-and-set. An
-- expired row (expires_at <= now, store clock) reads as absent but is kept until it
-- is deleted or pruned, so a key created again continues its version. Times are UTC
-- epoch seconds (REAL); NULL never expires.

CREATE TABLE records (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
