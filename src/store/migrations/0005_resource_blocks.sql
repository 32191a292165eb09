-- How many resources of each provider and kind fall in each block of 1,024 consecutive keys,
-- kept by triggers. Finding the resource at position N (startIndex paging) then sums block
-- counts and walks at most one block of the index, instead of stepping over N index entries.
CREATE TABLE resource_blocks (
    provider_id INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    block       INTEGER NOT NULL,   -- seq >> 10
    n           INTEGER NOT NULL,
    PRIMARY KEY (provider_id, kind, block)
) STRICT, WITHOUT ROWID;

INSERT INTO resource_blocks (provider_id, kind, block, n)
    SELECT provider_id, kind, seq >> 10, count(*) FROM resources GROUP BY 1, 2, 3;

CREATE TRIGGER resources_blocked AFTER INSERT ON resources BEGIN
    INSERT INTO resource_blocks (provider_id, kind, block, n)
        VALUES (new.provider_id, new.kind, new.seq >> 10, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER resources_unblocked AFTER DELETE ON resources BEGIN
    UPDATE resource_blocks SET n = n - 1
        WHERE provider_id = old.provider_id AND kind = old.kind AND block = old.seq >> 10;
    DELETE FROM resource_blocks
        WHERE provider_id = old.provider_id AND kind = old.kind AND block = old.seq >> 10 AND n = 0;
END;
