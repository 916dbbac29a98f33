-- The digest challenges a phone account's requests get (RFC 8760 lets a server offer several):
-- 'md5' (the default: many phones, Debian 12's baresip among them, give up on any non-MD5
-- challenge), 'sha256', or 'both' (SHA-256 first, then MD5) for phones known to cope with several.
ALTER TABLE phones ADD COLUMN digest_algorithms TEXT NOT NULL DEFAULT 'md5';
