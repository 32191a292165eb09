-- A change's feed event lives in the change's activity record instead of a row of its own:
-- the record already holds the time, the resource, the operation (its action), the changed
-- names, the version and the method, so the event adds a number and the externalId to a row
-- that is written anyway (and an entry of the partial index below), not a second row of some
-- 300 bytes with the changed names a second time. The record of a kept event outlives the
-- activity retention until the feed retention lets go of the event (activity.rs, prune).
ALTER TABLE activity ADD COLUMN feed_seq INTEGER;     -- the event's number, while it is kept
ALTER TABLE activity ADD COLUMN external_id TEXT;     -- the resource's externalId, for the event
CREATE INDEX activity_feed ON activity (provider_id, feed_seq) WHERE feed_seq IS NOT NULL;

-- The events kept move onto their change's record (the same provider, time, resource and
-- version: a change writes both with the same time) ...
UPDATE activity SET feed_seq = e.seq, external_id = e.external_id
    FROM feed_events e
    WHERE e.provider_id = activity.provider_id AND e.at = activity.at
      AND e.resource_id = activity.resource_id AND e.version = activity.version
      AND activity.action IN ('created', 'replaced', 'patched', 'deactivated', 'reactivated',
                              'deleted', 'member added', 'member removed');

-- ... and an event whose record the activity retention already took becomes a record again,
-- so that no event kept is lost.
INSERT INTO activity (at, provider_id, method, kind, resource_id, action, changed, version,
                      status, feed_seq, external_id)
    SELECT e.at, e.provider_id, e.method, e.kind, e.resource_id,
           CASE e.op WHEN 'create' THEN 'created' WHEN 'replace' THEN 'replaced'
                     WHEN 'patch' THEN 'patched' WHEN 'delete' THEN 'deleted'
                     WHEN 'activate' THEN 'reactivated' WHEN 'deactivate' THEN 'deactivated'
                     ELSE 'member added' END,
           e.changed, e.version,
           CASE e.op WHEN 'create' THEN 201 WHEN 'delete' THEN 204 ELSE 200 END,
           e.seq, e.external_id
    FROM feed_events e
    WHERE NOT EXISTS (SELECT 1 FROM activity a
                      WHERE a.provider_id = e.provider_id AND a.feed_seq = e.seq)
    ORDER BY e.provider_id, e.seq;

DROP TABLE feed_events;
