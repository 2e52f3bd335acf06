-- Schema version 9: sharded CRLs.
--
-- A certificate's shard is chosen when it is issued, written into its CRL distribution point,
-- and kept here so that the shard's CRL can list it when it is revoked: NULL for certificates
-- that carry the complete CRL's URL (every certificate of a CA with one shard).
ALTER TABLE certificates ADD COLUMN crl_shard INTEGER;

-- A shard's CRL is made after a revocation in it; it selects the shard's revoked rows.
CREATE INDEX certificates_shard_revoked ON certificates (crl_shard, revoked_at);

-- Every URL a shard's CRL was ever published under: its issuing distribution point names them
-- all, so that certificates issued before a URL change still find the CRL authoritative.
-- VARCHAR(512) because MySQL cannot index a longer key in utf8mb4.
CREATE TABLE crl_urls (
    url        VARCHAR(512) NOT NULL PRIMARY KEY,
    shard      INTEGER      NOT NULL,
    first_used BIGINT       NOT NULL
);
