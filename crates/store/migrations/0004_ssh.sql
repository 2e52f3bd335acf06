-- Schema version 4: SSH certificates and their revocation.
--
-- Serials are 64-bit unsigned in OpenSSH; BIGINT is signed in every engine, so the serial is
-- kept as its decimal text, like the X.509 serials. Times are unix seconds; a certificate
-- valid "forever" is stored with the largest BIGINT. One-time tokens burn in used_tokens.

CREATE TABLE ssh_certificates (
    serial            VARCHAR(20)  NOT NULL PRIMARY KEY,
    -- 'user' or 'host'.
    cert_type         VARCHAR(8)   NOT NULL,
    key_id            TEXT         NOT NULL,
    -- JSON array of strings.
    principals        TEXT         NOT NULL,
    -- The certificate's wire blob.
    cert              BLOB         NOT NULL,
    valid_after       BIGINT       NOT NULL,
    valid_before      BIGINT       NOT NULL,
    provisioner       VARCHAR(255) NOT NULL,
    -- 'valid' or 'revoked'.
    status            VARCHAR(16)  NOT NULL,
    created_at        BIGINT       NOT NULL,
    revoked_at        BIGINT,
    revocation_reason INTEGER,
    revocation_text   TEXT,
    revoked_by        VARCHAR(255)
);

-- The KRL lists revoked certificates; the host list reads valid host certificates.
CREATE INDEX ssh_certificates_status ON ssh_certificates (status, cert_type, valid_before);
