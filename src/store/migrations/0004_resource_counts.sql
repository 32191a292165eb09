-- How many Users and Groups each provider holds, kept by triggers, so an unfiltered list's
-- totalResults is one row read instead of a count over the provider's index.
CREATE TABLE resource_counts (
    provider_id INTEGER NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (provider_id, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO resource_counts (provider_id, kind, n)
    SELECT provider_id, kind, count(*) FROM resources GROUP BY provider_id, kind;

CREATE TRIGGER resources_counted AFTER INSERT ON resources BEGIN
    INSERT OR IGNORE INTO resource_counts (provider_id, kind, n) VALUES (new.provider_id, new.kind, 0);
    UPDATE resource_counts SET n = n + 1 WHERE provider_id = new.provider_id AND kind = new.kind;
END;

CREATE TRIGGER resources_uncounted AFTER DELETE ON resources BEGIN
    UPDATE resource_counts SET n = n - 1 WHERE provider_id = old.provider_id AND kind = old.kind;
END;
