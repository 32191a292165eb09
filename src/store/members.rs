//! The `members` table: one row per membership, so a change never rewrites a member list; and
//! the computed side of it, each resource's groups through nested groups.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::query::Compiler;
use super::rows::{Reference, parse_kind};
use super::{Error, Result};
use crate::scim::ResourceKind;
use crate::scim::patch::MemberChange;
use crate::scim::projection::Projection;
use crate::scim::resource::Member;
use crate::scim::schema::active_json_path;
use crate::scim::schema::{ResourceType, Role};

/// Applies PATCH membership changes row by row: the cost grows with the members named, not
/// with the size of the group. Returns whether any membership changed.
pub(super) fn change_members(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    group_seq: i64,
    base: &str,
    changes: &[MemberChange],
) -> Result<MemberDelta> {
    let mut delta = MemberDelta::default();
    for change in changes {
        match change {
            MemberChange::Add(ids) => {
                let seqs = member_seqs(c, provider_id, group_seq, ids)?;
                delta.added += add_members(c, group_seq, &seqs)?;
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
                        delta.removed += 1;
                    }
                }
            }
            MemberChange::RemoveWhere(f) => {
                let mut compiler = Compiler::new(rt, base, 2);
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
                    delta.removed += 1;
                }
            }
            MemberChange::Replace(ids) => {
                let seqs = member_seqs(c, provider_id, group_seq, ids)?;
                delta.replaced |= set_members(c, group_seq, &seqs)?;
            }
        }
    }
    Ok(delta)
}

/// What a PATCH did to a group's memberships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemberDelta {
    pub(crate) added: usize,
    pub(crate) removed: usize,
    /// A replacement of the whole list changed it.
    pub(crate) replaced: bool,
}

impl MemberDelta {
    pub(crate) fn any(&self) -> bool {
        self.added > 0 || self.removed > 0 || self.replaced
    }
}

