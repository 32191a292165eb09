//! The console's search anywhere (text inside names, emails, phones, title, externalId) at any
//! size: a trigram index (SQLite FTS5, migration 21) of each resource's `SearchText`, rowid =
//! the resource's key.
//!
//! The index is kept off the request path: `step`, run by a background job, adds the resources
//! created after `built` and writes again those named by activity records after `followed`
//! (every change writes one in its transaction). A search answers from the index for the
//! resources it is up to date for and evaluates the filter itself on the few it is not (the
//! tail), so it never misses a change the job has not reached. Rows of deleted resources
//! match nothing (a search joins the resources) and go in `purge`.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params};

use super::Result;
use super::rows::parse_kind;
use super::search::Condition;
use crate::scim::filter::Filter;
use crate::scim::schema::ResourceType;
use crate::scim::summary::{search_text, search_text_patterns};

/// A tail longer than this (the index being built after an upgrade, or far behind) and a
/// search reads every resource instead.
const TAIL_MAX: usize = 20_000;
/// Text found in more than this many resources is broad: reading all of them (to page them
/// in order, to count them) would take a second at a million, so a broad search checks the
/// resources in the page's order against the index instead, and counts this many at most.
const BROAD: i64 = 5_000;

fn marks(c: &Connection) -> Result<(i64, i64)> {
    Ok(
        c.prepare_cached("SELECT built, followed FROM search_text_state WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?,
    )
}

fn write_row(
    c: &Connection,
    seq: i64,
    kind: &str,
    doc: &str,
    external_id: Option<&str>,
) -> Result<usize> {
    let rt = parse_kind(kind)?.builtin();
    let doc: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
    let text = search_text(rt, &doc, external_id);
    c.prepare_cached("DELETE FROM search_text WHERE rowid = ?1")?
        .execute([seq])?;
    c.prepare_cached("DELETE FROM search_exact WHERE rowid = ?1")?
        .execute([seq])?;
    if !text.folded.is_empty() {
        c.prepare_cached("INSERT INTO search_text (rowid, folded) VALUES (?1, ?2)")?
            .execute(params![seq, text.folded])?;
    }
    if !text.exact.is_empty() {
        c.prepare_cached("INSERT INTO search_exact (rowid, exact) VALUES (?1, ?2)")?
            .execute(params![seq, text.exact])?;
    }
    Ok(text.folded.len() + text.exact.len())
}

/// One step of the job, in the caller's write transaction: the changes of up to `batch`
/// activity records after `followed`, then up to `batch` resources created after `built`,
/// each part ending early once it has written `bytes` of text (a transaction's size is what
/// its commit writes to the WAL and what holds the writer). Returns whether it ended early
/// (call again while it does).
pub(crate) fn step(c: &Connection, batch: i64, bytes: usize) -> Result<bool> {
    let (built, followed) = marks(c)?;
    let mut changed = c.prepare_cached(
        "SELECT a.seq, r.seq, r.kind, r.doc, r.external_id
         FROM activity a LEFT JOIN resources r ON r.id = a.resource_id
         WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2",
    )?;
    let mut rows = changed.query(params![followed, batch])?;
    let (mut followed_to, mut records, mut written) = (followed, 0, 0);
    while written < bytes
        && let Some(r) = rows.next()?
    {
        followed_to = r.get(0)?;
        records += 1;
        // A resource past `built` gets its row below; a deleted one has none to write.
        if let Some(seq) = r.get::<_, Option<i64>>(1)?.filter(|s| *s <= built) {
            let (kind, doc): (String, String) = (r.get(2)?, r.get(3)?);
            written += write_row(
                c,
                seq,
                &kind,
                &doc,
                r.get::<_, Option<String>>(4)?.as_deref(),
            )?;
        }
    }
    let more = records == batch || written >= bytes;
    drop(rows);
    let mut created = c.prepare_cached(
        "SELECT seq, kind, doc, external_id FROM resources WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = created.query(params![built, batch])?;
    let (mut built_to, mut resources, mut written) = (built, 0, 0);
    while written < bytes
        && let Some(r) = rows.next()?
    {
        built_to = r.get(0)?;
        resources += 1;
        let (kind, doc): (String, String) = (r.get(1)?, r.get(2)?);
        written += write_row(
            c,
            built_to,
            &kind,
            &doc,
            r.get::<_, Option<String>>(3)?.as_deref(),
        )?;
    }
    let more = more || resources == batch || written >= bytes;
    drop(rows);
    // Nothing new, nothing written: an idle server's steps commit nothing.
    if (built_to, followed_to) != (built, followed) {
        c.prepare_cached("UPDATE search_text_state SET built = ?1, followed = ?2 WHERE id = 1")?
            .execute(params![built_to, followed_to])?;
    }
    Ok(more)
}

/// Called in the transaction that deletes activity records: when the newest go (a provider's
/// removal), SQLite hands their keys out again, and the job must read them as new.
pub(crate) fn forget_deleted_records(c: &Connection) -> Result<()> {
    c.prepare_cached(
        "UPDATE search_text_state
         SET followed = min(followed, (SELECT coalesce(max(seq), 0) FROM activity))
         WHERE id = 1",
    )?
    .execute([])?;
    Ok(())
}

/// Deletes the rows of resources that no longer exist among keys `from..to`; returns how many
/// resources had some.
pub(crate) fn purge(c: &Connection, from: i64, to: i64) -> Result<usize> {
    let mut gone = 0;
    for table in ["search_text", "search_exact"] {
        gone = gone.max(
            c.prepare_cached(&format!(
                "DELETE FROM {table} WHERE rowid IN
                   (SELECT s.rowid FROM {table} s WHERE s.rowid >= ?1 AND s.rowid < ?2
                      AND NOT EXISTS (SELECT 1 FROM resources WHERE seq = s.rowid))"
            ))?
            .execute(params![from, to])?,
        );
    }
    Ok(gone)
}

/// The largest resource key there ever was (the end of the range `purge` walks): the
/// AUTOINCREMENT high-water mark, one row, where `max(rowid)` of the index reads all of it.
pub(crate) fn last_key(c: &Connection) -> Result<i64> {
    Ok(c.prepare_cached(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'resources'), 0)",
    )?
    .query_row([], |r| r.get(0))?)
}

