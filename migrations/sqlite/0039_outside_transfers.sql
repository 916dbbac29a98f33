-- 外線転送: the tenant's saved outside numbers an agent transfers a call to, or calls into it as a
-- third party (issue 24). Conventions as in 0001: tenant_id on every table, *_at in Unix ms UTC.

-- The outside leg goes out with the call's own caller ID (the number the customer was called from).
CREATE TABLE outside_transfers (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    number TEXT NOT NULL,                              -- normalised: digits, leading 0
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
