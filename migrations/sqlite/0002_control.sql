-- The control service's persisted state (control/src/service). Conventions as in 0001: tenant_id on
-- every table, *_at in Unix ms UTC, flags 0/1, JSON as text.

-- Message ids the control service applied (its idempotence across a crash): written in the same
-- transaction as the effects of the message, so a redelivered message is recognised and skipped.
CREATE TABLE control_applied (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,                          -- envelope id (ULID)
    applied_at BIGINT NOT NULL,
    UNIQUE (tenant_id, message_id)
);

-- Every agent state change (SPEC 5: status statistics are built from these).
CREATE TABLE agent_transitions (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_user_id BIGINT NOT NULL,
    from_state TEXT NOT NULL,                          -- offline, ready, ringing, talking, hold, wrap_up, paused, unknown
    to_state TEXT NOT NULL,
    from_reason_id BIGINT,                             -- pause reason when from_state = paused
    to_reason_id BIGINT,                               -- pause reason when to_state = paused
    cause TEXT NOT NULL,                               -- login, offer, bridged, ..., supervisor
    supervisor_id BIGINT,                              -- when cause = supervisor
    call_id BIGINT,                                    -- the dialer's call id
    at BIGINT NOT NULL,
    message_id TEXT NOT NULL                           -- envelope that caused it (or 'timer:<ms>')
);
CREATE INDEX agent_transitions_agent ON agent_transitions (tenant_id, agent_user_id, at);
CREATE INDEX agent_transitions_at ON agent_transitions (tenant_id, at);

-- The agent state machine's state per agent, rewritten in each applied batch: a restarted control
-- service rebuilds its Floor from these rows, then resumes its consumer groups.
CREATE TABLE control_agents (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_user_id BIGINT NOT NULL,
    campaign_id BIGINT,                                -- campaign of the agent's call job
    view TEXT NOT NULL,                                -- control::agent::AgentView as JSON
    config TEXT NOT NULL,                              -- control::agent::AgentConfig as JSON
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, agent_user_id)
);

-- The dialer's call id on call records, so shard events (answered, bridged, ended) find their row.
ALTER TABLE call_records ADD COLUMN dialer_call_id BIGINT;
CREATE UNIQUE INDEX call_records_dialer_call ON call_records (tenant_id, dialer_call_id);
ALTER TABLE wrapup_records ADD COLUMN dialer_call_id BIGINT;
CREATE UNIQUE INDEX wrapup_records_dialer_call ON wrapup_records (tenant_id, dialer_call_id);
