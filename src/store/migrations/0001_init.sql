-- Identity providers: each is an isolated namespace with its own SCIM base URL.
CREATE TABLE providers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL CHECK (kind IN ('generic', 'entra')),
    created     INTEGER NOT NULL            -- unix seconds
) STRICT;

-- Bearer tokens. Only an argon2id hash of the secret is stored; times are unix seconds.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    read_only   INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    revoked     INTEGER,
    last_used   INTEGER,
    replaced_by TEXT
) STRICT;
CREATE INDEX tokens_provider ON tokens (provider_id);
CREATE INDEX tokens_expires ON tokens (expires);

-- SCIM resources (Users and Groups) of every provider. `seq` is the internal key; `id` is the
-- opaque SCIM id handed to clients and never reused.
CREATE TABLE resources (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id   INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    id            TEXT NOT NULL UNIQUE,
    external_id   TEXT,
    name          TEXT NOT NULL,            -- userName or displayName, exactly as sent
    name_key      TEXT NOT NULL,            -- the same, case-folded, for uniqueness and lookups
    doc           TEXT NOT NULL,            -- stored attributes as JSON, without id/meta/members
    password_hash TEXT,
    created       TEXT NOT NULL,            -- RFC 3339, UTC
    modified      TEXT NOT NULL,
    version       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX resources_name ON resources (provider_id, kind, name_key);
CREATE INDEX resources_external_id ON resources (provider_id, kind, external_id);

-- Group memberships, one row each, so membership changes never rewrite a whole list.
CREATE TABLE members (
    group_seq  INTEGER NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    member_seq INTEGER NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    PRIMARY KEY (group_seq, member_seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX members_member ON members (member_seq);
