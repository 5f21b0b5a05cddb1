"""One SQL layer for the SQLite and PostgreSQL stores, parameterised by a dialect.

The statements, enqueue, dependency release, operations, records and row mapping are
written once here; :class:`~conveyor.stores.sql.dialect.Dialect` holds what differs in
the SQL text and the few batch forms each database does its own way. What is truly a
driver's (connections, the writer gate, wake-ups, migrations, clocks, joining a caller's
transaction) stays in :mod:`conveyor.stores.sqlite` and :mod:`conveyor.stores.postgres`.
"""
