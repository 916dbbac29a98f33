-- The reports that read the agents' time per state (issue 25) take one kind of rollup_states row
-- each; the status statistics by hour read every agent's hours together (agent_user_id = 0), which
-- rollup_states_day (by day and agent only) mixed with each agent's hours, so a month's read walked
-- every row of the month. A partial index of that kind, holding what the report sums, reads only it.
-- (SQLite's 0043 also indexes the agents' whole-day rows, hour = -1, for the outbound report; here
-- that index made the report slower at 10 M calls, 535 -> 823 ms p99, measured on a table just
-- rebuilt, whose index-only reads still visit the heap: not created; bench/RESULTS.md, "Reports".)
CREATE INDEX rollup_states_all_agents ON rollup_states (tenant_id, day, hour_at, hour, state, reason_id, ms, entries)
    WHERE agent_user_id = 0;
