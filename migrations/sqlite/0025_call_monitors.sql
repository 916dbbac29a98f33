-- Supervisors on agents' calls (モニタリング, ささやき, 割込; issue 24). Conventions as in 0001:
-- tenant_id on every table, *_at in Unix ms UTC.

-- One row per supervisor, call and mode: a change of mode ends the row (mode_changed) and starts
-- another. The API writes the row when a supervisor asks (who, which call, which agent, which
-- mode, requested_at); the dialer, which connects the supervisor's phone, writes started_at when
-- the phone answered and ended_at with end_reason (stopped, mode_changed, call_ended,
-- phone_hung_up, unreachable, not_bridged, no_phone, full). A row never started has ended_at and no
-- started_at.
CREATE TABLE call_monitors (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_record_id BIGINT NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    agent_user_id BIGINT NOT NULL,
    supervisor_user_id BIGINT NOT NULL,
    mode TEXT NOT NULL,                                -- listen, whisper, barge
    requested_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX call_monitors_call ON call_monitors (tenant_id, call_record_id);
CREATE INDEX call_monitors_open ON call_monitors (tenant_id, supervisor_user_id, ended_at);
