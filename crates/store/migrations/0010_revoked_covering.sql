-- Schema version 10: CRLs read from indexes alone.
--
-- A CRL lists serial, revocation time and reason of every revoked, unexpired certificate (of a
-- shard). With an index on the revocation time alone, each listed row was a lookup in the
-- certificates table, whose rows hold the DER: at a million revocations among ten million
-- certificates, a million random reads. These indexes carry every column the CRL queries
-- select, so a CRL is one range scan. They replace the narrower ones (an issuance updates as
-- many indexes as before). The serial follows the revocation time so that the rows come in
-- (revoked_at, serial) order, the key SQLite's chunked listing resumes from.
DROP INDEX certificates_revoked_at ON certificates;
CREATE INDEX certificates_revoked_cover
    ON certificates (revoked_at, serial, not_after, revocation_reason, crl_shard);
DROP INDEX certificates_shard_revoked ON certificates;
CREATE INDEX certificates_shard_revoked_cover
    ON certificates (crl_shard, revoked_at, serial, not_after, revocation_reason);
