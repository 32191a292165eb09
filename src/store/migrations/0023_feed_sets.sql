-- Feeds of Security Event Tokens (RFC 9967) beside Standard Webhooks, and feeds a receiver
-- pulls (RFC 8936) instead of being pushed to.

-- The request method (PUT or PATCH) of a change, so that a SET of a change that also
-- activated or deactivated the resource names the replace or the patch beside it.
ALTER TABLE feed_events ADD COLUMN method TEXT;

-- Pruning reads a provider's events from the oldest number on: an index by time is one more
-- write for every change, and nothing else reads it.
DROP INDEX feed_events_at;

-- SQLite cannot change a CHECK or a NOT NULL in place: the feeds table is made again.
CREATE TABLE feeds_new (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    provider_id     INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    url             TEXT,                    -- the receiver's; NULL: the receiver pulls
    format          TEXT NOT NULL CHECK (format IN ('webhook', 'set')),
    ops             TEXT NOT NULL,           -- the operations delivered, comma-separated
    full            INTEGER NOT NULL DEFAULT 0,
    ca_file         TEXT,
    secret          TEXT NOT NULL,           -- webhook: whsec_<base64>; set: the ES256 key
    old_secret      TEXT,                    -- the one before a rotation, signing (webhook) or
    old_until       INTEGER,                 -- published (set) beside it until then (unix s)
    audience        TEXT,                    -- a SET's aud claim
    paused          INTEGER NOT NULL DEFAULT 0,
    position        INTEGER NOT NULL,        -- the last event delivered
    created         INTEGER NOT NULL,
    delivered_at    INTEGER,                 -- unix milliseconds of the last delivery
    failing_since   INTEGER,                 -- unix milliseconds of the first failure in a row
    failing_noted   INTEGER NOT NULL DEFAULT 0, -- the activity log says it is failing
    last_error      TEXT,
    CHECK (url IS NOT NULL OR format = 'set')
) STRICT;
INSERT INTO feeds_new (id, name, provider_id, url, format, ops, full, ca_file, secret,
                       old_secret, old_until, paused, position, created, delivered_at,
                       failing_since, last_error)
    SELECT id, name, provider_id, url, format, ops, full, ca_file, secret, old_secret,
           old_until, paused, position, created, delivered_at, failing_since, last_error
    FROM feeds;
DROP TABLE feeds;
ALTER TABLE feeds_new RENAME TO feeds;
