-- 前回発信時間帯 (BIZTEL §2.5) is a band of the day (10:00-12:00 on any day): a lead keeps the
-- tenant-local time of its last call (HH:MM), a call job the band it selects.
ALTER TABLE leads ADD COLUMN last_attempt_time TEXT;
ALTER TABLE call_jobs ADD COLUMN last_attempt_band_from TEXT;
ALTER TABLE call_jobs ADD COLUMN last_attempt_band_to TEXT;
