-- Outbound rules of the seeds: 連絡事項 on a call job (shown to admins and the job's agents) and
-- a memo on a batch, 500 characters each (BIZTEL §1.1, §2.5).
ALTER TABLE call_jobs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN memo TEXT NOT NULL DEFAULT '';
