//! Searches: a compiled filter, a page by position or by cursor, and the total that matches.

use std::borrow::Cow;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::Result;
use super::rows::{COLUMNS, Rows, kind_str};
use crate::scim::ResourceKind;

/// A compiled filter condition over `resources r`, with its parameters numbered from ?3
/// (?1 and ?2 are the provider and the kind).
pub struct Condition {
    pub(crate) sql: String,
    pub(crate) params: Vec<Sql>,
    /// Run from the lookup inside the condition, not from the provider's index range.
    pub(crate) driven: bool,
    /// Run from a range of the name index (`userName sw`), not from the cursor's key range.
    pub(crate) by_name: bool,
    /// Count at most this many matches (the total is then "more than" it): set for a condition
    /// so broad that counting all its matches would read most of a large provider.
    pub(crate) count_cap: Option<i64>,
}

/// How to page through results.
pub enum Paging<'a> {
    /// 1-based position and ORDER BY (the creation order when `None`).
    Index { offset: i64, order: Option<&'a str> },
    /// Resources created after the one with this key, in creation order (RFC 9865 cursors).
    After(i64),
    /// Resources from the one with this key on, in creation order (set by `search_rows`).
    Start(i64),
    /// The last resources created before the one with this key, in creation order (a
    /// console's previous page; `i64::MAX` for the last page).
    Before(i64),
    /// A console list in `order`: the resources past `key` in it (from the start without one),
    /// or with `back` the last ones before `key` (the end without one), in the order. Each a
    /// range of an index: the keys, or the unique names.
    Keyed {
        order: Order,
        key: Option<Sql>,
        back: bool,
    },
}

/// The orders a console list is shown in, each read from an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Creation order, oldest or (`desc`) newest first.
    Created { desc: bool },
    /// By the unique name (userName, a group's displayName) regardless of case.
    Name { desc: bool },
}

impl Order {
    /// The column ordered by, as the page query selects it.
    fn column(self) -> &'static str {
        match self {
            Order::Created { .. } => "r.seq",
            Order::Name { .. } => "r.name_key",
        }
    }

    fn desc(self) -> bool {
        match self {
            Order::Created { desc } | Order::Name { desc } => desc,
        }
    }
}

