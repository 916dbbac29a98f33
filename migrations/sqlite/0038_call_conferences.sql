-- 電話会議 (three-party conference) of an agent's call with an outside number (issue 24).
-- Conventions as in 0001: tenant_id on every table, *_at in Unix ms UTC.

-- One row per third party the agent called into its call: written by the API when the agent
-- asks; the dialer sets started_at when the third party answered and ended_at with end_reason
-- (dropped, party_hung_up, call_ended, agent_left, or why it never came: busy, no_answer,
-- refused, not_placed, channel_limit). A call has at most one open row at a time.
CREATE TABLE call_conferences (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_record_id BIGINT NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    agent_user_id BIGINT NOT NULL,
    to_tel TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX call_conferences_call ON call_conferences (tenant_id, call_record_id);
