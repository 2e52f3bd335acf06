-- Schema version 5: the ACME protocol's state (mayfly-acme's AcmeStore).
--
-- Accounts, orders and authorizations are JSON documents (body) beside the columns that are
-- looked up; `version` makes every state transition a compare-and-set (UPDATE ... WHERE
-- version = ?), so concurrent requests and instances cannot lose an update. Same portable
-- subset as 0001: VARCHAR keys with lengths, BIGINT unix seconds, no engine-specific syntax.

CREATE TABLE acme_nonces (
    nonce      VARCHAR(64) NOT NULL PRIMARY KEY,
    expires_at BIGINT      NOT NULL
);
CREATE INDEX acme_nonces_expires_at ON acme_nonces (expires_at);

CREATE TABLE acme_accounts (
    id             VARCHAR(64) NOT NULL PRIMARY KEY,
    -- RFC 7638 thumbprint: one account per key.
    key_thumbprint VARCHAR(64) NOT NULL UNIQUE,
    version        BIGINT      NOT NULL,
    body           TEXT        NOT NULL,
    created_at     BIGINT      NOT NULL
);

CREATE TABLE acme_orders (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,
    account_id VARCHAR(64) NOT NULL,
    version    BIGINT      NOT NULL,
    body       TEXT        NOT NULL,
    created_at BIGINT      NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);

-- One row per identifier of an order, for the per-identifier rate limit.
CREATE TABLE acme_order_identifiers (
    order_id   VARCHAR(64)  NOT NULL,
    identifier VARCHAR(300) NOT NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (order_id, identifier)
);
CREATE INDEX acme_order_identifiers_identifier ON acme_order_identifiers (identifier, created_at);

CREATE TABLE acme_authorizations (
    id         VARCHAR(64)  NOT NULL PRIMARY KEY,
    account_id VARCHAR(64)  NOT NULL,
    -- `dns:example.com`, `dns:*.example.com` (wildcard), `ip:192.0.2.1`.
    identifier VARCHAR(300) NOT NULL,
    status     VARCHAR(16)  NOT NULL,
    expires_at BIGINT       NOT NULL,
    version    BIGINT       NOT NULL,
    body       TEXT         NOT NULL
);
CREATE INDEX acme_authorizations_lookup ON acme_authorizations (account_id, identifier, status);

-- Which account (and order) a certificate was issued to: download and revocation rights.
CREATE TABLE acme_certificates (
    serial     VARCHAR(64) NOT NULL PRIMARY KEY,
    account_id VARCHAR(64) NOT NULL,
    order_id   VARCHAR(64) NOT NULL
);

-- Keys revoked for keyCompromise: refused in later CSRs (badPublicKey).
CREATE TABLE acme_blocked_keys (
    spki_sha256 VARCHAR(64) NOT NULL PRIMARY KEY,
    blocked_at  BIGINT      NOT NULL
);
