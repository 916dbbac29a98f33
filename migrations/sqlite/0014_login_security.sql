-- Login hardening (issue 18).
-- ログインロック: consecutive wrong passwords of a user (reset by a successful login or an unlock);
-- at the limit (5 by default) the user is locked (locked_at set) until an MGR unlocks it.
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_at BIGINT;

-- The lifetime of the bearer tokens a login hands out, per tenant (12 h by default).
ALTER TABLE tenants ADD COLUMN session_ttl_minutes BIGINT NOT NULL DEFAULT 720;

-- The audit trail of logins, failures, lockouts and unlocks, read by MGR. user_id has no foreign
-- key: the trail outlives a deleted user. A failure for an unknown login has no user_id; its login
-- is kept as typed (at most 64 characters). source: the client's address.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('login', 'login_failed', 'locked', 'unlocked', 'password_changed', 'disabled')),
    user_id BIGINT,
    login TEXT NOT NULL,
    source TEXT NOT NULL,
    actor_user_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_tenant_created ON audit_events (tenant_id, created_at);
