-- Writes of the dialer that failed for good (dialer/src/engine/writer.rs): a result for a call
-- record that no longer exists, a registration of a phone deleted meanwhile, a value the schema
-- refuses. The writer keeps each here, with its payload and the error, instead of retrying it
-- forever (which held up every write behind it); transient errors are retried, with a cap, first.
-- Read by operators (GET /dialer/dead-letters).
CREATE TABLE dialer_dead_letters (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dialer_dead_letters_tenant ON dialer_dead_letters (tenant_id, id);
