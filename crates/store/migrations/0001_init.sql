-- Schema version 1: issued certificates and burnt one-time tokens.
--
-- Written in the subset that SQLite, PostgreSQL and MySQL/MariaDB all accept; the few type names
-- they spell differently (BLOB, TEXT) are translated when the migration is applied (see
-- src/dialect.rs), so every migration has one source for all engines. Keys are VARCHAR with a
-- length because MySQL cannot index an unbounded TEXT
-- column; the crate checks those lengths before writing so every backend refuses the same
-- inputs. Times are unix seconds in BIGINT: X.509 times have whole seconds, and integers
-- compare the same way in every engine, unlike the various timestamp types.

CREATE TABLE certificates (
    -- Decimal, as the HTTP API writes it; a 20-octet serial has at most 49 digits.
    serial            VARCHAR(64)  NOT NULL PRIMARY KEY,
    der               BLOB         NOT NULL,
    subject           TEXT         NOT NULL,
    -- JSON array of strings, in the order of the request.
    sans              TEXT         NOT NULL,
    not_before        BIGINT       NOT NULL,
    not_after         BIGINT       NOT NULL,
    provisioner       VARCHAR(255) NOT NULL,
    -- 'valid' or 'revoked' (CertificateStatus::as_str).
    status            VARCHAR(16)  NOT NULL,
    created_at        BIGINT       NOT NULL,
    -- Reserved for revocation: when, and the RFC 5280 CRLReason code.
    revoked_at        BIGINT,
    revocation_reason INTEGER
);

-- A jti is unique only within the provisioner that signed the token: provisioners mint their
-- tokens independently, so two of them may well pick the same jti, and a token signed by one
-- cannot be replayed as another's anyway. Keying on the pair keeps one provisioner from burning
-- (by accident or on purpose) the jtis of another.
CREATE TABLE used_tokens (
    provisioner VARCHAR(255) NOT NULL,
    jti         VARCHAR(255) NOT NULL,
    expires_at  BIGINT       NOT NULL,
    PRIMARY KEY (provisioner, jti)
);

-- Pruning deletes by expiry; without this it would scan the whole table.
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);