/// The condition for "the text is inside one of the searched values" (`filter`, the
/// equivalent SCIM filter, with its parameters from ?6), answered by the index; `None` when
/// the index cannot answer it (text under three characters or with a GLOB wildcard, or a
/// tail too long).
pub(crate) fn contains_condition(
    c: &Connection,
    rt: &ResourceType,
    base: &str,
    text: &str,
    filter: &Filter,
) -> Result<Option<Condition>> {
    condition_within(c, rt, base, text, filter, BROAD)
}

/// `contains_condition` with text in more than `broad` rows counted broad.
fn condition_within(
    c: &Connection,
    rt: &ResourceType,
    base: &str,
    text: &str,
    filter: &Filter,
    broad: i64,
) -> Result<Option<Condition>> {
    let Some(patterns) = search_text_patterns(text) else {
        return Ok(None);
    };
    let (built, followed) = marks(c)?;
    let mut tail_st = c.prepare_cached(
        "SELECT seq FROM resources WHERE seq > ?1
         UNION
         SELECT r.seq FROM activity a JOIN resources r ON r.id = a.resource_id WHERE a.seq > ?2
         LIMIT ?3",
    )?;
    let tail: Vec<i64> = tail_st
        .query_map(params![built, followed, TAIL_MAX as i64 + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tail.len() > TAIL_MAX {
        return Ok(None);
    }
    // How many rows hold the text, as far as `BROAD` (each a row of the index, among every
    // provider's).
    let found: i64 = c
        .prepare_cached(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM search_text WHERE folded GLOB ?1 LIMIT ?3))
                  + (SELECT count(*) FROM (SELECT 1 FROM search_exact WHERE exact GLOB ?2 LIMIT ?3))",
        )?
        .query_row(
            params![patterns.folded, patterns.exact, broad + 1],
            |r| r.get(0),
        )?;
    let cap = broad;
    let broad = found > cap;
    let inner = super::query::condition_from(rt, base, filter, 6)?;
    let tail = serde_json::to_string(&tail).unwrap_or_else(|_| "[]".into());
    let mut params = vec![
        Sql::Text(patterns.folded),
        Sql::Text(patterns.exact),
        Sql::Text(tail),
    ];
    params.extend(inner.params);
    let sql = if broad {
        // Each resource in the page's order, its text read from the index by key and matched
        // here (or, in the tail, the filter itself) until the page is full. (A GLOB beside the
        // key inside the FTS5 query would have FTS5 walk the trigrams' lists for each one.)
        format!(
            "CASE WHEN r.seq IN (SELECT value FROM json_each(?5)) THEN ({})
                  ELSE (SELECT folded FROM search_text WHERE rowid = r.seq) GLOB ?3
                    OR (SELECT exact FROM search_exact WHERE rowid = r.seq) GLOB ?4 END",
            inner.sql
        )
    } else {
        // The index's rows that hold the text where it is up to date; the filter itself on
        // the tail. (Two selects: FTS5 reads its index for one GLOB, but scans for an OR.)
        format!(
            "r.seq IN (SELECT rowid FROM search_text WHERE folded GLOB ?3
                       UNION SELECT rowid FROM search_exact WHERE exact GLOB ?4
                       UNION SELECT value FROM json_each(?5))
             AND (r.seq NOT IN (SELECT value FROM json_each(?5)) OR ({}))",
            inner.sql
        )
    };
    Ok(Some(Condition {
        sql,
        params,
        driven: !broad,
        by_name: false,
        count_cap: broad.then_some(cap),
    }))
}

