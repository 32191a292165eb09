-- What a provider's SCIM requests may do to users' passwords: 'ignore', 'updates' (kept from a
-- PUT or PATCH, ignored in a create; the default) or 'all'.
ALTER TABLE providers ADD COLUMN scim_passwords TEXT NOT NULL DEFAULT 'updates';
