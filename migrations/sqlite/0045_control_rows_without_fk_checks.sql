-- PostgreSQL's 0045 drops the foreign keys of control_applied and agent_transitions on tenants (a
-- check per row, in the server, on every state change). SQLite's checks run in process for a
-- fraction of that, its control service meets its latency target with them, and dropping a
-- foreign key in SQLite means rebuilding the table: they stay here.
SELECT 1;
