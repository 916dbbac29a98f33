-- A lead's other numbers (CALLTREE: 電話番号の「追加・編集」; the CSV import takes one 電話番号 column).
-- The dialer dials the lead's main number (leads.tel) first; a campaign with
-- next_number_on_no_answer moves the lead to its next number after a call nobody answered
-- (制限時間, ビジー, 現アナ), in the order the numbers were added, and back to the main one after
-- the last. leads.next_number_id names the number the next dial takes (NULL: the main one).
CREATE TABLE lead_numbers (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    lead_id BIGINT NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    tel TEXT NOT NULL,
    phone_type TEXT NOT NULL,                          -- mobile (070/080/090) or fixed
    label TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (lead_id, tel)
);
CREATE INDEX lead_numbers_lead ON lead_numbers (tenant_id, lead_id, id);
ALTER TABLE leads ADD COLUMN next_number_id BIGINT;
ALTER TABLE campaigns ADD COLUMN next_number_on_no_answer BIGINT NOT NULL DEFAULT 0;
