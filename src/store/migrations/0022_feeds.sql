-- The change feed (a transactional outbox). Every committed change of a provider that has a
-- feed writes an event in the change's own transaction, numbered per provider without gaps in
-- commit order (`feed_counters.last`, whose row exists once the provider's first feed does);
-- feeds deliver the events after their position.
CREATE TABLE feed_counters (
    provider_id INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    last        INTEGER NOT NULL
) STRICT;

CREATE TABLE feed_events (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,            -- unix milliseconds of the commit
    kind        TEXT NOT NULL,               -- User, Group
    resource_id TEXT NOT NULL,
    external_id TEXT,
    op          TEXT NOT NULL,               -- create replace patch delete activate deactivate members
    changed     TEXT NOT NULL,               -- JSON array of attribute names
    version     INTEGER NOT NULL,
    PRIMARY KEY (provider_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX feed_events_at ON feed_events (at);

-- A subscription: where a provider's events go, which of them, signed with what, and how far
-- it has got.
CREATE TABLE feeds (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    provider_id     INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    format          TEXT NOT NULL CHECK (format IN ('webhook')),
    ops             TEXT NOT NULL,           -- the operations delivered, comma-separated
    full            INTEGER NOT NULL DEFAULT 0,
    ca_file         TEXT,
    secret          TEXT NOT NULL,           -- whsec_<base64>: HMAC needs the key itself
    old_secret      TEXT,                    -- the one before a rotation, signing beside it ...
    old_until       INTEGER,                 -- ... until then (unix seconds)
    paused          INTEGER NOT NULL DEFAULT 0,
    position        INTEGER NOT NULL,        -- the last event delivered
    created         INTEGER NOT NULL,
    delivered_at    INTEGER,                 -- unix milliseconds of the last delivery
    failing_since   INTEGER,                 -- unix milliseconds of the first failure in a row
    last_error      TEXT
) STRICT;
