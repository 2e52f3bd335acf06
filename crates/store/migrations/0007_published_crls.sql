-- Schema version 7: the newest CRL of each scope, so every instance serves the newest one any
-- instance made and a relying party moving between instances never gets an older number.
CREATE TABLE published_crls (
    -- 'full' or 'delta'.
    scope       VARCHAR(16) NOT NULL PRIMARY KEY,
    crl_number  BIGINT      NOT NULL,
    this_update BIGINT      NOT NULL,
    next_update BIGINT      NOT NULL,
    der         BLOB        NOT NULL
);
