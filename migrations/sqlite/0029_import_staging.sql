-- An import's good rows, staged in short transactions while the file is read, then moved into
-- `leads` in one transaction that checks the batch's duplicate rule and the list's cap against what
-- is committed at that moment (parallel imports into one list or batch stay exact). `refused` marks
-- a row whose number another import put into the batch meanwhile. Deleted when the import ends.
CREATE TABLE import_staged_leads (
    import_id BIGINT NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
    row_no BIGINT NOT NULL,                            -- line of the file (header = 1)
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kana TEXT NOT NULL,
    tel TEXT NOT NULL,
    phone_type TEXT NOT NULL,
    remarks TEXT,
    custom TEXT NOT NULL,
    tags TEXT NOT NULL,
    refused BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (import_id, row_no)
) WITHOUT ROWID;
