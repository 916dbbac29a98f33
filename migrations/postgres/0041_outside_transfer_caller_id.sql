-- 外線転送's 発信者番号 (issue 24): the caller ID a saved outside number is called from; NULL keeps
-- the call's own (the number the customer was called from, as before).
ALTER TABLE outside_transfers ADD COLUMN caller_id TEXT;
