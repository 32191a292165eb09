//! The `audit` table: what admins did, from the command line or the console. Each record is
//! written in the transaction of the change it describes, so a change that committed has one
//! and one that rolled back has none. Records name providers by name and outlive them.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::Result;

/// A record to write.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// Unix milliseconds.
    pub(crate) at: i64,
    pub(crate) actor: &'a str,
    pub(crate) client: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) provider: Option<&'a str>,
    pub(crate) target: &'a str,
    pub(crate) detail: &'a str,
}

/// A stored record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: i64,
    /// Unix milliseconds.
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) client: Option<String>,
    pub(crate) action: String,
    pub(crate) provider: Option<String>,
    pub(crate) target: String,
    pub(crate) detail: String,
}

pub(crate) fn record(c: &Connection, e: &Entry<'_>) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit (at, actor, client, action, provider, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at, e.actor, e.client, e.action, e.provider, e.target, e.detail
    ])?;
    Ok(())
}

/// The newest records first, at most `limit`, older than `before` (a `seq`) when given, and
/// of one provider when given.
pub(crate) fn list(
    c: &Connection,
    provider: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Record>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut s = c.prepare_cached(
        "SELECT seq, at, actor, client, action, provider, target, detail FROM audit
         WHERE (?1 IS NULL OR provider = ?1 COLLATE NOCASE) AND (?2 IS NULL OR seq < ?2)
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = s
        .query_map(params![provider, before, limit], |r| {
            Ok(Record {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                client: r.get(3)?,
                action: r.get(4)?,
                provider: r.get(5)?,
                target: r.get(6)?,
                detail: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes at most `batch` records older than `before` (unix milliseconds); returns how many.
pub(crate) fn prune(c: &Connection, before: i64, batch: usize) -> Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    Ok(c.prepare_cached(
        "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE at < ?1 ORDER BY seq LIMIT ?2)",
    )?
    .execute(params![before, batch])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, provider: Option<&'static str>) -> Entry<'static> {
        Entry {
            at,
            actor: "cli:root",
            client: None,
            action: "provider added",
            provider,
            target: "",
            detail: "",
        }
    }

    #[test]
    fn records_are_listed_newest_first_by_provider_and_pruned_by_age() {
        let c = crate::store::test_conn();
        record(&c, &entry(1_000, Some("entra"))).unwrap();
        record(&c, &entry(2_000, Some("okta"))).unwrap();
        record(&c, &entry(3_000, None)).unwrap();
        let all = list(&c, None, None, 10).unwrap();
        assert_eq!(
            all.iter().map(|r| r.at).collect::<Vec<_>>(),
            [3_000, 2_000, 1_000]
        );
        let entra = list(&c, Some("ENTRA"), None, 10).unwrap();
        assert_eq!(entra.len(), 1);
        assert_eq!(list(&c, None, Some(all[1].seq), 10).unwrap().len(), 1);
        assert_eq!(prune(&c, 2_500, 1).unwrap(), 1);
        assert_eq!(prune(&c, 2_500, 10).unwrap(), 1);
        assert_eq!(list(&c, None, None, 10).unwrap().len(), 1);
    }
}
