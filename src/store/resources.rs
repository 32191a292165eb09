//! The `resources` and `members` tables: Users and Groups of each provider, and memberships as
//! one row each (so a membership change never rewrites a member list).

use std::borrow::Cow;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::{Map, Value};

use super::query::{Compiler, INDEXED};
use super::{Error, Result};
use crate::scim::patch::MemberChange;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Member, Prepared, Stored, etag_matches};
use crate::scim::{ResourceKind, fold};

/// A stored User or Group.
#[derive(Debug, Clone)]
pub struct Resource {
    pub seq: i64,
    pub id: String,
    pub doc: Map<String, Value>,
    pub created: String,
    pub modified: String,
    pub version: i64,
}

/// A stored User or Group with its document left as the JSON text it is stored as, for reads
/// that return the full representation (no parsing and re-serializing of the document).
#[derive(Debug, Clone)]
pub struct RawResource {
    pub seq: i64,
    pub id: String,
    pub doc: String,
    pub created: String,
    pub modified: String,
    pub version: i64,
}

impl RawResource {
    pub fn view(&self) -> RawView<'_> {
        RawView {
            seq: self.seq,
            id: &self.id,
            doc: &self.doc,
            created: &self.created,
            modified: &self.modified,
            version: self.version,
        }
    }
}

/// A stored resource's columns, borrowed from a `RawResource` or a `RawPage`.
#[derive(Debug, Clone, Copy)]
pub struct RawView<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub doc: &'a str,
    pub created: &'a str,
    pub modified: &'a str,
    pub version: i64,
}

/// The rows of a page with their text columns kept in one buffer: one growing allocation per
/// page instead of four per row.
#[derive(Debug, Default)]
pub struct RawPage {
    text: String,
    rows: Vec<RawRow>,
}

#[derive(Debug)]
struct RawRow {
    seq: i64,
    version: i64,
    /// Where id, doc, created and modified end in `text`; each starts where the one before ends.
    ends: [usize; 4],
}

impl RawPage {
    fn push(&mut self, r: &Row<'_>) -> rusqlite::Result<()> {
        let mut ends = [0; 4];
        for (end, col) in ends.iter_mut().zip(1..) {
            match r.get_ref(col)? {
                rusqlite::types::ValueRef::Text(t) => {
                    let t = std::str::from_utf8(t).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            col,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?;
                    self.text.push_str(t);
                }
                other => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        col,
                        format!("column {col}"),
                        other.data_type(),
                    ));
                }
            }
            *end = self.text.len();
        }
        self.rows.push(RawRow {
            seq: r.get(0)?,
            version: r.get(5)?,
            ends,
        });
        Ok(())
    }

    pub fn views(&self) -> impl Iterator<Item = RawView<'_>> {
        let mut start = 0;
        self.rows.iter().map(move |row| {
            let [a, b, c, d] = row.ends;
            let view = RawView {
                seq: row.seq,
                id: &self.text[start..a],
                doc: &self.text[a..b],
                created: &self.text[b..c],
                modified: &self.text[c..d],
                version: row.version,
            };
            start = d;
            view
        })
    }
}

/// One member of a group, or one group of a user, as the representation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub id: String,
    pub kind: ResourceKind,
    pub display: Option<String>,
    /// For a user's groups: whether the membership is direct (not through a nested group).
    pub direct: bool,
}

fn kind_str(kind: ResourceKind) -> &'static str {
    kind.name()
}

fn parse_kind(s: &str) -> rusqlite::Result<ResourceKind> {
    ResourceKind::from_name(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, s.into())
    })
}

fn raw_from_row(r: &Row<'_>) -> rusqlite::Result<RawResource> {
    Ok(RawResource {
        seq: r.get(0)?,
        id: r.get(1)?,
        doc: r.get(2)?,
        created: r.get(3)?,
        modified: r.get(4)?,
        version: r.get(5)?,
    })
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Resource> {
    let raw = raw_from_row(r)?;
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&raw.doc) else {
        return Err(rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            "stored document is not a JSON object".into(),
        ));
    };
    Ok(Resource {
        seq: raw.seq,
        id: raw.id,
        doc,
        created: raw.created,
        modified: raw.modified,
        version: raw.version,
    })
}

const COLUMNS: &str = "r.seq, r.id, r.doc, r.created, r.modified, r.version";

fn get_row<T>(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM resources r WHERE r.id = ?1 AND r.provider_id = ?2 AND r.kind = ?3"
    ))?
    .query_row(params![id, provider_id, kind_str(kind)], map)
    .optional()?)
}

pub fn get(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<Resource>> {
    get_row(c, provider_id, kind, id, from_row)
}

/// `get` with the document as stored JSON text.
pub fn get_raw(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<RawResource>> {
    get_row(c, provider_id, kind, id, raw_from_row)
}

fn require(c: &Connection, provider_id: i64, kind: ResourceKind, id: &str) -> Result<Resource> {
    get(c, provider_id, kind, id)?
        .ok_or_else(|| Error::NotFound(format!("{} {id} not found", kind.name())))
}

pub fn check_if_match(r: &Resource, if_match: Option<&str>) -> Result<()> {
    match if_match {
        Some(h) if !etag_matches(h, r.version) => Err(Error::VersionMismatch(format!(
            "If-Match {h} does not match the current version W/\"{}\"",
            r.version
        ))),
        _ => Ok(()),
    }
}

fn check_unique(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    name: &str,
    except_seq: Option<i64>,
) -> Result<()> {
    let taken: Option<i64> = c
        .prepare_cached(
            "SELECT seq FROM resources WHERE provider_id = ?1 AND kind = ?2 AND name_key = ?3",
        )?
        .query_row(params![provider_id, kind_str(kind), fold(name)], |r| {
            r.get(0)
        })
        .optional()?;
    match taken {
        Some(seq) if Some(seq) != except_seq => Err(Error::Conflict(format!(
            "{} {name:?} is already taken (compared regardless of case)",
            kind.name_attribute()
        ))),
        _ => Ok(()),
    }
}

/// The `value_index` entries of a document: (attribute key, folded value).
fn index_entries(doc: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (attr, sub) in INDEXED {
        let Some(Value::Array(items)) = doc.get(*attr) else {
            continue;
        };
        for v in items
            .iter()
            .filter_map(|i| i.get(*sub).and_then(Value::as_str))
        {
            out.push((format!("{attr}.{sub}"), fold(v)));
        }
    }
    out
}

/// Rewrites the `value_index` rows of one resource from its document.
fn reindex(c: &Connection, seq: i64, doc: &Map<String, Value>) -> Result<()> {
    c.prepare_cached("DELETE FROM value_index WHERE seq = ?1")?
        .execute([seq])?;
    let mut ins = c.prepare_cached(
        "INSERT OR IGNORE INTO value_index (seq, attr, value_key) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in index_entries(doc) {
        ins.execute(params![seq, key, value])?;
    }
    Ok(())
}

/// Builds `value_index` for every stored resource (run by the migration that adds it).
pub fn reindex_all(c: &Connection) -> Result<()> {
    let all: Vec<(i64, String)> = c
        .prepare("SELECT seq, doc FROM resources")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, doc) in all {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&doc) {
            reindex(c, seq, &m)?;
        }
    }
    Ok(())
}

