-- The admin console's accounts and their sessions. A session is found by a hash of its cookie,
-- so the database never holds a value a browser could present.
CREATE TABLE admins (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created       INTEGER NOT NULL,
    changed       INTEGER NOT NULL,
    last_login    INTEGER
) STRICT;

CREATE TABLE admin_sessions (
    id_hash   TEXT PRIMARY KEY,
    admin_id  INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    csrf      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    client    TEXT NOT NULL
) STRICT;
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);
