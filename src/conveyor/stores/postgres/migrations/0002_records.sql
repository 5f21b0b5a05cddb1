-- Conveyor PostgreSQL schema, version 2: records, the coordination primitive.
-- One row per (namespace, key), kept after it expires (its version still counts when
-- the key is created again) until it is deleted or pruned. Both names use the "C"
-- collation: keys sort and compare by code point, like Python strings, and the primary
-- key index serves list_records' ORDER BY.

CREATE TABLE records (
    namespace  text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea            NOT NULL,
    version    bigint           NOT NULL,
    expires_at double precision,            -- NULL: never expires
    PRIMARY KEY (namespace, key)
);
CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
