-- What admins did: provider, schema, credential and account changes and console sign-ins, from
-- the command line or the console. A record names its provider by name, not by id, so it
-- outlives the provider it speaks of.
CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,           -- unix milliseconds
    actor    TEXT NOT NULL,              -- 'console:NAME' or 'cli:USER'
    client   TEXT,                       -- the console client's address
    action   TEXT NOT NULL,              -- e.g. 'token created'
    provider TEXT,                       -- the provider's name, when the action has one
    target   TEXT NOT NULL DEFAULT '',   -- what was acted on: a token id, a schema URN, a name
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at);
