-- The console's search anywhere (names, emails, phones, title, externalId): a trigram index of
-- each resource's values (folded ones and exact ones apart), so a search for text inside them
-- reads the index instead of every resource. Filled off the request path by a background job
-- (text_index.rs) from the resources after `built` and the activity records after `followed`;
-- a search reads whatever the job has not reached yet from the resources themselves.
-- detail = none: the index keeps which rows hold a trigram, not where nor in which column (a
-- GLOB search checks its candidates against the stored text), a tenth of the size of positions.
-- So the values compared exactly (externalId) have a table of their own: text found in every
-- folded value is then not a candidate in each resource's exact ones.
CREATE VIRTUAL TABLE search_text USING fts5 (
    folded, tokenize = 'trigram case_sensitive 1', detail = none
);
CREATE VIRTUAL TABLE search_exact USING fts5 (
    exact, tokenize = 'trigram case_sensitive 1', detail = none
);

CREATE TABLE search_text_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    built    INTEGER NOT NULL,   -- every resource up to this seq has its row
    followed INTEGER NOT NULL    -- the changes of activity records up to this seq are in
) STRICT;
INSERT INTO search_text_state (id, built, followed)
    VALUES (1, 0, (SELECT coalesce(max(seq), 0) FROM activity));
