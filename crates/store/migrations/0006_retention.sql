-- Schema version 6: what the retention job and jobs across instances need.
--
-- A lease is a row that one instance holds until expires_at, so that a job runs on one instance
-- at a time (the instances share nothing else). Taking it is one conditional statement, so two
-- instances can never both believe they hold it.
CREATE TABLE leases (
    name       VARCHAR(64)  NOT NULL PRIMARY KEY,
    holder     VARCHAR(255) NOT NULL,
    expires_at BIGINT       NOT NULL
);

-- The retention job deletes by expiry; without this it would scan the whole table.
CREATE INDEX certificates_not_after ON certificates (not_after);
