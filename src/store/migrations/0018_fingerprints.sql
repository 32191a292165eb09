-- A short keyed digest of a machine-made secret (tokens, LDAP service accounts, application
-- passwords), checked before argon2: a wrong secret is refused at the cost of one hash, so a
-- flood of guesses spends no argon2 and no budget, and never locks the holder out. 64 bits of
-- a 256-bit random secret: it rejects all but one guess in 2^64, and tells a reader of the
-- database nothing usable. NULL for credentials made before it existed (argon2 and the
-- budgets, as before).
ALTER TABLE credentials ADD COLUMN fingerprint TEXT;
