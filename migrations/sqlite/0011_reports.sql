-- Reports (issue 25, store/src/rollups.rs). Conventions as in 0001.
-- Reports read rollups, never the facts: a job per tenant recounts whole local days of the facts
-- (call_records, wrapup_records, agent_transitions) into these tables within a minute of a change
-- (ARCHITECTURE.md says why a job and not the writers' transactions). A day is the tenant's
-- calendar day (day, 'YYYY-MM-DD'); hour_at is the Unix ms start of the local hour, hour its local
-- hour of day (0-23; a day with a DST change has 23 or 25 hour_at values).

-- The list a lead was in when it was called: CALLTREE's list figures stay with the list the call
-- was made from when the lead moves to another list later.
ALTER TABLE call_records ADD COLUMN list_id BIGINT;

-- The call figures per hour, without the agent (an agent's figures are kept per day below).
-- result: the saved wrap-up record's result when there is one, else the dialer's system result.
-- band: the talk time band of a connected call (0 = not connected, 1: < 30 s, 2: < 1 min,
-- 3: < 3 min, 4: < 5 min, 5: < 10 min, 6: 10 min and more).
CREATE TABLE rollup_calls (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    hour_at BIGINT NOT NULL,
    hour BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL,                       -- 0: none
    group_id BIGINT NOT NULL,                          -- the call job's dialing group, 0: none
    list_id BIGINT NOT NULL,                           -- 0: none
    caller_id TEXT NOT NULL,                           -- '' withheld or none
    direction TEXT NOT NULL,
    result TEXT NOT NULL,
    band BIGINT NOT NULL,
    records BIGINT NOT NULL,                           -- call records, the not-dialled ones included
    dials BIGINT NOT NULL,                             -- calls placed (コール数)
    live BIGINT NOT NULL,                              -- answered by the customer
    connected BIGINT NOT NULL,                         -- bridged to an agent (応答呼)
    abandoned BIGINT NOT NULL,                         -- answered, left before an agent (破棄呼)
    timeouts BIGINT NOT NULL,                          -- answered, released at the wait limit (制限時間)
    answer_wait_ms BIGINT NOT NULL,                    -- sum over connected of bridged - answered
    answer_wait_max_ms BIGINT NOT NULL,
    abandon_wait_ms BIGINT NOT NULL,                   -- sum over abandoned and timeouts of ended - answered
    abandon_wait_max_ms BIGINT NOT NULL,
    talk_ms BIGINT NOT NULL,                           -- sum over connected of ended - bridged
    line_ms BIGINT NOT NULL,                           -- sum over live of ended - answered
    ring_ms BIGINT NOT NULL,                           -- sum over dials of (answered or ended) - started
    leads BIGINT NOT NULL,                             -- leads whose last call of the day this was (件数)
    first_calls BIGINT NOT NULL,                       -- the lead's first dial ever (作業数)
    connects BIGINT NOT NULL,                          -- connected, result not 不通/FAX/現アナ (コネクト数)
    reported BIGINT NOT NULL                           -- with a wrap-up record marked reported (報告)
);
CREATE INDEX rollup_calls_day ON rollup_calls (tenant_id, day, campaign_id);
CREATE INDEX rollup_calls_hour ON rollup_calls (tenant_id, hour_at);

-- The same figures per agent and day.
CREATE TABLE rollup_agent_days (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    agent_user_id BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    result TEXT NOT NULL,
    records BIGINT NOT NULL,
    dials BIGINT NOT NULL,
    live BIGINT NOT NULL,
    connected BIGINT NOT NULL,
    abandoned BIGINT NOT NULL,
    timeouts BIGINT NOT NULL,
    answer_wait_ms BIGINT NOT NULL,
    answer_wait_max_ms BIGINT NOT NULL,
    abandon_wait_ms BIGINT NOT NULL,
    abandon_wait_max_ms BIGINT NOT NULL,
    talk_ms BIGINT NOT NULL,
    line_ms BIGINT NOT NULL,
    ring_ms BIGINT NOT NULL,
    leads BIGINT NOT NULL,
    first_calls BIGINT NOT NULL,
    connects BIGINT NOT NULL,
    reported BIGINT NOT NULL
);
CREATE INDEX rollup_agent_days_day ON rollup_agent_days (tenant_id, day, agent_user_id);

-- Time in each agent state per agent and local hour (ステータス統計), from agent_transitions.
CREATE TABLE rollup_states (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    hour_at BIGINT NOT NULL,
    hour BIGINT NOT NULL,
    agent_user_id BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason_id BIGINT NOT NULL,                         -- the pause reason, 0: none
    ms BIGINT NOT NULL,
    entries BIGINT NOT NULL                            -- times the agent entered the state in the hour
);
CREATE INDEX rollup_states_day ON rollup_states (tenant_id, day, agent_user_id);

-- Each tenant's rollup job: facts changed before refreshed_at are counted; days before
-- facts_from_day are kept as they are (the retention job deleted their facts).
CREATE TABLE rollup_state (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    refreshed_at BIGINT NOT NULL,
    facts_from_day TEXT NOT NULL DEFAULT ''
);

-- The job finds wrap-up records saved (or reported) since its last run; call history by agent.
ALTER TABLE wrapup_records ADD COLUMN reported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE wrapup_records ADD COLUMN reported_at BIGINT;
CREATE INDEX wrapup_records_saved ON wrapup_records (tenant_id, saved_at);
CREATE INDEX wrapup_records_reported ON wrapup_records (tenant_id, reported_at);
CREATE INDEX call_records_agent ON call_records (tenant_id, agent_user_id, started_at);
