-- パーク保留 (park, #72) of a customer by its agent (issue 24). Conventions as in 0001: tenant_id on
-- every table, *_at in Unix ms UTC.

-- One row per park: the call (dialer_call_id, as call_records names it), its park number (保留番号,
-- 9001.. the lowest free of the tenant), who parked it and when; then how the park ended: picked up
-- (picked_by, the agent whose phone took it), hung up by the customer, or returned when nobody took
-- it within the tenant's limit. The control service writes it; the API claims a row for a pick-up
-- (picked_by set while ended_at is still NULL: exactly one claim wins) and lists the open ones.
CREATE TABLE parked_calls (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    dialer_call_id BIGINT NOT NULL,
    number INTEGER NOT NULL CHECK (number BETWEEN 9001 AND 9099),
    parked_by BIGINT NOT NULL,
    parked_at BIGINT NOT NULL,
    picked_by BIGINT,
    picked_at BIGINT,
    ended_at BIGINT,
    outcome TEXT CHECK (outcome IN ('picked_up', 'hung_up', 'returned'))
);
-- A park number names one open park of the tenant.
CREATE UNIQUE INDEX parked_calls_open_number ON parked_calls (tenant_id, number) WHERE ended_at IS NULL;
CREATE INDEX parked_calls_call ON parked_calls (tenant_id, dialer_call_id);
