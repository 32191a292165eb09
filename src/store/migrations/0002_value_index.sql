-- Case-folded values of multi-valued sub-attributes that identity providers match on
-- (emails.value), one row each, so `emails.value eq "..."` is an index lookup.
CREATE TABLE value_index (
    seq       INTEGER NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    attr      TEXT NOT NULL,                -- e.g. 'emails.value'
    value_key TEXT NOT NULL,
    PRIMARY KEY (attr, value_key, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX value_index_seq ON value_index (seq);

-- (provider_id, kind) in creation order: counts and deep pages walk this narrow index.
CREATE INDEX resources_kind ON resources (provider_id, kind);
