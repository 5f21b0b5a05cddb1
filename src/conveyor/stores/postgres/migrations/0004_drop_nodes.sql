-- Conveyor PostgreSQL schema, version 4: the node registry moves onto records.
-- The store front (conveyor.stores.front) keeps each node as a record in namespace
-- "node", as on every driver, so the nodes table of version 1 is no longer used.
-- Nodes registered before the upgrade re-register at their next heartbeat.

DROP TABLE IF EXISTS nodes;
