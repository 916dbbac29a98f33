-- 無応答自動停止時間 (CloudCallCenter §11.2): the pause for an offer not taken ends by itself after
-- this many seconds; 0: it lasts until the agent or a supervisor ends it.
ALTER TABLE dialing_groups ADD COLUMN no_answer_pause_release_s BIGINT NOT NULL DEFAULT 0;
