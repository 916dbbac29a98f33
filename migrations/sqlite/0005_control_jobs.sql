-- The control service (control/src/service), second step: the call job and dialing group an agent
-- works (the wallboard's dialing-group tiles, GET /agents), and indexes for rebuilding the
-- wallboard's rolling counts from the call records at start. Conventions as in 0001.

ALTER TABLE control_agents ADD COLUMN call_job_id BIGINT;
ALTER TABLE control_agents ADD COLUMN dialing_group_id BIGINT;

CREATE INDEX call_records_answered ON call_records (tenant_id, answered_at);
CREATE INDEX call_records_ended ON call_records (tenant_id, ended_at);
