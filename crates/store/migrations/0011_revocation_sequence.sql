-- Schema version 11: revocations in the order they were recorded.
--
-- A CA with a million revoked certificates keeps them in memory and reads only the revocations
-- recorded since its last CRL, instead of all of them for each CRL. The revocation time cannot
-- tell which those are: it is when the certificate was revoked, as the request or an imported
-- record says, not when the row was written (`mayfly-ca import-step` writes revocations dated
-- months back). So each revocation takes the next number of one counter, bumped in the
-- revocation's own transaction: its row lock makes revocations on every instance take numbers
-- one after another and commit in that order, so a reader that sees number N has every number
-- below N too. NULL for revocations recorded before this version; they are read in full once.
ALTER TABLE crl_state ADD COLUMN revocation_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE certificates ADD COLUMN revocation_seq BIGINT;
CREATE INDEX certificates_revocation_seq ON certificates (revocation_seq)
    WHERE revocation_seq IS NOT NULL;

-- The indexes that list revoked certificates hold only revoked certificates. They held an
-- entry for every certificate, revoked or not: three index entries written with each issuance
-- for nothing, and at ten million certificates a gigabyte of the store. Every query that reads
-- them says `revoked_at IS NOT NULL`. MySQL has no partial indexes: there they stay whole.
DROP INDEX certificates_revoked_cover ON certificates;
CREATE INDEX certificates_revoked_cover
    ON certificates (revoked_at, serial, not_after, revocation_reason, crl_shard)
    WHERE revoked_at IS NOT NULL;
DROP INDEX certificates_shard_revoked_cover ON certificates;
CREATE INDEX certificates_shard_revoked_cover
    ON certificates (crl_shard, revoked_at, serial, not_after, revocation_reason)
    WHERE revoked_at IS NOT NULL;

-- A complete CRL of a million entries is a 46 MB value, rewritten each time one is made.
-- PostgreSQL would try to compress it first (a CRL's random serials do not compress), a
-- quarter of a second each time; store it as it is. PostgreSQL only: the others skip it.
ALTER TABLE published_crls ALTER COLUMN der SET STORAGE EXTERNAL;
