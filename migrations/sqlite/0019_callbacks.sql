-- Callbacks (折り返し呼, SPEC 9) and the tenant's common phone book (共通電話帳). Conventions as in
-- 0001: tenant_id on every table, *_at in Unix ms UTC.

-- 共通電話帳: a name for a number, shown wherever the number is (callbacks, call history, the screen
-- pop of a call without a lead). One name per number and tenant.
CREATE TABLE phone_book (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number TEXT NOT NULL,                              -- normalised: digits, leading 0
    name TEXT NOT NULL,
    remarks TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

-- 折り返し呼: a call to return. registered_at is when it was registered (never the call's time);
-- call_record_id is the request ID (リクエストID) of the call it was registered from. version grows
-- with every change: a write names the version it read, so that of two agents claiming the same
-- record the second is refused (409) rather than silently overwriting the first.
CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    campaign_id BIGINT,
    call_record_id BIGINT,
    label TEXT,                                        -- 業務ラベル
    memo TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'open',               -- open (未完了), done (完了)
    assignee_user_id BIGINT,                           -- 担当者; NULL = unassigned (-)
    registered_by BIGINT,
    registered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    version BIGINT NOT NULL DEFAULT 1,
    -- The last dial of the callback from the desktop: the lead it was placed through and when.
    dialled_lead_id BIGINT,
    dialled_at BIGINT,
    dialled_by BIGINT
);
CREATE INDEX callbacks_registered ON callbacks (tenant_id, registered_at);
CREATE INDEX callbacks_status ON callbacks (tenant_id, status, assignee_user_id);
-- A call is registered once (NULLs, the callbacks registered by hand, are distinct).
CREATE UNIQUE INDEX callbacks_call ON callbacks (tenant_id, call_record_id);
