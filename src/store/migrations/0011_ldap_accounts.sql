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
-- Binds and searches per provider, account (a service account's name, or `uid=` and a user's
-- name) and hour, as the server counted them (added at each activity_interval).
CREATE TABLE ldap_traffic (
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    account      TEXT NOT NULL,
    hour         INTEGER NOT NULL,
    binds        INTEGER NOT NULL DEFAULT 0,
    failed_binds INTEGER NOT NULL DEFAULT 0,
    searches     INTEGER NOT NULL DEFAULT 0,
    last_at      INTEGER NOT NULL,
    PRIMARY KEY (provider_id, account, hour)
) STRICT;

-- A provider's own LDAP attributes for users: each read from a SCIM attribute path (custom
-- extension attributes included), replacing the built-in mapping of that name.
CREATE TABLE ldap_mappings (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    ldap_attr   TEXT NOT NULL COLLATE NOCASE,
    scim_path   TEXT NOT NULL,
    PRIMARY KEY (provider_id, ldap_attr)
) STRICT;

-- A base DN of the provider's choosing for its LDAP tree (default dc=<provider>,dc=scimd).
CREATE TABLE ldap_settings (
    provider_id INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    base_dn     TEXT NOT NULL
) STRICT;

-- One live account per name and provider; a revoked one frees its name.
CREATE UNIQUE INDEX ldap_accounts_name ON ldap_accounts (provider_id, name) WHERE revoked IS NULL;
