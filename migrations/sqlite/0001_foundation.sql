-- kakeru foundation schema.
-- Conventions: every table carries tenant_id (the tenant itself excepted); every *_at column is
-- Unix time in milliseconds, UTC; calendar dates (batch start/end) are 'YYYY-MM-DD' text in the
-- tenant's time zone; JSON documents are stored as text. Applied migrations are never edited.
-- Flags are integers 0/1 on both backends (one code path through sqlx's Any driver).

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,                         -- used at login to name the tenant
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL DEFAULT 'Asia/Tokyo',      -- IANA zone applied at the edges
    history_retention_days BIGINT NOT NULL DEFAULT 400, -- 履歴保持期間 R
    recording_quota_bytes BIGINT NOT NULL DEFAULT 53687091200,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    login TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('MGR', 'SV', 'OP', 'BIZ', 'BY')),
    password_hash TEXT NOT NULL,                       -- argon2id PHC string
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, login)
);

-- Bearer tokens: only the SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE dialing_groups (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE dialing_group_agents (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES dialing_groups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX dialing_group_agents_user ON dialing_group_agents (user_id);

-- A campaign or a customer list granted to a user or to a dialing group.
CREATE TABLE grants (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES dialing_groups(id) ON DELETE CASCADE,
    resource_kind TEXT NOT NULL CHECK (resource_kind IN ('campaign', 'list')),
    resource_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE INDEX grants_lookup ON grants (tenant_id, resource_kind, resource_id);

-- 発信者番号 with its own channel limit.
CREATE TABLE caller_ids (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    max_channels BIGINT NOT NULL DEFAULT 30,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    caller_id TEXT,                                    -- NULL with withhold_caller_id: 184
    withhold_caller_id BIGINT NOT NULL DEFAULT 0,
    mode TEXT NOT NULL DEFAULT 'progressive',
    dial_ratio REAL NOT NULL DEFAULT 1.0,  -- 発信速度倍率
    max_channels BIGINT NOT NULL DEFAULT 30,           -- 最大チャンネル
    ring_timeout_s BIGINT NOT NULL DEFAULT 180,        -- タイムアウト
    agent_wait_timeout_s BIGINT NOT NULL DEFAULT 20,   -- 待ち呼タイムアウト
    waiting_audio TEXT,                                -- 呼中音声
    acw_enabled BIGINT NOT NULL DEFAULT 1,
    acw_seconds BIGINT NOT NULL DEFAULT 30,
    dtmf_result_entry BIGINT NOT NULL DEFAULT 0,
    business_start TEXT NOT NULL DEFAULT '09:00',      -- 予約 From, tenant time zone
    business_end TEXT NOT NULL DEFAULT '18:00',        -- 予約 To
    abandon_target_pct REAL NOT NULL DEFAULT 3.0, -- 100 - service level
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE campaign_agents (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, user_id)
);

-- Numbered campaign results (番号,テキスト); the nine system results are fixed in code.
CREATE TABLE result_codes (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    label TEXT NOT NULL,
    connected BIGINT NOT NULL DEFAULT 1,           -- FALSE for 不通, FAX, 現アナ
    created_at BIGINT NOT NULL,
    UNIQUE (campaign_id, number)
);

-- Agents' SIP accounts. Digest needs HA1 = H(username:realm:password), kept instead of the password.
CREATE TABLE phones (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    sip_username TEXT NOT NULL,
    realm TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (realm, sip_username)
);

CREATE TABLE pause_reasons (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    color TEXT NOT NULL DEFAULT '#888888',
    position BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    first_call_at BIGINT,
    last_call_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX batches_campaign ON batches (tenant_id, campaign_id);

CREATE TABLE customer_lists (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    batch_id BIGINT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    allow_duplicates BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX customer_lists_batch ON customer_lists (tenant_id, batch_id);

CREATE TABLE custom_fields (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '[]',                -- JSON array for select, radio, checkbox
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, key)
);

CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES customer_lists(id) ON DELETE CASCADE,
    batch_id BIGINT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kana TEXT NOT NULL,
    tel TEXT NOT NULL,
    phone_type TEXT NOT NULL,                          -- mobile (070/080/090) or fixed
    remarks TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'open',                -- open, done (completed by a record)
    attempts BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    last_result TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX leads_batch_tel ON leads (batch_id, tel);
CREATE INDEX leads_dialable ON leads (list_id, state, attempts, id);
CREATE INDEX leads_tenant ON leads (tenant_id, list_id, id);

CREATE TABLE lead_history (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    lead_id BIGINT NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX lead_history_lead ON lead_history (lead_id, id);

CREATE TABLE call_jobs (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    dialing_group_id BIGINT NOT NULL REFERENCES dialing_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    caller_id TEXT,
    phone_type TEXT NOT NULL DEFAULT 'any',            -- any, mobile, fixed
    attempts_min BIGINT NOT NULL DEFAULT 0,
    attempts_max BIGINT,
    last_attempt_from BIGINT,
    last_attempt_to BIGINT,
    status TEXT NOT NULL DEFAULT 'stopped',            -- stopped, running, finished
    started_at BIGINT,
    stopped_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX call_jobs_status ON call_jobs (tenant_id, status);

CREATE TABLE call_job_lists (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    job_id BIGINT NOT NULL REFERENCES call_jobs(id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES customer_lists(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, list_id)
);

-- 発信規制: checked before every dial.
CREATE TABLE dnc_numbers (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

-- 着信拒否.
CREATE TABLE inbound_blocks (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

-- 再コール: scheduled (due_at) and/or owned by an agent.
CREATE TABLE recalls (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    lead_id BIGINT NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    due_at BIGINT,
    agent_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    status TEXT NOT NULL DEFAULT 'open',               -- open, done, cancelled
    note TEXT NOT NULL DEFAULT '',
    created_by BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX recalls_due ON recalls (tenant_id, campaign_id, status, due_at);

CREATE TABLE call_records (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT,
    call_job_id BIGINT,
    lead_id BIGINT,
    agent_user_id BIGINT,
    tel TEXT NOT NULL,
    caller_id TEXT,
    direction TEXT NOT NULL DEFAULT 'outbound',
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    bridged_at BIGINT,
    ended_at BIGINT,
    result TEXT NOT NULL DEFAULT 'pending',
    sip_status BIGINT,
    recording_path TEXT
);
CREATE INDEX call_records_started ON call_records (tenant_id, started_at);

-- 応対記録. saved_at NULL = listed in 応対記録(未保存).
CREATE TABLE wrapup_records (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_record_id BIGINT REFERENCES call_records(id) ON DELETE SET NULL,
    lead_id BIGINT,
    agent_user_id BIGINT,
    interlocutor TEXT,                                 -- self (本人) or other (その他)
    result TEXT NOT NULL DEFAULT 'no_entry',
    other_tel TEXT,
    next_action TEXT,                                  -- continue, recall, complete
    recall_at BIGINT,
    memo TEXT NOT NULL DEFAULT '',
    state_after TEXT,                                  -- continue, break, away, end_job
    saved BIGINT NOT NULL DEFAULT 0,                   -- 0: listed in 応対記録(未保存)
    saved_at BIGINT,
    saved_by BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX wrapup_unsaved ON wrapup_records (tenant_id, saved, created_at);

CREATE TABLE import_jobs (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES customer_lists(id) ON DELETE CASCADE,
    user_id BIGINT,
    kind TEXT NOT NULL,                                -- standard, generic
    status TEXT NOT NULL DEFAULT 'queued',             -- queued, running, done, failed
    encoding TEXT,
    bytes_total BIGINT NOT NULL DEFAULT 0,
    bytes_read BIGINT NOT NULL DEFAULT 0,
    rows_read BIGINT NOT NULL DEFAULT 0,
    imported_rows BIGINT NOT NULL DEFAULT 0,
    rejected_rows BIGINT NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    error_csv BLOB,
    created_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,                      -- the importing process is alive
    finished_at BIGINT
);
