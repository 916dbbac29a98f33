-- Call recordings (SPEC 8, media/src/archive): one row per recording file. The relay shard writes
-- a stereo G.711 WAV (customer left, agent right); the Opus pool re-encodes it to Ogg Opus beside
-- it and deletes the WAV. Conventions as in 0001: tenant_id on every table, *_at in Unix ms UTC.

CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    dialer_call_id BIGINT NOT NULL,                    -- the dialer's call id (call_records.dialer_call_id)
    call_record_id BIGINT REFERENCES call_records(id) ON DELETE SET NULL,
    path TEXT NOT NULL,                                -- absolute: <dir>/<tenant_id>/<YYYY-MM-DD>/<dialer_call_id>.wav|.opus
    format TEXT NOT NULL DEFAULT 'wav',                -- wav (as recorded), opus (Ogg Opus, encoded)
    bytes BIGINT NOT NULL DEFAULT 0,                   -- size of the file at path: what the quota counts
    duration_ms BIGINT NOT NULL DEFAULT 0,
    local_date TEXT NOT NULL,                          -- YYYY-MM-DD of started_at in the tenant's zone
    started_at BIGINT NOT NULL,
    closed_at BIGINT NOT NULL,
    encode_claimed_at BIGINT,                          -- an encoder took it (a lease: retaken when stale)
    encode_claimed_by TEXT,                            -- which encoder (a restarted one takes its own back at once)
    encode_attempts BIGINT NOT NULL DEFAULT 0,
    encode_error TEXT,
    encoded_at BIGINT,                                 -- the Opus file is durable and the WAV removed
    deleted_at BIGINT,                                 -- no longer available (quota, missing file)
    deleted_reason TEXT,                               -- quota, missing
    purged_at BIGINT                                   -- the file of a deleted row is unlinked
);
CREATE UNIQUE INDEX recordings_dialer_call ON recordings (tenant_id, dialer_call_id);
-- Per-tenant listing by date, and oldest-first deletion among the live rows.
CREATE INDEX recordings_started ON recordings (tenant_id, started_at);
CREATE INDEX recordings_live_oldest ON recordings (tenant_id, deleted_at, started_at);
CREATE INDEX recordings_day ON recordings (tenant_id, local_date);
-- The encoder's queue: rows not yet encoded.
CREATE INDEX recordings_to_encode ON recordings (encoded_at, deleted_at, closed_at);
CREATE INDEX recordings_to_purge ON recordings (purged_at, deleted_at);
