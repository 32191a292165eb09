-- What a running server tells the command line: the public URL it serves under, so commands
-- run without that setting print the URLs clients really use.
CREATE TABLE server_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
