-- 無応答自動停止 (CloudCallCenter §11.2): a dialing group may pause an agent who does not take an
-- offered customer, with one of the tenant's pause reasons (NULL: off).
ALTER TABLE dialing_groups ADD COLUMN no_answer_pause_reason_id BIGINT;
