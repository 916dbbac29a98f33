-- Preview mode (プレビュー, SPEC 4): the agent sees the lead, then the customer is dialled.
-- A lead an agent is looking at is held for that agent until preview_until (no other agent and no
-- paced dial picks it meanwhile); a lead an agent skipped is not shown again in the same run of the
-- call job (preview_skipped_at at or after the run's start). Neither counts an attempt.
ALTER TABLE leads ADD COLUMN preview_user_id BIGINT;
ALTER TABLE leads ADD COLUMN preview_until BIGINT;
ALTER TABLE leads ADD COLUMN preview_skipped_at BIGINT;
