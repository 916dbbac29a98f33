-- The outbound report's rolling abandon rates sum live calls and abandons per campaign and hour over
-- two months of rollup_calls: an index holding those columns answers it without reading the rows
-- (measured at 10 M calls: bench/RESULTS.md, issue 25).
CREATE INDEX rollup_calls_outbound ON rollup_calls (tenant_id, day, campaign_id, hour_at, live, abandoned, timeouts);