fn doc_text(p: &Prepared) -> Result<String> {
    serde_json::to_string(&p.doc).map_err(|e| Error::Invalid(format!("unstorable document: {e}")))
}

/// Creates a resource with a new server-assigned id. Call inside a write transaction.
pub fn insert(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    p: &Prepared,
    password_hash: Option<&str>,
    now: &str,
) -> Result<Resource> {
    check_unique(c, provider_id, kind, &p.name, None)?;
    let id = uuid::Uuid::now_v7().to_string();
    c.prepare_cached(
        "INSERT INTO resources (provider_id, kind, id, external_id, name, name_key, doc,
                                password_hash, created, modified, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1)",
    )?
    .execute(params![
        provider_id,
        kind_str(kind),
        id,
        p.external_id,
        p.name,
        fold(&p.name),
        doc_text(p)?,
        password_hash,
        now
    ])?;
    let seq = c.last_insert_rowid();
    // What the DELETE triggers take back (see migration 0006).
    c.prepare_cached(
        "INSERT INTO resource_counts (provider_id, kind, n) VALUES (?1, ?2, 1)
         ON CONFLICT DO UPDATE SET n = n + 1",
    )?
    .execute(params![provider_id, kind_str(kind)])?;
    c.prepare_cached(
        "INSERT INTO resource_blocks (provider_id, kind, block, n) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT DO UPDATE SET n = n + 1",
    )?
    .execute(params![provider_id, kind_str(kind), seq >> 10])?;
    let mut ins = c.prepare_cached(
        "INSERT OR IGNORE INTO value_index (seq, attr, value_key) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in index_entries(&p.doc) {
        ins.execute(params![seq, key, value])?;
    }
    if let Some(members) = &p.members {
        let wanted = member_seqs(c, provider_id, seq, members)?;
        add_members(c, seq, &wanted)?;
    }
    // The stored row, known without reading it back.
    let created = Resource {
        seq,
        id,
        doc: p.doc.clone(),
        created: now.to_string(),
        modified: now.to_string(),
        version: 1,
    };
    #[cfg(debug_assertions)]
    {
        let stored = require(c, provider_id, kind, &created.id)?;
        assert_eq!(
            (
                &stored.doc,
                &stored.created,
                &stored.modified,
                stored.version
            ),
            (&created.doc, &created.created, &created.modified, 1),
            "inserted row differs from what insert returns"
        );
    }
    Ok(created)
}

/// Replaces a resource's attributes (PUT). A password absent from the request keeps the stored
/// hash, since clients never get it back to resend. Call inside a write transaction.
#[allow(clippy::too_many_arguments)]
pub fn replace(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
    p: &Prepared,
    password_hash: Option<&str>,
    if_match: Option<&str>,
    now: &str,
) -> Result<Resource> {
    let old = require(c, provider_id, kind, id)?;
    check_if_match(&old, if_match)?;
    let password = match password_hash {
        Some(h) => PasswordUpdate::Set(h.to_string()),
        None => PasswordUpdate::Keep,
    };
    update_doc(c, provider_id, kind, &old, p, password, now)?;
    if kind == ResourceKind::Group {
        let wanted = member_seqs(c, provider_id, old.seq, p.members.as_deref().unwrap_or(&[]))?;
        set_members(c, old.seq, &wanted)?;
    }
    require(c, provider_id, kind, id)
}

/// How a write treats the stored password hash.
pub enum PasswordUpdate {
    Keep,
    Set(String),
    Clear,
}

/// Stores a new document for `old` (PUT, or a patched one) and bumps the version. Call inside
/// a write transaction. Columns and index rows whose values did not change are not rewritten
/// (an unchanged userName or externalId costs no index update).
pub fn update_doc(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    old: &Resource,
    p: &Prepared,
    password: PasswordUpdate,
    now: &str,
) -> Result<()> {
    let old_name = old.doc.get(kind.name_attribute()).and_then(Value::as_str);
    let old_external_id = old.doc.get("externalId").and_then(Value::as_str);
    let keys_changed =
        old_name != Some(p.name.as_str()) || old_external_id != p.external_id.as_deref();
    if keys_changed {
        check_unique(c, provider_id, kind, &p.name, Some(old.seq))?;
        c.prepare_cached(
            "UPDATE resources SET external_id = ?1, name = ?2, name_key = ?3 WHERE seq = ?4",
        )?
        .execute(params![p.external_id, p.name, fold(&p.name), old.seq])?;
        // A group's displayName is shown in its members' `groups`.
        if kind == ResourceKind::Group && old_name != Some(p.name.as_str()) {
            bump_below(c, old.seq)?;
        }
    }
    let (set_hash, hash) = match password {
        PasswordUpdate::Keep => (false, None),
        PasswordUpdate::Set(h) => (true, Some(h)),
        PasswordUpdate::Clear => (true, None),
    };
    c.prepare_cached(
        "UPDATE resources SET doc = ?1,
                password_hash = CASE WHEN ?2 THEN ?3 ELSE password_hash END,
                modified = ?4, version = version + 1
         WHERE seq = ?5",
    )?
    .execute(params![doc_text(p)?, set_hash, hash, now, old.seq])?;
    if index_entries(&old.doc) != index_entries(&p.doc) {
        reindex(c, old.seq, &p.doc)?;
    }
    Ok(())
}

