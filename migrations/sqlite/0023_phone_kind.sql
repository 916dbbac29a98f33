-- ブラウザフォン (issue 24): an agent's phone is a SIP phone (a row of phones) or the browser phone
-- (WebRTC in the agent desktop, no SIP account needed).
ALTER TABLE users ADD COLUMN phone_kind TEXT NOT NULL DEFAULT 'sip';
