-- The records that are not changes (refusals, refused authentications, connection tests,
-- sign-ins) have an index of their own. They are few beside the changes, so it costs a write
-- only when one is recorded, and the dashboard's last error and its counts for the last day,
-- the activity page's failed-only view and the cap on such records read a short range of it
-- instead of every change of a large provider. The list is activity.rs's CHANGES: a query
-- uses the index only when it states the same condition.
CREATE INDEX activity_others ON activity (provider_id, at)
    WHERE action NOT IN ('created','replaced','patched','deactivated','reactivated','deleted',
                         'member added','member removed');