/// The current version of a resource.
pub fn version_of(c: &Connection, seq: i64) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT version FROM resources WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))?,
    )
}

/// Marks a resource changed (new version, lastModified) without touching its document.
pub fn touch(c: &Connection, seq: i64, now: &str) -> Result<()> {
    c.prepare_cached("UPDATE resources SET modified = ?1, version = version + 1 WHERE seq = ?2")?
        .execute(params![now, seq])?;
    Ok(())
}

/// Applies PATCH membership changes row by row: the cost grows with the members named, not
/// with the size of the group. Returns whether any membership changed.
pub fn change_members(
    c: &Connection,
    provider_id: i64,
    group_seq: i64,
    base: &str,
    changes: &[MemberChange],
) -> Result<bool> {
    let mut changed = false;
    for change in changes {
        match change {
            MemberChange::Add(ids) => {
                let seqs = member_seqs(c, provider_id, group_seq, ids)?;
                changed |= add_members(c, group_seq, &seqs)? > 0;
            }
            MemberChange::Remove(ids) => {
                let mut del = c.prepare_cached(
                    "DELETE FROM members WHERE group_seq = ?1 AND member_seq =
                       (SELECT seq FROM resources WHERE id = ?2 AND provider_id = ?3)
                     RETURNING member_seq",
                )?;
                for id in ids {
                    let gone: Option<i64> = del
                        .query_row(params![group_seq, id, provider_id], |r| r.get(0))
                        .optional()?;
                    if let Some(m) = gone {
                        bump(c, m)?;
                        changed = true;
                    }
                }
            }
            MemberChange::RemoveWhere(f) => {
                let mut compiler = Compiler::new(ResourceKind::Group, base, 2);
                let cond = compiler
                    .member_filter(f)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                let mut args = vec![Sql::Integer(group_seq)];
                args.extend(compiler.into_params());
                let seqs: Vec<i64> = c
                    .prepare(&format!(
                        "SELECT m.member_seq FROM members m CROSS JOIN resources x ON x.seq = m.member_seq
                         WHERE m.group_seq = ?1 AND {cond}"
                    ))?
                    .query_map(params_from_iter(args.iter()), |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut del = c.prepare_cached(
                    "DELETE FROM members WHERE group_seq = ?1 AND member_seq = ?2",
                )?;
                for m in seqs {
                    del.execute(params![group_seq, m])?;
                    bump(c, m)?;
                    changed = true;
                }
            }
            MemberChange::Replace(ids) => {
                let seqs = member_seqs(c, provider_id, group_seq, ids)?;
                changed |= set_members(c, group_seq, &seqs)?;
            }
        }
    }
    Ok(changed)
}

/// The stored resource before a PUT, for checks that compare old and new.
pub fn current(c: &Connection, provider_id: i64, kind: ResourceKind, id: &str) -> Result<Resource> {
    require(c, provider_id, kind, id)
}

/// Deletes a resource and its memberships. Call inside a write transaction.
pub fn delete(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
) -> Result<()> {
    let old = require(c, provider_id, kind, id)?;
    check_if_match(&old, if_match)?;
    // Groups that lose this member, and everything below a deleted group, whose `groups` lose
    // it, change representation.
    c.prepare_cached(
        "UPDATE resources SET version = version + 1
         WHERE seq IN (SELECT group_seq FROM members WHERE member_seq = ?1)",
    )?
    .execute([old.seq])?;
    bump_below(c, old.seq)?;
    c.prepare_cached("DELETE FROM resources WHERE seq = ?1")?
        .execute([old.seq])?;
    Ok(())
}

/// A compiled filter condition over `resources r`, with its parameters numbered from ?3
/// (?1 and ?2 are the provider and the kind).
pub struct Condition {
    pub sql: String,
    pub params: Vec<Sql>,
    /// Run from the lookup inside the condition, not from the provider's index range.
    pub driven: bool,
}

/// How to page through results.
pub enum Paging<'a> {
    /// 1-based position and ORDER BY (the creation order when `None`).
    Index { offset: i64, order: Option<&'a str> },
    /// Resources created after the one with this key, in creation order (RFC 9865 cursors).
    After(i64),
    /// Resources from the one with this key on, in creation order (set by `search_rows`).
    Start(i64),
}

/// One page of matching resources, the total number that match, and whether more follow.
pub struct Page<T = Vec<Resource>> {
    pub total: i64,
    pub items: T,
    pub more: bool,
}

/// The page statement of a search with its arguments, and what the count statement is made
/// of: many pages show their total themselves, so its text is only written when it runs.
struct Statements {
    /// The filter's WHERE clause; None without a filter.
    scope: Option<String>,
    page_sql: String,
    /// The page's arguments; the count takes the first `count_arity` of them.
    page_args: Vec<Sql>,
    count_arity: usize,
    probe_more: bool,
}

impl Statements {
    fn count_sql(&self) -> Cow<'static, str> {
        match &self.scope {
            // Kept on every insert and delete (migrations 0004, 0006): no count over a large
            // provider's index.
            None => Cow::Borrowed(
                "SELECT coalesce((SELECT n FROM resource_counts WHERE provider_id = ?1 AND kind = ?2), 0)",
            ),
            Some(scope) => Cow::Owned(format!("SELECT count(*) FROM resources r WHERE {scope}")),
        }
    }

    fn count_args(&self) -> &[Sql] {
        &self.page_args[..self.count_arity]
    }
}

