-- Closed days (休業日): Japan's national holidays unless the tenant turns them off, and the
-- tenant's own closed dates; call jobs neither start nor dial on them.
ALTER TABLE tenants ADD COLUMN closed_on_national_holidays BIGINT NOT NULL DEFAULT 1;
CREATE TABLE closed_days (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,                                   -- YYYY-MM-DD in the tenant's zone
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, day)
);
