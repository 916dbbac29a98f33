-- The outbound report's rolling abandon rates (24 h, 30 days) read live answers and abandons per
-- campaign and hour over two months (issue 25): a rollup of just those, one row per campaign and
-- local hour, written with the day's other rollups (store::rollups::store_day), so the report reads
-- 61 x 24 rows per campaign instead of summing rollup_calls' rows split by caller ID, list, result
-- and band. It replaces the covering index of 0040, which only this report read.
CREATE TABLE rollup_campaign_hours (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    campaign_id BIGINT NOT NULL,                       -- 0: none
    hour_at BIGINT NOT NULL,
    live BIGINT NOT NULL,                              -- answered by the customer
    abandons BIGINT NOT NULL,                          -- abandoned + released at the wait limit
    PRIMARY KEY (tenant_id, day, campaign_id, hour_at)
);
INSERT INTO rollup_campaign_hours (tenant_id, day, campaign_id, hour_at, live, abandons)
SELECT tenant_id, day, campaign_id, hour_at, CAST(SUM(live) AS BIGINT), CAST(SUM(abandoned + timeouts) AS BIGINT)
FROM rollup_calls GROUP BY tenant_id, day, campaign_id, hour_at;
DROP INDEX rollup_calls_outbound;