/// One page of matching resources, the total number that match, and whether more follow.
pub struct Page {
    pub(crate) total: i64,
    /// More than `total` match (the condition's `count_cap`).
    pub(crate) more_than_total: bool,
    pub items: Rows,
    pub(crate) more: bool,
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
    count_cap: Option<i64>,
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
            Some(scope) => Cow::Owned(match self.count_cap {
                None => format!("SELECT count(*) FROM resources r WHERE {scope}"),
                Some(cap) => format!(
                    "SELECT count(*) FROM (SELECT 1 FROM resources r WHERE {scope} LIMIT {})",
                    cap + 1
                ),
            }),
        }
    }

    /// A count's answer as (total, whether more than it match).
    fn total(&self, counted: i64) -> (i64, bool) {
        match self.count_cap {
            Some(cap) if counted > cap => (cap, true),
            _ => (counted, false),
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
        Paging::Before(seq) => {
            args.push(Sql::Integer(seq));
            args.push(Sql::Integer(limit));
            (
                format!(
                    "SELECT * FROM (SELECT {COLUMNS} FROM resources r WHERE {scope} AND r.seq < ?{} \
                     ORDER BY r.seq DESC LIMIT ?{}) ORDER BY seq",
                    n + 1,
                    n + 2
                ),
                false,
            )
        }
        Paging::Keyed { order, key, back } => {
            // Read in the order's direction, or against it for a page before `key`.
            let ascending = order.desc() == back;
            let (cmp, dir) = if ascending {
                (">", "ASC")
            } else {
                ("<", "DESC")
            };
            // A name search reads the name index's range; keep the key off it then.
            let col = match (order, condition.is_some_and(|c| c.by_name)) {
                (Order::Created { .. }, true) => "+r.seq",
                _ => order.column(),
            };
            let mut keyed = String::new();
            if let Some(k) = key {
                args.push(k);
                keyed = format!(" AND {col} {cmp} ?{}", args.len());
            }
            let page_size = if back { limit } else { limit + 1 };
            args.push(Sql::Integer(page_size));
            let inner = format!(
                "SELECT {COLUMNS}, {} AS sort_key FROM resources r WHERE {scope}{keyed} \
                 ORDER BY {col} {dir} LIMIT ?{}",
                order.column(),
                args.len()
            );
            let page_sql = if back {
                let outer = if order.desc() { "DESC" } else { "ASC" };
                format!("SELECT * FROM ({inner}) ORDER BY sort_key {outer}")
            } else {
                inner
            };
            (page_sql, !back)
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
                    "SELECT {COLUMNS} FROM resources r WHERE {scope} AND {}r.seq > ?{} ORDER BY r.seq LIMIT ?{}",
                    if condition.is_some_and(|c| c.by_name) {
                        "+"
                    } else {
                        ""
                    },
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
        count_cap: condition.and_then(|c| c.count_cap),
        probe_more,
    }
}

/// One page of the resources of `kind` that match `condition`, in the order of `paging`, with
/// the total that match and whether more follow.
pub fn search(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
) -> Result<Page> {
    let mut rows = Rows::with_capacity(limit.clamp(0, 1000) as usize);
    let (total, more) = search_visit(c, provider_id, kind, condition, paging, limit, true, |r| {
        rows.push(r)
    })?;
    let (total, more_than_total) = total.unwrap_or_default();
    Ok(Page {
        total,
        more_than_total,
        items: rows,
        more,
    })
}

/// Up to `limit` resources of `kind` created after the one with key `after` that match
/// `condition`, and whether more follow: a search without its total (no count statement),
/// for readers that only walk the matches (the LDAP directory).
pub(crate) fn after(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    after: i64,
    limit: i64,
) -> Result<(Rows, bool)> {
    let mut rows = Rows::with_capacity(limit.clamp(0, 1000) as usize);
    let (_, more) = search_visit(
        c,
        provider_id,
        kind,
        condition,
        Paging::After(after),
        limit,
        false,
        |r| rows.push(r),
    )?;
    Ok((rows, more))
}

/// Runs a search, handing each row of the page (at most `limit`) to `visit`; gives the total
/// (when `total` asks for it) and whether more rows follow the page.
#[allow(clippy::too_many_arguments)]
fn search_visit(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
    total: bool,
    mut visit: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<(Option<(i64, bool)>, bool)> {
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
    let count = || -> Result<(i64, bool)> {
        let n: i64 = c
            .prepare_cached(&st.count_sql())?
            .query_row(params_from_iter(st.count_args().iter()), |r| r.get(0))?;
        Ok(st.total(n))
    };
    if limit == 0 {
        let total = count()?;
        return Ok((Some(total), total.0 > 0));
    }
    let mut q = c.prepare_cached(&st.page_sql)?;
    let mut rows = q.query(params_from_iter(st.page_args.iter()))?;
    let mut seen = 0;
    while let Some(r) = rows.next()? {
        if seen == limit {
            // The row past the page, fetched only to learn that there is one.
            return Ok((total.then(count).transpose()?, st.probe_more));
        }
        visit(r)?;
        seen += 1;
    }
    drop(rows);
    // A page by position that ends short of its limit has reached the last match, so it shows
    // the total itself: a lookup by a unique value (`userName eq`, `externalId eq`) runs one
    // statement, not a count besides. Past the end (no rows at an offset) it does not.
    let total = match first_position {
        Some(offset) if seen < limit && (seen > 0 || offset == 0) => Some((offset + seen, false)),
        _ => total.then(count).transpose()?,
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
#[cfg(test)]
pub(crate) fn explain(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    condition: Option<&Condition>,
    paging: Paging<'_>,
    limit: i64,
) -> Result<Vec<String>> {
    let st = statements(provider_id, kind, condition, paging, limit);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::scim::resource::prepare;
    use crate::store::providers;
    use crate::store::resources::{create as insert, delete};
    use crate::store::test_conn;
    use serde_json::json;

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
            let prepared = prepare(kind.builtin(), &body).unwrap();
            let id = insert(&c, p, kind.builtin(), &prepared, None, "t")
                .unwrap()
                .id;
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
            let p = prepare(
                ResourceKind::User.builtin(),
                &json!({"userName": format!("u{i}")}),
            )
            .unwrap();
            ids.push(
                insert(&c, a.id, ResourceKind::User.builtin(), &p, None, "t")
                    .unwrap()
                    .id,
            );
        }
        let g = prepare(ResourceKind::Group.builtin(), &json!({"displayName": "g"})).unwrap();
        insert(&c, b.id, ResourceKind::Group.builtin(), &g, None, "t").unwrap();
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
            let p = prepare(
                ResourceKind::User.builtin(),
                &json!({"userName": format!("u{i}")}),
            )
            .unwrap();
            insert(&c, a.id, ResourceKind::User.builtin(), &p, None, "t").unwrap();
        }
        // Pages that end short of their limit count their own rows; full pages and pages past
        // the end run the count: all must say 5.
        for offset in 0..8 {
            for limit in 0..7 {
                let page = search(
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
                assert_eq!(page.items.len(), shown, "offset {offset} limit {limit}");
            }
        }
    }

    /// Keyed pages walk every order both ways: forward from the start and from a key, back
    /// from the end and from a key, with a name search reading the name index.
    #[test]
    fn keyed_pages_walk_each_order_both_ways() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        // Created in this order; by name regardless of case: a B c D e f G.
        for n in ["D", "a", "G", "c", "f", "B", "e"] {
            let prepared = prepare(ResourceKind::User.builtin(), &json!({"userName": n})).unwrap();
            insert(&c, p.id, ResourceKind::User.builtin(), &prepared, None, "t").unwrap();
        }
        let names = |order: Order, key: Option<Sql>, back: bool, cond: Option<&Condition>| {
            let page = search(
                &c,
                p.id,
                ResourceKind::User,
                cond,
                Paging::Keyed { order, key, back },
                3,
            )
            .unwrap();
            let names: Vec<String> = page
                .items
                .iter()
                .map(|r| {
                    let d: serde_json::Value = serde_json::from_str(r.doc).unwrap();
                    d["userName"].as_str().unwrap().to_string()
                })
                .collect();
            (names.join(""), page.total, page.more)
        };
        let text = |k: &str| Some(Sql::Text(k.into()));
        let name = Order::Name { desc: false };
        assert_eq!(names(name, None, false, None), ("aBc".into(), 7, true));
        assert_eq!(names(name, text("c"), false, None), ("Def".into(), 7, true));
        assert_eq!(names(name, text("f"), false, None), ("G".into(), 7, false));
        assert_eq!(names(name, None, true, None), ("efG".into(), 7, false));
        assert_eq!(names(name, text("d"), true, None), ("aBc".into(), 7, false));
        let back = Order::Name { desc: true };
        assert_eq!(names(back, None, false, None), ("Gfe".into(), 7, true));
        assert_eq!(names(back, text("e"), false, None), ("DcB".into(), 7, true));
        assert_eq!(names(back, None, true, None), ("cBa".into(), 7, false));
        let newest = Order::Created { desc: true };
        assert_eq!(names(newest, None, false, None), ("eBf".into(), 7, true));
        let oldest = Order::Created { desc: false };
        assert_eq!(names(oldest, None, true, None), ("fBe".into(), 7, false));
        // A name search: `userName sw "d"` and `sw "e"` meet nothing else.
        let rt = ResourceKind::User.builtin();
        let f = crate::scim::filter::parse("userName sw \"e\" or userName sw \"d\"").unwrap();
        let cond = crate::store::query::condition(rt, "http://x", &f).unwrap();
        assert_eq!(
            names(back, None, false, Some(&cond)),
            ("eD".into(), 2, false)
        );
        assert_eq!(
            names(newest, None, false, Some(&cond)),
            ("eD".into(), 2, false)
        );
    }
}
