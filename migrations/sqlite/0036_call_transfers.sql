-- 転送 of a customer by its agent (issue 24). Conventions as in 0001: tenant_id on every table,
-- *_at in Unix ms UTC.

-- One row per transfer the agent asked for: to another agent (to_user_id) or to an outside number
-- (to_tel, whose carrier leg has its own call record, leg_call_record_id). The API writes the row
-- when the agent asks; the call's record keeps the agent who had the customer last.
CREATE TABLE call_transfers (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_record_id BIGINT NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    from_user_id BIGINT NOT NULL,
    to_user_id BIGINT,
    to_tel TEXT,
    leg_call_record_id BIGINT,
    requested_at BIGINT NOT NULL,
    CHECK ((to_user_id IS NULL) <> (to_tel IS NULL))
);
CREATE INDEX call_transfers_call ON call_transfers (tenant_id, call_record_id);
