-- Schema version 3: active revocation.
--
-- The CRL number lives in the database, not in a file beside one instance, so that it only ever
-- grows: across restarts and across every instance sharing the database. One row, bumped in a
-- transaction by whoever publishes a CRL.
CREATE TABLE crl_state (
    id         INTEGER NOT NULL PRIMARY KEY,
    crl_number BIGINT  NOT NULL
);
INSERT INTO crl_state (id, crl_number) VALUES (1, 0);

-- CRLs list revoked certificates and the responders poll for new revocations; both select by
-- revocation time, which is NULL for the many certificates never revoked.
CREATE INDEX certificates_revoked_at ON certificates (revoked_at);
