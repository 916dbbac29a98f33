-- Placement on leases (issue 27). A lease names one resource of a tenant that one process holds
-- at a time: a campaign on a dialer host (kind 'dialer', resource_id the campaign), a tenant's
-- agent state on a control service (kind 'control', resource_id 0). `token` is the fencing token:
-- it grows by one at every change of holder, and a write guarded by a lease names the token it was
-- made under, so a holder whose lease was taken writes nothing (see ARCHITECTURE.md, Invariants).
CREATE TABLE leases (
    kind TEXT NOT NULL CHECK (kind IN ('dialer', 'control')),
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    resource_id BIGINT NOT NULL,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, tenant_id, resource_id)
);

-- The processes alive of a kind (dialer hosts, controls), each renewing its row with its leases:
-- placement spreads the leases over these. Infrastructure, of no tenant.
CREATE TABLE lease_members (
    kind TEXT NOT NULL,
    member TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, member)
);

-- The token of the campaign's lease a call was placed under: its result is written only while that
-- lease is still held by the same holder with the same token.
ALTER TABLE call_records ADD COLUMN lease_token BIGINT;

-- Channels in use across hosts: the pending calls of a campaign and of a caller ID.
CREATE INDEX call_records_pending_campaign ON call_records (tenant_id, campaign_id) WHERE result = 'pending';
CREATE INDEX call_records_pending_caller ON call_records (tenant_id, caller_id) WHERE result = 'pending';
