-- The reports that read the agents' time per state (issue 25) take one kind of rollup_states row
-- each: the agents' whole days (hour = -1: the outbound report's occupancy and wait per campaign,
-- the status statistics over whole days) or every agent's hours together (agent_user_id = 0: the
-- status statistics by hour). rollup_states_day ordered them by day and agent only, so a month's
-- read walked every row of the month, each agent's hours included. A partial index per kind, holding
-- what the reports sum, reads only that kind's rows.
CREATE INDEX rollup_states_day_totals ON rollup_states (tenant_id, day, agent_user_id, state, reason_id, ms, entries)
    WHERE hour = -1;
CREATE INDEX rollup_states_all_agents ON rollup_states (tenant_id, day, hour_at, hour, state, reason_id, ms, entries)
    WHERE agent_user_id = 0;
