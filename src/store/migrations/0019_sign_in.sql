-- Sign-in with an identity provider (OpenID Connect) and application passwords.
--
-- One OpenID Connect client per provider. The client secret is kept here (the database is as
-- sensitive as the identities it holds); it is never shown back. `match_claim` names the
-- claim that finds the provisioned user whose `match_attribute` equals it.
CREATE TABLE oidc_settings (
    provider_id     INTEGER PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    issuer          TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    client_secret   TEXT NOT NULL,
    ca_pem          TEXT,
    match_claim     TEXT NOT NULL,
    match_attribute TEXT NOT NULL,
    admin_group     TEXT,
    changed         INTEGER NOT NULL
) STRICT;

-- Sessions of people who signed in with their identity provider (`/me`; the admin pages too
-- for members of the admin group). They end with the user: deleting the user deletes them,
-- and each request checks that the user is still active.
CREATE TABLE user_sessions (
    id_hash     TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    client      TEXT NOT NULL
) STRICT;
CREATE INDEX user_sessions_user ON user_sessions (provider_id, user_id);

-- An application password (credential kind 'app') belongs to one user: its SCIM id.
ALTER TABLE credentials ADD COLUMN owner TEXT;
CREATE INDEX credentials_owner ON credentials (provider_id, owner) WHERE owner IS NOT NULL;
