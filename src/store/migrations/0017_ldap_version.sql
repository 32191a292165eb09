-- Bumped by every change to a provider's LDAP mappings or POSIX settings, so the directory
-- keeps them in memory and reads them again only when they changed (as model_version does
-- for the schema model).
ALTER TABLE providers ADD COLUMN ldap_version INTEGER NOT NULL DEFAULT 0;