fn statements(
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
) -> Statements {
    let filter_sql = condition.map_or("1", |f| f.sql.as_str());
    let mut args: Vec<Sql> = vec![Sql::Integer(provider_id), Sql::Text(kind_str(kind).into())];
    if let Some(f) = condition {
        args.extend(f.params.iter().cloned());
    }
    // A unary + keeps a term out of index selection.
    let plus = if condition.is_some_and(|c| c.driven) {
        "+"
    } else {
        ""
    };
    let scope = format!("{plus}r.provider_id = ?1 AND {plus}r.kind = ?2 AND ({filter_sql})");
    let n = args.len();
    let (page_sql, probe_more) = match paging {
        Paging::Start(seq) => {
            // The unfiltered page from the key of its first resource (see `nth_seq`).
            args.push(Sql::Integer(seq));
            args.push(Sql::Integer(limit));
            (
                format!(
                    "SELECT {COLUMNS} FROM resources r WHERE {scope} AND r.seq >= ?{} \
                     ORDER BY r.seq LIMIT ?{}",
                    n + 1,
                    n + 2
                ),
                false,
            )
        }
        Paging::Index { offset, order } => {
            args.push(Sql::Integer(limit));
            args.push(Sql::Integer(offset));
            let order = order.unwrap_or("r.seq");
            (
                format!(
                    "SELECT {COLUMNS} FROM resources r WHERE {scope} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
                    n + 1,
                    n + 2
                ),
                false,
            )
        }
        Paging::After(seq) => {
            args.push(Sql::Integer(seq));
            args.push(Sql::Integer(limit + 1));
            (
                format!(
                    "SELECT {COLUMNS} FROM resources r WHERE {scope} AND r.seq > ?{} ORDER BY r.seq LIMIT ?{}",
                    n + 1,
                    n + 2
                ),
                true,
            )
        }
    };
    Statements {
        scope: condition.map(|_| scope),
        page_sql,
        page_args: args,
        count_arity: n,
        probe_more,
    }
}

pub fn search(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
) -> Result<Page> {
    let mut items = Vec::new();
    let (total, more) = search_visit(c, provider_id, kind, condition, paging, limit, |r| {
        items.push(from_row(r)?);
        Ok(())
    })?;
    Ok(Page { total, items, more })
}

/// `search` returning documents as stored JSON text (for full representations).
pub fn search_raw(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
) -> Result<Page<RawPage>> {
    // Room for a page of typical users up front, so the buffer is not copied as it grows.
    let rows = limit.clamp(0, 1000) as usize;
    let mut page = RawPage {
        text: String::with_capacity(rows * 1024),
        rows: Vec::with_capacity(rows),
    };
    let (total, more) = search_visit(c, provider_id, kind, condition, paging, limit, |r| {
        page.push(r)
    })?;
    Ok(Page {
        total,
        items: page,
        more,
    })
}

/// Runs a search, handing each row of the page (at most `limit`) to `visit`; gives the total
/// and whether more rows follow the page.
fn search_visit(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
    mut visit: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<(i64, bool)> {
    let first_position = match paging {
        Paging::Index { offset, .. } => Some(offset),
        _ => None,
    };
    // An unfiltered page by position starts from the key found through the block counts.
    let paging = match paging {
        Paging::Index {
            offset,
            order: None,
        } if condition.is_none() => match nth_seq(c, provider_id, kind, offset)? {
            Some(seq) => Paging::Start(seq),
            None => Paging::After(i64::MAX),
        },
        p => p,
    };
    let st = statements(provider_id, kind, condition, paging, limit);
    let count = || -> Result<i64> {
        Ok(c.prepare_cached(&st.count_sql())?
            .query_row(params_from_iter(st.count_args().iter()), |r| r.get(0))?)
    };
    if limit == 0 {
        let total = count()?;
        return Ok((total, total > 0));
    }
    let mut q = c.prepare_cached(&st.page_sql)?;
    let mut rows = q.query(params_from_iter(st.page_args.iter()))?;
    let mut seen = 0;
    while let Some(r) = rows.next()? {
        if seen == limit {
            // The row past the page, fetched only to learn that there is one.
            return Ok((count()?, st.probe_more));
        }
        visit(r)?;
        seen += 1;
    }
    drop(rows);
    // A page by position that ends short of its limit has reached the last match, so it shows
    // the total itself: a lookup by a unique value (`userName eq`, `externalId eq`) runs one
    // statement, not a count besides. Past the end (no rows at an offset) it does not.
    let total = match first_position {
        Some(offset) if seen < limit && (seen > 0 || offset == 0) => offset + seen,
        _ => count()?,
    };
    Ok((total, false))
}

/// The key of the provider's resource of this kind at 0-based position `offset` in creation
/// order, if there is one: the block counts (migration 0005) give the block it lies in and how
/// many come before that block, then at most one block of the index is walked.
fn nth_seq(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    offset: i64,
) -> Result<Option<i64>> {
    // Block counts in key order, summed until the block holding position `offset`.
    let mut blocks = c.prepare_cached(
        "SELECT block, n FROM resource_blocks WHERE provider_id = ?1 AND kind = ?2 ORDER BY block",
    )?;
    let mut rows = blocks.query(params![provider_id, kind_str(kind)])?;
    let mut block = None;
    let mut before = 0;
    while let Some(r) = rows.next()? {
        let n: i64 = r.get(1)?;
        if before + n > offset {
            block = Some((r.get::<_, i64>(0)?, before));
            break;
        }
        before += n;
    }
    drop(rows);
    let Some((block, before)) = block else {
        return Ok(None);
    };
    Ok(c.prepare_cached(
        "SELECT seq FROM resources INDEXED BY resources_kind
             WHERE provider_id = ?1 AND kind = ?2 AND seq >= ?3 ORDER BY seq LIMIT 1 OFFSET ?4",
    )?
    .query_row(
        params![provider_id, kind_str(kind), block << 10, offset - before],
        |r| r.get(0),
    )
    .optional()?)
}

/// SQLite's plan for a search's page query (EXPLAIN QUERY PLAN), one line per step.
pub fn explain(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    limit: i64,
) -> Result<Vec<String>> {
    let st = statements(
        provider_id,
        kind,
        condition,
        Paging::Index {
            offset: 0,
            order: None,
        },
        limit,
    );
    let mut plan = Vec::new();
    for (sql, args) in [
        (st.count_sql(), st.count_args()),
        (Cow::Borrowed(st.page_sql.as_str()), &st.page_args[..]),
    ] {
        let mut q = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = q.query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))?;
        for row in rows {
            plan.push(row?);
        }
    }
    Ok(plan)
}