/// Whether the index has caught up with every resource and change.
#[cfg(test)]
pub(crate) fn caught_up(c: &Connection) -> Result<bool> {
    let (built, followed) = marks(c)?;
    let behind: Option<i64> = c
        .prepare_cached(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM resources WHERE seq > ?1)
                         OR EXISTS (SELECT 1 FROM activity WHERE seq > ?2)",
        )?
        .query_row(params![built, followed], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(behind.is_none())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::filter::parse;
    use crate::scim::resource::prepare;
    use crate::scim::{ProviderKind, ResourceKind};
    use crate::store::providers;
    use crate::store::resources::create;
    use crate::store::search::{Paging, search};
    use crate::store::test_conn;

    /// A search's total, names and whether the index answered it, each way the index can: as
    /// a narrow search, and as a broad one (text in more than one row: it must find the same
    /// resources, and count one at most).
    fn found(c: &Connection, provider: i64, text: &str) -> (i64, Vec<String>, bool) {
        let narrow = found_within(c, provider, text, BROAD);
        let broad = found_within(c, provider, text, 1);
        assert_eq!(broad.1, narrow.1, "{text}: the broad search found others");
        let (total, more_than) = broad.0;
        assert!(
            if more_than {
                total == 1 && narrow.0.0 > 1
            } else {
                total == narrow.0.0
            },
            "{text}: broad total {total} {more_than}, narrow {:?}",
            narrow.0
        );
        (narrow.0.0, narrow.1, narrow.2)
    }

    fn found_within(
        c: &Connection,
        provider: i64,
        text: &str,
        broad: i64,
    ) -> ((i64, bool), Vec<String>, bool) {
        let rt = ResourceKind::User.builtin();
        let f = parse(&crate::scim::summary::search_filter(rt, text, true)).unwrap();
        let cond = condition_within(c, rt, "http://x/scim", text, &f, broad).unwrap();
        let indexed = cond.is_some();
        let cond = match cond {
            Some(c) => c,
            None => crate::store::query::condition(rt, "http://x/scim", &f).unwrap(),
        };
        let page = search(
            c,
            provider,
            ResourceKind::User,
            Some(&cond),
            Paging::After(0),
            50,
        )
        .unwrap();
        let names = page
            .items
            .iter()
            .map(|r| {
                let doc: serde_json::Value = serde_json::from_str(r.doc).unwrap();
                doc["userName"].as_str().unwrap_or("").to_string()
            })
            .collect();
        ((page.total, page.more_than_total), names, indexed)
    }

    fn user(c: &Connection, p: i64, body: serde_json::Value) -> String {
        let rt = ResourceKind::User.builtin();
        create(c, p, rt, &prepare(rt, &body).unwrap(), None, "t")
            .unwrap()
            .id
    }

    /// Changes a user's document as a PATCH would, with its activity record, behind the job.
    fn rewrite(c: &Connection, provider: i64, id: &str, doc: serde_json::Value) {
        c.execute(
            "UPDATE resources SET doc = ?2 WHERE id = ?1",
            params![id, doc.to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO activity (at, provider_id, kind, resource_id, action, status)
             VALUES (0, ?1, 'User', ?2, 'patched', 200)",
            params![provider, id],
        )
        .unwrap();
    }

    /// A search finds what the filter finds whether or not the job has reached a change:
    /// new resources, changed ones and deleted ones, across a provider's removal.
    #[test]
    fn searches_agree_with_the_filter_before_and_after_the_job() {
        let c = test_conn();
        let a = providers::insert(&c, "a", "", ProviderKind::Generic, 0).unwrap();
        let b = providers::insert(&c, "b", "", ProviderKind::Generic, 0).unwrap();
        user(
            &c,
            a.id,
            json!({"userName": "ann", "displayName": "Ann Smith"}),
        );
        let bob = user(
            &c,
            a.id,
            json!({"userName": "bob", "emails": [{"value": "Bob@SMITHS.example"}]}),
        );
        user(
            &c,
            b.id,
            json!({"userName": "cy", "displayName": "Cy Smith"}),
        );
        user(
            &c,
            a.id,
            json!({"userName": "dee", "externalId": "Smith-7"}),
        );
        // Before the job: every resource is in the tail.
        assert_eq!(
            found(&c, a.id, "SMITH"),
            (2, vec!["ann".into(), "bob".into()], true)
        );
        while step(&c, 2, 1 << 20).unwrap() {}
        assert!(caught_up(&c).unwrap());
        assert_eq!(
            found(&c, a.id, "smith"),
            (2, vec!["ann".into(), "bob".into()], true)
        );
        // externalId compares exactly.
        assert_eq!(found(&c, a.id, "Smith-"), (1, vec!["dee".into()], true));
        assert_eq!(found(&c, a.id, "smith-").0, 0);
        // A change the job has not reached: the filter answers for it.
        rewrite(&c, a.id, &bob, json!({"userName": "bob"}));
        assert_eq!(found(&c, a.id, "smith").1, vec!["ann".to_string()]);
        step(&c, 100, 1 << 20).unwrap();
        assert_eq!(found(&c, a.id, "smith").1, vec!["ann".to_string()]);
        // Short text is no trigram: the filter reads every resource.
        assert!(!found(&c, a.id, "sm").2);
        // A removed provider takes the newest records; the keys SQLite hands out again are read.
        let followed = marks(&c).unwrap().1;
        providers::delete(&c, a.id).unwrap();
        assert!(marks(&c).unwrap().1 < followed);
        let cy = c
            .query_row(
                "SELECT id FROM resources WHERE provider_id = ?1",
                [b.id],
                |r| r.get::<_, String>(0),
            )
            .unwrap();
        rewrite(
            &c,
            b.id,
            &cy,
            json!({"userName": "cy", "displayName": "Cy Jones"}),
        );
        step(&c, 100, 1 << 20).unwrap();
        assert_eq!(found(&c, b.id, "jones").1, vec!["cy".to_string()]);
        assert_eq!(found(&c, b.id, "smith").0, 0);
        // The removed provider's rows go in a purge.
        let last = last_key(&c).unwrap();
        assert_eq!(purge(&c, 0, last + 1).unwrap(), 3);
        assert_eq!(found(&c, b.id, "jones").1, vec!["cy".to_string()]);
    }

    /// A step ends once it has written its share of text, and the next one goes on from there:
    /// large documents make short writes, and nothing is skipped.
    #[test]
    fn a_step_writes_at_most_its_bytes_and_the_next_goes_on() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        for n in 0..5 {
            user(
                &c,
                p.id,
                json!({"userName": format!("u{n}"), "title": format!("{n}{}", "x".repeat(1000))}),
            );
        }
        let mut steps = 0;
        while step(&c, 500, 1500).unwrap() {
            steps += 1;
            assert!(steps < 10, "the index never caught up");
        }
        // Two titles of 1,001 bytes per step: three steps, the last one short.
        assert_eq!(steps, 2);
        assert!(caught_up(&c).unwrap());
        assert_eq!(found(&c, p.id, "4xxx"), (1, vec!["u4".into()], true));
        assert_eq!(found(&c, p.id, "xxx").0, 5);
    }
}
