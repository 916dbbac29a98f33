-- The agent desktop (api/src/desk, store/src/desktop.rs). Conventions as in 0001.
-- The screen pop reads every earlier contact with a lead (its calls and their wrap-up records), the
-- agent's recall list reads its own open recalls, and the dial mode looks leads up by number: the
-- indexes those reads need. No table changes: a lead held for an agent before a manual dial is the
-- preview hold of 0007.
CREATE INDEX call_records_lead ON call_records (tenant_id, lead_id, started_at);
CREATE INDEX wrapup_records_call ON wrapup_records (tenant_id, call_record_id);
CREATE INDEX recalls_agent ON recalls (tenant_id, agent_user_id, status);
CREATE INDEX leads_tel ON leads (tenant_id, tel);
