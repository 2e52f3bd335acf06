-- Schema version 2: a revocation's reason in words and who asked for it. The reason code and
-- the time have been in version 1 (revocation_reason, revoked_at).
ALTER TABLE certificates ADD COLUMN revocation_text TEXT;
ALTER TABLE certificates ADD COLUMN revoked_by VARCHAR(255);
