-- One table for every secret a client presents: SCIM bearer tokens (kind 'scim') and LDAP
-- service accounts (kind 'ldap'). Same life for all: an argon2id hash only, created, expires,
-- revoked, last used; so expiry warnings, purging, revocation and listing are written once.
-- `name` is a service account's bind name (NULL for tokens); `description`, `read_only` and
-- `replaced_by` are what tokens use today. The kind is checked in code, so a new kind needs no
-- table rebuild.
CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    name        TEXT,
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    read_only   INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    revoked     INTEGER,
    last_used   INTEGER,
    replaced_by TEXT
) STRICT;

INSERT INTO credentials (id, kind, provider_id, name, secret_hash, description, read_only,
                         created, expires, revoked, last_used, replaced_by)
SELECT id, 'scim', provider_id, NULL, secret_hash, description, read_only,
       created, expires, revoked, last_used, replaced_by
FROM tokens;

INSERT INTO credentials (id, kind, provider_id, name, secret_hash, read_only, created, expires,
                         revoked, last_used)
SELECT id, 'ldap', provider_id, name, secret_hash, 1, created, expires, revoked, last_used
FROM ldap_accounts;

DROP TABLE tokens;
DROP TABLE ldap_accounts;

CREATE INDEX credentials_provider ON credentials (provider_id, kind);
CREATE INDEX credentials_expires ON credentials (expires);
-- One live credential per kind, provider and name; a revoked one frees its name.
CREATE UNIQUE INDEX credentials_name ON credentials (provider_id, kind, name)
    WHERE revoked IS NULL AND name IS NOT NULL;
