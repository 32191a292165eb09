-- A provider's own LDAP attributes for groups too (`scimd ldap map --groups`): the mapping
-- table gains the resource type it applies to.
CREATE TABLE ldap_mappings_new (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    ldap_attr   TEXT NOT NULL COLLATE NOCASE,
    scim_path   TEXT NOT NULL,
    PRIMARY KEY (provider_id, kind, ldap_attr)
) STRICT;
INSERT INTO ldap_mappings_new (provider_id, kind, ldap_attr, scim_path)
    SELECT provider_id, 'User', ldap_attr, scim_path FROM ldap_mappings;
DROP TABLE ldap_mappings;
ALTER TABLE ldap_mappings_new RENAME TO ldap_mappings;
