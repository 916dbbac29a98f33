-- The outbound report's occupancy and agent wait per campaign and day (issue 25) summed the
-- campaign's member agents' whole-day state rows of the month (about 430,000 rows at 2,000 agents)
-- at every request: at 10 M calls its p99 on PostgreSQL stayed above 300 ms whatever the index. A
-- rollup of just that, one row per campaign, day and state, written with the day's other rollups
-- (store::rollups::store_day), with the campaign's members as they are when the day is counted:
-- a day's figures no longer move when an agent joins or leaves a campaign later.
CREATE TABLE rollup_campaign_states (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    campaign_id BIGINT NOT NULL,
    state TEXT NOT NULL,
    ms BIGINT NOT NULL,                                -- the member agents' time in the state
    PRIMARY KEY (tenant_id, day, campaign_id, state)
);
INSERT INTO rollup_campaign_states (tenant_id, day, campaign_id, state, ms)
SELECT r.tenant_id, r.day, ca.campaign_id, r.state, CAST(SUM(r.ms) AS BIGINT)
FROM rollup_states r JOIN campaign_agents ca ON ca.tenant_id = r.tenant_id AND ca.user_id = 0 - r.agent_user_id
WHERE r.hour = -1 AND r.agent_user_id < 0
GROUP BY r.tenant_id, r.day, ca.campaign_id, r.state;