/// Resolves members to internal keys, keeping each one's display: each must be a User or
/// Group of the same provider, and a group cannot contain itself.
fn member_seqs(
    c: &Connection,
    provider_id: i64,
    group_seq: i64,
    members: &[Member],
) -> Result<Vec<(i64, Option<String>)>> {
    let mut st =
        c.prepare_cached("SELECT seq FROM resources WHERE id = ?1 AND provider_id = ?2")?;
    let mut seqs = Vec::with_capacity(members.len());
    for m in members {
        let seq: i64 = st
            .query_row(params![m.id, provider_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "member {:?} is not a User or Group of this identity provider",
                    m.id
                ))
            })?;
        if seq == group_seq {
            return Err(Error::Invalid(
                "a group cannot be a member of itself".into(),
            ));
        }
        seqs.push((seq, m.display.clone()));
    }
    Ok(seqs)
}

/// A new version for a resource whose memberships changed, and, when it is a group with
/// members, for everything below it: their `groups` (indirect ones included) changed too.
fn bump(c: &Connection, seq: i64) -> Result<()> {
    c.prepare_cached("UPDATE resources SET version = version + 1 WHERE seq = ?1")?
        .execute([seq])?;
    bump_below(c, seq)
}

/// A new version for every direct and indirect member of a group (whose `groups` show it).
fn bump_below(c: &Connection, group_seq: i64) -> Result<()> {
    let has_members: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM members WHERE group_seq = ?1)")?
        .query_row([group_seq], |r| r.get(0))?;
    if has_members {
        c.prepare_cached(
            "WITH RECURSIVE below(seq) AS (
                 SELECT member_seq FROM members WHERE group_seq = ?1
                 UNION
                 SELECT m.member_seq FROM members m JOIN below ON m.group_seq = below.seq
             )
             UPDATE resources SET version = version + 1
             WHERE seq IN (SELECT seq FROM below WHERE seq != ?1)",
        )?
        .execute([group_seq])?;
    }
    Ok(())
}

