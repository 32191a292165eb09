-- What each identity provider did: one row per change (written in the change's transaction),
-- per refused request, per Entra connection test, and per minute of refused authentications of
-- one token id (or of unknown tokens of one provider).
CREATE TABLE activity (
    seq         INTEGER PRIMARY KEY,          -- commit order
    at          INTEGER NOT NULL,             -- unix milliseconds
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    token_id    TEXT,
    request_id  TEXT,
    method      TEXT,
    path        TEXT,
    kind        TEXT,                         -- User or Group
    resource_id TEXT,
    name        TEXT,                         -- userName or displayName
    action      TEXT NOT NULL,
    changed     TEXT,                         -- JSON array of attribute paths
    version     INTEGER,                      -- the resource's meta.version after the change
    status      INTEGER NOT NULL,             -- the HTTP status answered
    scim_type   TEXT,
    detail      TEXT,
    body_bytes  INTEGER,
    count       INTEGER NOT NULL DEFAULT 1,   -- requests this row stands for
    doc_values  TEXT                          -- JSON of the changed values, when the provider records them
) STRICT;
-- A provider's records by time: listing, status, retention and the per-provider cap. The only
-- index: records are appended in time order, so its inserts land on the same few pages, where
-- an index by resource would put every PATCH of a random user on a page of its own (a page
-- more to write per change). A resource's history is read by scanning instead.
CREATE INDEX activity_provider ON activity (provider_id, at);

-- Whether the activity records of a provider carry attribute values (personal data); off.
ALTER TABLE providers ADD COLUMN activity_values INTEGER NOT NULL DEFAULT 0;

-- Requests per provider and hour, and the last request, flushed from the server's counters.
CREATE TABLE provider_traffic (
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    hour        INTEGER NOT NULL,             -- unix seconds / 3600
    requests    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,             -- unix milliseconds of the last request counted
    PRIMARY KEY (provider_id, hour)
) STRICT, WITHOUT ROWID;
