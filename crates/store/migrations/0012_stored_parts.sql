-- Schema version 12: large values in parts, and the revoked set saved for the next start.
--
-- A complete CRL of a million entries is 46 MB. Sent as one value, MariaDB refuses it (its
-- `max_allowed_packet` is 16 MiB by default) and sqlx holds two copies of it while it is sent.
-- Each kept CRL is now its row of numbers and its DER in parts of at most 1 MiB, written in one
-- transaction and read back by one statement (so a reader never mixes two CRLs' parts).
CREATE TABLE published_crl_parts (
    scope VARCHAR(16) NOT NULL,
    part  INTEGER     NOT NULL,
    bytes BLOB        NOT NULL,
    PRIMARY KEY (scope, part)
);
INSERT INTO published_crl_parts (scope, part, bytes) SELECT scope, 0, der FROM published_crls;
ALTER TABLE published_crls ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE published_crls DROP COLUMN der;
-- Random serials do not compress: PostgreSQL would try each part first.
ALTER TABLE published_crl_parts ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- The revoked set a CRL publisher keeps in memory (ADR 18), as of a revocation number: the
-- first complete CRL after a start reads it and the revocations numbered since, instead of
-- every revoked row (a million rows take seconds to read and parse). One per kind: the set
-- without expired certificates, and the set with them (`crl.keepExpired`).
CREATE TABLE revoked_snapshots (
    kind           VARCHAR(16) NOT NULL PRIMARY KEY,
    revocation_seq BIGINT      NOT NULL,
    taken_at       BIGINT      NOT NULL,
    parts          INTEGER     NOT NULL
);
CREATE TABLE revoked_snapshot_parts (
    kind  VARCHAR(16) NOT NULL,
    part  INTEGER     NOT NULL,
    bytes BLOB        NOT NULL,
    PRIMARY KEY (kind, part)
);
ALTER TABLE revoked_snapshot_parts ALTER COLUMN bytes SET STORAGE EXTERNAL;
