-- The dialer's state (dialer/src/engine). Conventions as in 0001: tenant_id on every table, *_at in
-- Unix ms UTC, flags 0/1.

-- Where each agent's phone is registered (REGISTER with digest on any shard): the dialer calls the
-- nailed-up leg there. Every dialer process reads the same rows, so a phone registered through one
-- host can be called from another.
CREATE TABLE sip_registrations (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone_id BIGINT NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
    user_id BIGINT,                                    -- the phone's agent, when it has one
    contact TEXT NOT NULL,                             -- Contact URI (Request-URI of our INVITE)
    source TEXT NOT NULL,                              -- ip:port the REGISTER came from (the INVITE goes there)
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, phone_id)
);
CREATE INDEX sip_registrations_user ON sip_registrations (tenant_id, user_id);

-- A call job's progress, kept by the dialer: what it dialled in its current run.
ALTER TABLE call_jobs ADD COLUMN dialed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_jobs ADD COLUMN finished_at BIGINT;

-- The shard a call was placed on and the process that placed it: a dialer restarting finds the calls
-- it lost (still pending) and gives each a result.
ALTER TABLE call_records ADD COLUMN dialer_instance TEXT;
CREATE INDEX call_records_pending ON call_records (tenant_id, result, ended_at);
CREATE INDEX leads_last_attempt ON leads (list_id, last_attempt_at);
