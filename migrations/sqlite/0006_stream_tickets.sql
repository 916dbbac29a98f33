-- Wallboard stream tickets (api/src/wallboard.rs): an EventSource cannot send an Authorization
-- header, so the page trades its bearer token for a ticket (POST /wallboard/tickets) and opens
-- GET /wallboard/stream?ticket=... with it. A ticket is single-use (deleted when redeemed), lives 30 s,
-- is bound to the session that asked for it (gone with it at logout or expiry), and only its SHA-256
-- is stored, like the bearer tokens'. Kept here rather than in memory so that any API host behind the
-- load balancer can redeem a ticket another host issued.
CREATE TABLE stream_tickets (
    ticket_hash TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX stream_tickets_session ON stream_tickets (session_hash);
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);
