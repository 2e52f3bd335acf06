-- Schema version 8: the audit log. One row for every certificate issued, renewed, rekeyed or
-- revoked (X.509 and SSH), written in the same transaction as the change it describes. Rows are
-- only ever inserted: no statement of mayfly updates or deletes them, and the retention job
-- leaves them alone, so the log outlives the certificates it describes.
--
-- AUTO_ID is the portable spelling of an integer key the engine assigns in increasing order
-- (src/dialect.rs translates it); readers page through the log by it.

CREATE TABLE audit_log (
    id          AUTO_ID,
    at          BIGINT       NOT NULL,
    -- AuditAction::as_str: issued, renewed, rekeyed, revoked, ssh-issued, ...
    action      VARCHAR(32)  NOT NULL,
    -- Decimal, X.509 or SSH.
    serial      VARCHAR(64)  NOT NULL,
    -- The subject common name, or an SSH certificate's key id.
    subject     TEXT         NOT NULL,
    -- JSON array: the SANs, or an SSH certificate's principals.
    sans        TEXT         NOT NULL,
    provisioner VARCHAR(255) NOT NULL,
    -- The credential that authorised the change (token:<provisioner>, mtls:<subject>, ...).
    credential  TEXT         NOT NULL,
    -- The client's IP address; empty when the change did not come over the network.
    address     VARCHAR(64)  NOT NULL,
    detail      TEXT         NOT NULL
);

-- Indexed by time, not by serial: SSH serials and the X.509 serials of earlier versions are
-- random, and a serial index cost every issuance a write to a random page (about 7 % of the CPU
-- per certificate on SQLite), for a lookup that only audits need; a lookup by serial scans the
-- log, or the part of it `at` bounds.
CREATE INDEX audit_log_at ON audit_log (at);
