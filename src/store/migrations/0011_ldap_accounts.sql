-- Service accounts that applications bind to the LDAP directory with, one provider's tree
-- each. Like tokens: the secret is shown once and only its argon2id hash is kept.
CREATE TABLE ldap_accounts (
    id          TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    revoked     INTEGER,
    last_used   INTEGER
) STRICT;
-- One live account per name and provider; a revoked one frees its name.
CREATE UNIQUE INDEX ldap_accounts_name ON ldap_accounts (provider_id, name) WHERE revoked IS NULL;
