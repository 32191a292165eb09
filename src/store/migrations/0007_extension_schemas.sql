-- Extension schemas an identity provider registered (`scimd schema add`), per resource type.
-- `definition` is the RFC 7643 §7 schema representation as given; `indexed` lists (as a JSON
-- array) the attributes whose values are kept in value_index for `eq` lookups.
CREATE TABLE extension_schemas (
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    urn         TEXT NOT NULL COLLATE NOCASE,
    kind        TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    definition  TEXT NOT NULL,
    indexed     TEXT NOT NULL DEFAULT '[]',
    created     INTEGER NOT NULL,            -- unix seconds
    PRIMARY KEY (provider_id, urn)
) STRICT, WITHOUT ROWID;

-- What a provider does with an attribute of a schema it has not registered: refuse the request
-- naming it, or drop it. `model_version` changes with every change of the provider's schema
-- model (its extensions, this policy), so a running server rebuilds the model it keeps.
ALTER TABLE providers ADD COLUMN unknown_attributes TEXT NOT NULL DEFAULT 'reject'
    CHECK (unknown_attributes IN ('reject', 'ignore'));
ALTER TABLE providers ADD COLUMN model_version INTEGER NOT NULL DEFAULT 0;
