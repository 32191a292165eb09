-- A provider's POSIX identities in its LDAP tree (`scimd ldap posix`): numbers are first_id
-- plus the resource's never-reused key (resources.seq), so nothing is allocated per resource.
CREATE TABLE posix_settings (
    provider_id INTEGER PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    first_id    INTEGER NOT NULL,
    last_id     INTEGER NOT NULL,
    home        TEXT NOT NULL,
    shell       TEXT NOT NULL,
    primary_gid INTEGER                 -- NULL: each user's own group (gidNumber = uidNumber)
);