/// Adds memberships; existing ones are left as they are. Returns how many were new.
fn add_members(c: &Connection, group_seq: i64, members: &[(i64, Option<String>)]) -> Result<usize> {
    let mut st = c.prepare_cached(
        "INSERT INTO members (group_seq, member_seq, display) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?;
    let mut added = 0;
    for (m, display) in members {
        if st.execute(params![group_seq, m, display])? > 0 {
            bump(c, *m)?;
            added += 1;
        }
    }
    Ok(added)
}

/// Makes the group's members exactly `members` (displays included); returns whether anything
/// changed.
fn set_members(c: &Connection, group_seq: i64, members: &[(i64, Option<String>)]) -> Result<bool> {
    let current: Vec<i64> = c
        .prepare_cached("SELECT member_seq FROM members WHERE group_seq = ?1")?
        .query_map([group_seq], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let wanted: std::collections::HashSet<i64> = members.iter().map(|(s, _)| *s).collect();
    let mut del =
        c.prepare_cached("DELETE FROM members WHERE group_seq = ?1 AND member_seq = ?2")?;
    let mut changed = false;
    for m in current.iter().filter(|m| !wanted.contains(m)) {
        del.execute(params![group_seq, m])?;
        bump(c, *m)?;
        changed = true;
    }
    let mut redisplay = c.prepare_cached(
        "UPDATE members SET display = ?3 WHERE group_seq = ?1 AND member_seq = ?2
         AND display IS NOT ?3",
    )?;
    for (m, display) in members {
        changed |= redisplay.execute(params![group_seq, m, display])? > 0;
    }
    Ok(add_members(c, group_seq, members)? > 0 || changed)
}

/// The members of a group, oldest resource first.
pub fn members_of(c: &Connection, group_seq: i64) -> Result<Vec<Reference>> {
    let mut st = c.prepare_cached(
        "SELECT r.id, r.kind, m.display
         FROM members m CROSS JOIN resources r ON r.seq = m.member_seq
         WHERE m.group_seq = ?1 ORDER BY m.member_seq",
    )?;
    let rows = st.query_map([group_seq], |r| {
        Ok(Reference {
            id: r.get(0)?,
            kind: parse_kind(&r.get::<_, String>(1)?)?,
            display: r.get(2)?,
            direct: true,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A JSON array of integers, for `json_each(?)`: one prepared statement for any number of keys.
fn seq_list(seqs: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("[");
    for (i, s) in seqs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s.to_string());
    }
    out.push(']');
    out
}

/// The groups each of `member_seqs` belongs to, directly or through nested groups, oldest group
/// first; one list per given key, in the same order. A whole page costs a few statements: the
/// direct memberships of every key at once, then one more per level of group nesting, then the
/// groups' ids and names.
pub fn groups_of_many(c: &Connection, member_seqs: &[i64]) -> Result<Vec<Vec<Reference>>> {
    let (names, lists) = group_seqs_of_many(c, member_seqs)?;
    Ok((0..member_seqs.len())
        .map(|i| {
            lists
                .of(i)
                .iter()
                .map(|&(g, direct)| {
                    let (_, id, name) = &names[g];
                    Reference {
                        id: id.clone(),
                        kind: ResourceKind::Group,
                        display: name.clone(),
                        direct,
                    }
                })
                .collect()
        })
        .collect())
}

/// Each group reached: its key, id and displayName, sorted by key.
type GroupNames = Vec<(i64, String, Option<String>)>;

/// For each member, its groups oldest first as (index into the `GroupNames`, whether the
/// membership is direct); all members' lists one after another in one buffer.
struct GroupLists {
    items: Vec<(usize, bool)>,
    ends: Vec<usize>,
}

impl GroupLists {
    fn of(&self, member: usize) -> &[(usize, bool)] {
        let start = member.checked_sub(1).map_or(0, |m| self.ends[m]);
        &self.items[start..self.ends[member]]
    }
}

/// Appends (member, group) for every direct membership of `member_seqs`. Keys of a page in
/// creation order lie close together, so their memberships are one range of the member index,
/// read in one pass and sifted; keys spread wide (a filter's matches) are looked up one by one.
fn direct_groups(c: &Connection, member_seqs: &[i64], edges: &mut Vec<(i64, i64)>) -> Result<()> {
    let (Some(&low), Some(&high)) = (member_seqs.iter().min(), member_seqs.iter().max()) else {
        return Ok(());
    };
    let span = u64::try_from(high - low).unwrap_or(u64::MAX);
    if span <= 4 * member_seqs.len() as u64 + 64 {
        direct_groups_by_range(c, member_seqs, low, high, edges)
    } else {
        direct_groups_by_key(c, member_seqs, edges)
    }
}

fn direct_groups_by_range(
    c: &Connection,
    member_seqs: &[i64],
    low: i64,
    high: i64,
    edges: &mut Vec<(i64, i64)>,
) -> Result<()> {
    let mut wanted = member_seqs.to_vec();
    wanted.sort_unstable();
    let mut q = c.prepare_cached(
        "SELECT member_seq, group_seq FROM members INDEXED BY members_member
         WHERE member_seq BETWEEN ?1 AND ?2",
    )?;
    let mut rows = q.query([low, high])?;
    while let Some(r) = rows.next()? {
        let member: i64 = r.get(0)?;
        if wanted.binary_search(&member).is_ok() {
            edges.push((member, r.get(1)?));
        }
    }
    Ok(())
}

fn direct_groups_by_key(
    c: &Connection,
    member_seqs: &[i64],
    edges: &mut Vec<(i64, i64)>,
) -> Result<()> {
    let mut q = c.prepare_cached(
        "SELECT m.member_seq, m.group_seq FROM json_each(?1) j
         CROSS JOIN members m ON m.member_seq = j.value",
    )?;
    let mut rows = q.query([seq_list(member_seqs.iter().copied())])?;
    while let Some(r) = rows.next()? {
        edges.push((r.get(0)?, r.get(1)?));
    }
    Ok(())
}

/// `groups_of_many` as keys: for each member, its groups (as indexes into the names, which are
/// sorted by key, so oldest first) and whether each is direct, and the id and name of every
/// group reached, once. Flat buffers and sorted vectors rather than a map per member: a page
/// of 100 users is answered with a handful of allocations.
fn group_seqs_of_many(c: &Connection, member_seqs: &[i64]) -> Result<(GroupNames, GroupLists)> {
    // (member or group, group it belongs to); sorted below so a key's groups are one slice.
    let mut edges: Vec<(i64, i64)> = Vec::new();
    let mut names: GroupNames = Vec::new();
    let mut named = std::collections::HashSet::new();
    // The keys' direct groups first; then, a level at a time, each group reached with its id,
    // its name and the groups it belongs to (none, without nesting: the walk ends there).
    direct_groups(c, member_seqs, &mut edges)?;
    let mut frontier: Vec<i64> = edges.iter().map(|e| e.1).collect();
    let mut up = c.prepare_cached(
        "SELECT g.seq, g.id, g.name, m.group_seq FROM json_each(?1) j
         CROSS JOIN resources g ON g.seq = j.value
         LEFT JOIN members m ON m.member_seq = g.seq",
    )?;
    while !frontier.is_empty() {
        frontier.sort_unstable();
        frontier.dedup();
        let mut rows = up.query([seq_list(frontier.iter().copied())])?;
        let mut next = Vec::new();
        while let Some(r) = rows.next()? {
            let group: i64 = r.get(0)?;
            if named.insert(group) {
                names.push((group, r.get(1)?, r.get(2)?));
            }
            if let Some(parent) = r.get::<_, Option<i64>>(3)? {
                edges.push((group, parent));
                if !named.contains(&parent) {
                    next.push(parent);
                }
            }
        }
        frontier = next;
    }
    names.sort_unstable_by_key(|n| n.0);
    edges.sort_unstable();
    edges.dedup();
    let parents = |of: i64| {
        let start = edges.partition_point(|e| e.0 < of);
        let end = start + edges[start..].partition_point(|e| e.0 == of);
        edges[start..end].iter().map(|e| e.1)
    };
    // For each key: every group reachable upwards (kept sorted by key), and whether one path
    // is a single step.
    let mut lists = GroupLists {
        items: Vec::new(),
        ends: Vec::with_capacity(member_seqs.len()),
    };
    let mut found: Vec<(i64, bool)> = Vec::new();
    let mut stack: Vec<(i64, bool)> = Vec::new();
    for &seq in member_seqs {
        found.clear();
        stack.extend(parents(seq).map(|g| (g, true)));
        while let Some((g, direct)) = stack.pop() {
            match found.binary_search_by_key(&g, |f| f.0) {
                Ok(at) => {
                    found[at].1 |= direct;
                    continue;
                }
                Err(at) => found.insert(at, (g, direct)),
            }
            stack.extend(parents(g).map(|u| (u, false)));
        }
        // A group nested into itself through others is not its own group; a group that went
        // away between the statements is left out.
        lists
            .items
            .extend(found.iter().filter(|f| f.0 != seq).filter_map(|&(g, d)| {
                names
                    .binary_search_by_key(&g, |n| n.0)
                    .ok()
                    .map(|at| (at, d))
            }));
        lists.ends.push(lists.items.len());
    }
    Ok((names, lists))
}

/// Builds the representation of a stored resource, loading computed members or groups only
/// when the projection will keep them.
pub fn represent(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    r: &Resource,
    projection: &Projection,
) -> Result<Value> {
    Ok(
        represent_many(c, base, kind, std::slice::from_ref(r), projection)?
            .pop()
            .unwrap_or(Value::Null),
    )
}

/// `represent` for a page of resources, loading the computed attributes of all of them at once.
pub fn represent_many(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    page: &[Resource],
    projection: &Projection,
) -> Result<Vec<Value>> {
    let mut computed = if projection.wants(computed_key(kind)) {
        let seqs: Vec<i64> = page.iter().map(|r| r.seq).collect();
        computed_many(c, base, kind, &seqs)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; page.len()]
    };
    Ok(page
        .iter()
        .zip(computed.iter_mut())
        .map(|(r, computed)| render_with(base, kind, r, computed.take(), projection))
        .collect())
}

/// The computed `members`/`groups` of one resource when `projection` keeps them: what a write
/// loads inside its own transaction so the response needs no second database round trip.
pub fn computed_for(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seq: i64,
    projection: &Projection,
) -> Result<Option<Vec<Value>>> {
    if !projection.wants(computed_key(kind)) {
        return Ok(None);
    }
    Ok(computed_many(c, base, kind, &[seq])?.pop())
}

/// The representation of a resource whose computed attributes are already loaded.
pub fn render_with(
    base: &str,
    kind: ResourceKind,
    r: &Resource,
    computed: Option<Vec<Value>>,
    projection: &Projection,
) -> Value {
    let stored = Stored {
        id: &r.id,
        doc: &r.doc,
        created: &r.created,
        modified: &r.modified,
        version: r.version,
        location: format!("{base}/{}/{}", kind.endpoint(), r.id),
    };
    Value::Object(projection.apply(kind, resource::render(kind, &stored, computed)))
}

fn computed_key(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "groups",
        ResourceKind::Group => "members",
    }
}

/// The computed `members` (Group) or `groups` (User) of each resource, in the given order.
fn computed_many(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seqs: &[i64],
) -> Result<Vec<Vec<Value>>> {
    match kind {
        ResourceKind::Group => seqs
            .iter()
            .map(|&seq| {
                Ok(members_of(c, seq)?
                    .into_iter()
                    .map(|m| {
                        resource::reference(
                            base,
                            &m.id,
                            m.kind,
                            m.display.as_deref(),
                            m.kind.name(),
                        )
                    })
                    .collect())
            })
            .collect(),
        ResourceKind::User => Ok(groups_of_many(c, seqs)?
            .into_iter()
            .map(|groups| {
                groups
                    .into_iter()
                    .map(|g| {
                        let type_ = if g.direct { "direct" } else { "indirect" };
                        resource::reference(base, &g.id, g.kind, g.display.as_deref(), type_)
                    })
                    .collect()
            })
            .collect()),
    }
}

/// Appends the computed `members` (Group) or `groups` (User) of each resource as JSON array
/// text to `out` (nothing when there are none), in the given order; gives where each one ends.
fn computed_text_into(
    out: &mut String,
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seqs: &[i64],
) -> Result<Vec<usize>> {
    let mut ends = Vec::with_capacity(seqs.len());
    match kind {
        ResourceKind::Group => {
            for &seq in seqs {
                let start = out.len();
                for r in members_of(c, seq)? {
                    out.push(if out.len() == start { '[' } else { ',' });
                    let display = r.display.as_deref();
                    resource::push_reference(out, base, &r.id, r.kind, display, r.kind.name());
                }
                if out.len() > start {
                    out.push(']');
                }
                ends.push(out.len());
            }
        }
        ResourceKind::User => {
            let (names, lists) = group_seqs_of_many(c, seqs)?;
            // Each group's reference is written once per page, split around its `type`: the
            // same groups recur on most users of a page. [start, type, after type, end] in refs.
            let mut refs = String::new();
            let rendered: Vec<[usize; 4]> = names
                .iter()
                .map(|(_, id, name)| {
                    let start = refs.len();
                    let marker = "\u{0}";
                    resource::push_reference(
                        &mut refs,
                        base,
                        id,
                        ResourceKind::Group,
                        name.as_deref(),
                        marker,
                    );
                    // The marker, as JSON escapes it, splits the text around `type`.
                    let end = refs.len();
                    let escaped = "\"\\u0000\"";
                    match refs[start..].find(escaped) {
                        Some(i) => [start, start + i, start + i + escaped.len(), end],
                        None => [start, end, end, end],
                    }
                })
                .collect();
            for member in 0..seqs.len() {
                let start = out.len();
                for &(g, direct) in lists.of(member) {
                    let [head, at, tail, end] = rendered[g];
                    out.push(if out.len() == start { '[' } else { ',' });
                    out.push_str(&refs[head..at]);
                    out.push_str(if direct { "\"direct\"" } else { "\"indirect\"" });
                    out.push_str(&refs[tail..end]);
                }
                if out.len() > start {
                    out.push(']');
                }
                ends.push(out.len());
            }
        }
    }
    Ok(ends)
}

/// The full representation (no `attributes`/`excludedAttributes`) as JSON text, built around
/// the stored document text instead of parsing and re-serializing it. Gives the same JSON as
/// `represent` with the default projection.
pub fn represent_raw(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    r: &RawResource,
) -> Result<String> {
    let mut out = String::new();
    represent_raw_into(&mut out, c, base, kind, &[r.view()])?;
    Ok(out)
}

/// Appends the full representations of a page of resources to `out`, separated by commas,
/// loading the computed attributes of all of them at once.
pub fn represent_raw_into(
    out: &mut String,
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    page: &[RawView<'_>],
) -> Result<()> {
    let seqs: Vec<i64> = page.iter().map(|r| r.seq).collect();
    let mut computed = String::new();
    let ends = computed_text_into(&mut computed, c, base, kind, &seqs)?;
    // The schemas, id and meta around each document take about 300 bytes besides the id, the
    // timestamps and two copies of the base URL; room for all of it up front.
    out.reserve(
        page.iter()
            .map(|r| r.doc.len() + r.id.len() * 2 + r.created.len() * 2 + base.len() * 2 + 384)
            .sum::<usize>()
            + computed.len(),
    );
    let mut start = 0;
    for (i, (r, &end)) in page.iter().zip(&ends).enumerate() {
        if i > 0 {
            out.push(',');
        }
        resource::write_text(
            out,
            kind,
            base,
            r.id,
            r.doc,
            &computed[start..end],
            r.created,
            r.modified,
            r.version,
        );
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::prepare;
    use crate::store::providers::{self, ProviderKind};
    use crate::store::test_conn;
    use serde_json::json;

    #[test]
    fn direct_groups_by_range_and_by_key_agree() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        let user = |i: usize| prepare(ResourceKind::User, &json!({"userName": format!("u{i}")}));
        let mut seqs = Vec::new();
        let mut groups = Vec::new();
        for i in 0..400 {
            seqs.push(
                insert(&c, p.id, ResourceKind::User, &user(i).unwrap(), None, "t")
                    .unwrap()
                    .seq,
            );
            if i % 80 == 0 {
                // Groups among the users' keys, each holding users and the group before.
                let mut members: Vec<Value> = seqs
                    .iter()
                    .step_by(3)
                    .map(|&s| json!({"value": id_of(&c, s)}))
                    .collect();
                if let Some(&g) = groups.last() {
                    members.push(json!({"value": id_of(&c, g)}));
                }
                let body = json!({"displayName": format!("g{i}"), "members": members});
                let g = prepare(ResourceKind::Group, &body).unwrap();
                groups.push(
                    insert(&c, p.id, ResourceKind::Group, &g, None, "t")
                        .unwrap()
                        .seq,
                );
            }
        }
        let mut cases: Vec<Vec<i64>> = vec![
            seqs[..100].to_vec(),
            seqs[150..250].to_vec(),
            seqs.iter().step_by(37).copied().collect(),
            vec![seqs[0], seqs[399]],
            vec![seqs[5], seqs[5], seqs[6]],
            groups.clone(),
            vec![],
        ];
        cases.push(seqs[..100].iter().chain(&groups).copied().collect());
        for case in cases {
            let (Some(&low), Some(&high)) = (case.iter().min(), case.iter().max()) else {
                continue;
            };
            let mut by_range = Vec::new();
            direct_groups_by_range(&c, &case, low, high, &mut by_range).unwrap();
            let mut by_key = Vec::new();
            direct_groups_by_key(&c, &case, &mut by_key).unwrap();
            for e in [&mut by_range, &mut by_key] {
                e.sort_unstable();
                e.dedup();
            }
            assert!(!by_key.is_empty(), "{case:?}");
            assert_eq!(by_range, by_key, "{case:?}");
        }
    }

    fn id_of(c: &Connection, seq: i64) -> String {
        c.query_row("SELECT id FROM resources WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap()
    }

    #[test]
    fn positions_from_block_counts_match_offsets_across_deletes_and_providers() {
        let c = test_conn();
        let a = providers::insert(&c, "a", "", ProviderKind::Generic, 0).unwrap();
        let b = providers::insert(&c, "b", "", ProviderKind::Generic, 0).unwrap();
        let mut ids = Vec::new();
        // Interleaved providers and kinds over more than two blocks of keys.
        for i in 0..2600 {
            let (p, kind, body) = match i % 4 {
                0 | 1 => (
                    a.id,
                    ResourceKind::User,
                    json!({"userName": format!("u{i}")}),
                ),
                2 => (
                    b.id,
                    ResourceKind::User,
                    json!({"userName": format!("u{i}")}),
                ),
                _ => (
                    a.id,
                    ResourceKind::Group,
                    json!({"displayName": format!("g{i}")}),
                ),
            };
            let prepared = prepare(kind, &body).unwrap();
            let id = insert(&c, p, kind, &prepared, None, "t").unwrap().id;
            ids.push((p, kind, id));
        }
        // Holes, including a whole run of one block.
        for (i, (p, kind, id)) in ids.iter().enumerate() {
            if i % 7 == 0 || (900..1400).contains(&i) {
                delete(&c, *p, *kind, id, None).unwrap();
            }
        }
        for (p, kind) in [
            (a.id, ResourceKind::User),
            (b.id, ResourceKind::User),
            (a.id, ResourceKind::Group),
            (b.id, ResourceKind::Group),
        ] {
            let all: Vec<i64> = c
                .prepare(
                    "SELECT seq FROM resources WHERE provider_id = ?1 AND kind = ?2 ORDER BY seq",
                )
                .unwrap()
                .query_map(params![p, kind_str(kind)], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for offset in 0..=all.len() as i64 + 2 {
                assert_eq!(
                    nth_seq(&c, p, kind, offset).unwrap(),
                    all.get(offset as usize).copied(),
                    "provider {p} {kind:?} offset {offset}"
                );
            }
        }
        providers::delete(&c, a.id).unwrap();
        let left: i64 = c
            .query_row(
                "SELECT count(*) FROM resource_blocks WHERE provider_id = ?1",
                [a.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "a removed provider's block counts go with it");
    }

    #[test]
    fn counts_follow_inserts_deletes_and_provider_removal() {
        let c = test_conn();
        let a = providers::insert(&c, "a", "", ProviderKind::Generic, 0).unwrap();
        let b = providers::insert(&c, "b", "", ProviderKind::Generic, 0).unwrap();
        let total = |p: i64, kind| {
            search(
                &c,
                p,
                kind,
                None,
                Paging::Index {
                    offset: 0,
                    order: None,
                },
                0,
            )
            .unwrap()
            .total
        };
        let mut ids = Vec::new();
        for i in 0..5 {
            let p = prepare(ResourceKind::User, &json!({"userName": format!("u{i}")})).unwrap();
            ids.push(
                insert(&c, a.id, ResourceKind::User, &p, None, "t")
                    .unwrap()
                    .id,
            );
        }
        let g = prepare(ResourceKind::Group, &json!({"displayName": "g"})).unwrap();
        insert(&c, b.id, ResourceKind::Group, &g, None, "t").unwrap();
        assert_eq!(
            (
                total(a.id, ResourceKind::User),
                total(a.id, ResourceKind::Group)
            ),
            (5, 0)
        );
        assert_eq!(total(b.id, ResourceKind::Group), 1);
        delete(&c, a.id, ResourceKind::User, &ids[0], None).unwrap();
        assert_eq!(total(a.id, ResourceKind::User), 4);
        providers::delete(&c, a.id).unwrap();
        assert_eq!(total(a.id, ResourceKind::User), 0);
        let counted: i64 = c
            .query_row("SELECT count(*) FROM resource_counts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(counted, 1, "the removed provider's counts went with it");
    }

    #[test]
    fn every_page_reports_the_same_total() {
        let c = test_conn();
        let a = providers::insert(&c, "a", "", ProviderKind::Generic, 0).unwrap();
        for i in 0..5 {
            let p = prepare(ResourceKind::User, &json!({"userName": format!("u{i}")})).unwrap();
            insert(&c, a.id, ResourceKind::User, &p, None, "t").unwrap();
        }
        // Pages that end short of their limit count their own rows; full pages and pages past
        // the end run the count: all must say 5.
        for offset in 0..8 {
            for limit in 0..7 {
                let page = search_raw(
                    &c,
                    a.id,
                    ResourceKind::User,
                    None,
                    Paging::Index {
                        offset,
                        order: None,
                    },
                    limit,
                )
                .unwrap();
                assert_eq!(page.total, 5, "offset {offset} limit {limit}");
                let shown = (5 - offset).clamp(0, limit) as usize;
                assert_eq!(
                    page.items.rows.len(),
                    shown,
                    "offset {offset} limit {limit}"
                );
            }
        }
    }
}