/// Resolves members to internal keys, keeping each one's display: each must be a User or
/// Group of the same provider, and a group cannot contain itself.
pub(super) fn member_seqs(
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
pub(super) fn bump_below(c: &Connection, group_seq: i64) -> Result<()> {
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
pub(super) fn add_members(
    c: &Connection,
    group_seq: i64,
    members: &[(i64, Option<String>)],
) -> Result<usize> {
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
pub(super) fn set_members(
    c: &Connection,
    group_seq: i64,
    members: &[(i64, Option<String>)],
) -> Result<bool> {
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

/// Whether a group has at most `n` members; reads at most `n + 1` index entries, whatever the
/// group's size.
pub(crate) fn at_most(c: &Connection, group_seq: i64, n: usize) -> Result<bool> {
    let mut st = c.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM members WHERE group_seq = ?1 LIMIT ?2)",
    )?;
    let count: i64 = st.query_row(params![group_seq, n as i64 + 1], |r| r.get(0))?;
    Ok(count as usize <= n)
}

/// How many members each of the groups `group_seqs` has, in that order.
pub(crate) fn member_counts(c: &Connection, group_seqs: &[i64]) -> Result<Vec<usize>> {
    let mut st = c.prepare_cached("SELECT count(*) FROM members WHERE group_seq = ?1")?;
    group_seqs
        .iter()
        .map(|seq| Ok(st.query_row([seq], |r| r.get::<_, i64>(0))? as usize))
        .collect()
}

/// Up to `n` members of a group after the member with key `after` (0: from the first), oldest
/// resource first, each with its key and named by the display the client sent or else its own
/// name (a group's page in the console, a page at a time whatever the group's size).
pub(crate) fn members_page(
    c: &Connection,
    group_seq: i64,
    after: i64,
    n: usize,
) -> Result<Vec<(i64, Reference)>> {
    let mut st = c.prepare_cached(
        "SELECT r.id, r.kind, coalesce(m.display, r.name), m.member_seq
         FROM members m CROSS JOIN resources r ON r.seq = m.member_seq
         WHERE m.group_seq = ?1 AND m.member_seq > ?2 ORDER BY m.member_seq LIMIT ?3",
    )?;
    let rows = st.query_map(params![group_seq, after, n as i64], |r| {
        Ok((
            r.get(3)?,
            Reference {
                id: r.get(0)?,
                kind: parse_kind(&r.get::<_, String>(1)?)?,
                display: r.get(2)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The kind and unique name of each member of these groups (for member DNs), by group, oldest
/// member first, in one statement whatever the number of groups; deactivated users are left
/// out, as they are out of the LDAP directory.
pub(crate) fn member_names_many(
    c: &Connection,
    group_seqs: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<(ResourceKind, String)>>> {
    let mut out: std::collections::HashMap<i64, Vec<(ResourceKind, String)>> =
        std::collections::HashMap::new();
    if group_seqs.is_empty() {
        return Ok(out);
    }
    let mut st = c.prepare_cached(concat!(
        "SELECT m.group_seq, r.kind, r.name FROM members m CROSS JOIN resources r
             ON r.seq = m.member_seq
         WHERE m.group_seq IN (SELECT value FROM json_each(?1))
           AND NOT (r.kind = 'User' AND coalesce(json_extract(r.doc, '",
        active_json_path!(),
        "'), 1) = 0)
         ORDER BY m.group_seq, m.member_seq"
    ))?;
    let seqs = serde_json::to_string(group_seqs).map_err(|e| Error::Internal(e.to_string()))?;
    let mut rows = st.query([seqs])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?)
            .or_default()
            .push((parse_kind(&r.get::<_, String>(1)?)?, r.get(2)?));
    }
    Ok(out)
}

/// The values of a resource type's computed attribute for some rows, as read: each group's
/// members (RFC 7643 §4.2), or each user's groups with their names (§4.1.2); what `render`
/// writes as `members` or `groups`.
pub(crate) enum Linked {
    /// Not wanted (or the type has none), for this many rows.
    None(usize),
    /// Each row's members, in the order they were added.
    Members(Vec<Vec<Reference>>),
    /// Each row's groups, direct and inherited.
    Groups(GroupNames, GroupLists),
}

impl Linked {
    /// How many rows it is for.
    pub(crate) fn rows(&self) -> usize {
        match self {
            Linked::None(n) => *n,
            Linked::Members(all) => all.len(),
            Linked::Groups(_, lists) => lists.len(),
        }
    }
}

/// The computed attribute of the rows `seqs` of `rt` (in that order) when `projection` keeps
/// it; a page costs a few statements.
pub(crate) fn linked(
    c: &Connection,
    rt: &ResourceType,
    seqs: &[i64],
    projection: &Projection,
) -> Result<Linked> {
    let Some(attr) = rt.linked().filter(|a| projection.wants(a.name)) else {
        return Ok(Linked::None(seqs.len()));
    };
    Ok(match attr.role {
        Role::Relation => Linked::Members(
            seqs.iter()
                .map(|&seq| members_of(c, seq))
                .collect::<Result<_>>()?,
        ),
        _ => {
            let (names, lists) = group_seqs_of_many(c, seqs)?;
            Linked::Groups(names, lists)
        }
    })
}

/// `linked` for a resource created in this transaction: only values it holds itself (a new
/// group's members) can exist; nothing can have made it a member of anything yet, so a new
/// user's groups are not looked up.
pub(crate) fn linked_of_new(
    c: &Connection,
    rt: &ResourceType,
    seq: i64,
    projection: &Projection,
) -> Result<Linked> {
    match rt.linked() {
        Some(a) if a.role == Role::Relation => linked(c, rt, &[seq], projection),
        _ => Ok(Linked::None(1)),
    }
}

/// The members of a group, oldest resource first.
pub(crate) fn members_of(c: &Connection, group_seq: i64) -> Result<Vec<Reference>> {
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

/// Each group reached: its key, id and displayName, sorted by key.
pub(crate) type GroupNames = Vec<(i64, String, Option<String>)>;

/// For each member, its groups oldest first as (index into the `GroupNames`, whether the
/// membership is direct); all members' lists one after another in one buffer.
pub(crate) struct GroupLists {
    items: Vec<(usize, bool)>,
    ends: Vec<usize>,
}

impl GroupLists {
    /// How many members' lists it holds.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn of(&self, member: usize) -> &[(usize, bool)] {
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
pub(crate) fn group_seqs_of_many(
    c: &Connection,
    member_seqs: &[i64],
) -> Result<(GroupNames, GroupLists)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::scim::ResourceKind;
    use crate::scim::resource::prepare;
    use crate::store::providers;
    use crate::store::resources::create as insert;
    use crate::store::test_conn;
    use serde_json::{Value, json};

    #[test]
    fn direct_groups_by_range_and_by_key_agree() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        let user = |i: usize| {
            prepare(
                ResourceKind::User.builtin(),
                &json!({"userName": format!("u{i}")}),
            )
        };
        let mut seqs = Vec::new();
        let mut groups = Vec::new();
        for i in 0..400 {
            seqs.push(
                insert(
                    &c,
                    p.id,
                    ResourceKind::User.builtin(),
                    &user(i).unwrap(),
                    None,
                    "t",
                )
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
                let g = prepare(ResourceKind::Group.builtin(), &body).unwrap();
                groups.push(
                    insert(&c, p.id, ResourceKind::Group.builtin(), &g, None, "t")
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
}
