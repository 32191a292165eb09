-- The display name a client gave a member, kept as sent (RFC 7643 §4.2 members.display).
ALTER TABLE members ADD COLUMN display TEXT;
