//! The `resources` table: Users and Groups of each provider, and the write use cases on them —
//! `create`, `replace`, `patch`, `delete` — which every writer (SCIM handlers, the command
//! line, jobs) runs on the store's writer. Whatever must hold for every change (uniqueness,
//! the version bump, the index rows, the counts) is written here, once.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::members::{
    MemberDelta, add_members, bump_below, change_members, member_seqs, set_members,
};
pub(crate) use super::rows::{Resource, Rows, Stored};
use super::rows::{extension_index_attr, extension_index_value, index_attr, kind_str, parse_kind};
use super::{Error, Result};
use crate::scim::patch::{self, MemberChange, Operation};
use crate::scim::quirks::Quirks;
use crate::scim::resource::{self, PasswordUpdate, Prepared, etag_matches};
use crate::scim::schema::{ResourceType, Role, Uniqueness};
use crate::scim::{ResourceKind, fold, schema};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Resource> {
    let doc: String = r.get(2)?;
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&doc) else {
        return Err(rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            "stored document is not a JSON object".into(),
        ));
    };
    Ok(Resource {
        seq: r.get(0)?,
        id: r.get(1)?,
        doc,
        created: r.get(3)?,
        modified: r.get(4)?,
        version: r.get(5)?,
    })
}

const GET_SQL: &str = "SELECT r.seq, r.id, r.doc, r.created, r.modified, r.version FROM resources r \
     WHERE r.id = ?1 AND r.provider_id = ?2 AND r.kind = ?3";

/// A stored resource with its document parsed, for writes that change it.
pub(crate) fn get(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<Resource>> {
    Ok(c.prepare_cached(GET_SQL)?
        .query_row(params![id, provider_id, kind_str(kind)], from_row)
        .optional()?)
}

/// A stored resource for rendering: no row when it does not exist.
pub(crate) fn read(c: &Connection, provider_id: i64, kind: ResourceKind, id: &str) -> Result<Rows> {
    let mut out = Rows::with_capacity(1);
    let mut st = c.prepare_cached(GET_SQL)?;
    let mut rows = st.query(params![id, provider_id, kind_str(kind)])?;
    if let Some(r) = rows.next()? {
        out.push(r)?;
    }
    Ok(out)
}

/// The id of the resource of `kind` named `name` that is in the LDAP directory: a deactivated
/// user is not (a filter value naming its DN matches nothing).
pub(crate) fn entry_id_by_name(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    name: &str,
) -> rusqlite::Result<Option<String>> {
    c.prepare_cached(concat!(
        "SELECT id FROM resources WHERE provider_id = ?1 AND kind = ?2 AND name_key = ?3
           AND NOT (kind = 'User' AND coalesce(json_extract(doc, '",
        crate::scim::schema::active_json_path!(),
        "'), 1) = 0)"
    ))?
    .query_row(params![provider_id, kind_str(kind), fold(name)], |r| {
        r.get(0)
    })
    .optional()
}

/// The unique names of the resources of `kind` with these ids, by id, in one statement
/// whatever the number of ids (ids of no resource are left out).
pub(crate) fn names_by_id(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut st = c.prepare_cached(
        "SELECT id, name FROM resources
         WHERE provider_id = ?1 AND kind = ?2 AND id IN (SELECT value FROM json_each(?3))",
    )?;
    let ids = serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?;
    let rows = st.query_map(params![provider_id, kind_str(kind), ids], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// computed values.
fn holds_members(rt: &ResourceType) -> bool {
    rt.linked().is_some_and(|a| a.role == Role::Relation)
}

fn require(c: &Connection, provider_id: i64, kind: ResourceKind, id: &str) -> Result<Resource> {
    get(c, provider_id, kind, id)?
        .ok_or_else(|| Error::NotFound(format!("{} {id} not found", kind.name())))
}

pub(crate) fn check_if_match(r: &Resource, if_match: Option<&str>) -> Result<()> {
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
    rt: &ResourceType,
    name: &str,
    except_seq: Option<i64>,
) -> Result<()> {
    let taken: Option<i64> = c
        .prepare_cached(
            "SELECT seq FROM resources WHERE provider_id = ?1 AND kind = ?2 AND name_key = ?3",
        )?
        .query_row(params![provider_id, kind_str(rt.kind()), fold(name)], |r| {
            r.get(0)
        })
        .optional()?;
    match taken {
        Some(seq) if Some(seq) != except_seq => Err(Error::Conflict(format!(
            "{} {name:?} is already taken (compared regardless of case)",
            rt.name_attribute()
        ))),
        _ => Ok(()),
    }
}

/// The `value_index` entries of a document: (attribute key, folded value), one per value of
/// each sub-attribute the schema model marks indexed, and one per indexed extension attribute
/// (its key `urn:attribute`, its value folded unless the attribute is case-exact).
fn index_entries(rt: &ResourceType, doc: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (attr, sub) in rt.indexed() {
        let Some(Value::Array(items)) = doc.get(attr.name) else {
            continue;
        };
        for v in items
            .iter()
            .filter_map(|i| i.get(sub.name).and_then(Value::as_str))
        {
            out.push((index_attr(attr, sub), fold(v)));
        }
    }
    for (urn, attr) in rt.indexed_extension() {
        if let Some(v) = doc.get(urn).and_then(|e| e.get(attr.name))
            && let Some(key) = extension_index_value(attr, v)
        {
            out.push((extension_index_attr(urn, attr), key));
        }
    }
    out
}

/// Refuses a value of an extension attribute with `uniqueness` that another resource of the
/// provider already has (such attributes are always indexed, so this is an index lookup).
fn check_unique_extensions(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    doc: &Map<String, Value>,
    except_seq: Option<i64>,
) -> Result<()> {
    for (urn, attr) in rt
        .indexed_extension()
        .filter(|(_, a)| a.uniqueness != Uniqueness::None)
    {
        let Some(v) = doc.get(urn).and_then(|e| e.get(attr.name)) else {
            continue;
        };
        let Some(key) = extension_index_value(attr, v) else {
            continue;
        };
        let taken: Option<i64> = c
            .prepare_cached(
                "SELECT v.seq FROM value_index v JOIN resources r ON r.seq = v.seq
                 WHERE v.attr = ?1 AND v.value_key = ?2 AND r.provider_id = ?3 AND r.kind = ?4
                   AND v.seq IS NOT ?5 LIMIT 1",
            )?
            .query_row(
                params![
                    extension_index_attr(urn, attr),
                    key,
                    provider_id,
                    kind_str(rt.kind()),
                    except_seq
                ],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "{}:{} {v} is already taken{}",
                urn,
                attr.name,
                if attr.case_exact {
                    ""
                } else {
                    " (compared regardless of case)"
                }
            )));
        }
    }
    Ok(())
}

/// Rewrites the `value_index` rows of one resource from its document.
fn reindex(c: &Connection, seq: i64, rt: &ResourceType, doc: &Map<String, Value>) -> Result<()> {
    c.prepare_cached("DELETE FROM value_index WHERE seq = ?1")?
        .execute([seq])?;
    let mut ins = c.prepare_cached(
        "INSERT OR IGNORE INTO value_index (seq, attr, value_key) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in index_entries(rt, doc) {
        ins.execute(params![seq, key, value])?;
    }
    Ok(())
}

/// Builds `value_index` for every stored resource (run by the migration that adds it).
pub(crate) fn reindex_all(c: &Connection) -> Result<()> {
    let all: Vec<(i64, String, String)> = c
        .prepare("SELECT seq, kind, doc FROM resources")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, kind, doc) in all {
        if let (Ok(kind), Ok(Value::Object(m))) = (parse_kind(&kind), serde_json::from_str(&doc)) {
            reindex(c, seq, kind.builtin(), &m)?;
        }
    }
    Ok(())
}

fn doc_text(p: &Prepared) -> Result<String> {
    serde_json::to_string(&p.doc).map_err(|e| Error::Invalid(format!("unstorable document: {e}")))
}

/// Creates a resource with a new server-assigned id (POST). Runs on the writer.
pub fn create(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    p: &Prepared,
    password_hash: Option<&str>,
    now: &str,
) -> Result<Resource> {
    check_unique(c, provider_id, rt, &p.name, None)?;
    check_unique_extensions(c, provider_id, rt, &p.doc, None)?;
    let id = uuid::Uuid::now_v7().to_string();
    c.prepare_cached(
        "INSERT INTO resources (provider_id, kind, id, external_id, name, name_key, doc,
                                password_hash, created, modified, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1)",
    )?
    .execute(params![
        provider_id,
        kind_str(rt.kind()),
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
    .execute(params![provider_id, kind_str(rt.kind())])?;
    c.prepare_cached(
        "INSERT INTO resource_blocks (provider_id, kind, block, n) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT DO UPDATE SET n = n + 1",
    )?
    .execute(params![provider_id, kind_str(rt.kind()), seq >> 10])?;
    let mut ins = c.prepare_cached(
        "INSERT OR IGNORE INTO value_index (seq, attr, value_key) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in index_entries(rt, &p.doc) {
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
        let stored = require(c, provider_id, rt.kind(), &created.id)?;
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
/// hash, since clients never get it back to resend. Runs on the writer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replace(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    id: &str,
    p: &Prepared,
    password_hash: Option<&str>,
    if_match: Option<&str>,
    now: &str,
) -> Result<Replaced> {
    let old = require(c, provider_id, rt.kind(), id)?;
    check_if_match(&old, if_match)?;
    resource::check_immutable(rt.schema(), &old.doc, &p.doc)?;
    let password = match password_hash {
        Some(h) => PasswordUpdate::Set(h.to_string()),
        None => PasswordUpdate::Keep,
    };
    update_doc(c, provider_id, rt, &old, p, password, now)?;
    let mut members_changed = false;
    if holds_members(rt) {
        let wanted = member_seqs(c, provider_id, old.seq, p.members.as_deref().unwrap_or(&[]))?;
        members_changed = set_members(c, old.seq, &wanted)?;
    }
    Ok(Replaced {
        resource: require(c, provider_id, rt.kind(), id)?,
        before: old.doc,
        members_changed,
    })
}

/// Stores a new document for `old` (PUT, or a patched one) and bumps the version. Columns and index rows whose values did not change are not rewritten
/// (an unchanged userName or externalId costs no index update).
fn update_doc(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    old: &Resource,
    p: &Prepared,
    password: PasswordUpdate,
    now: &str,
) -> Result<()> {
    // Conflicts are found before anything changes (see store::writer).
    let reindexing = index_entries(rt, &old.doc) != index_entries(rt, &p.doc);
    if reindexing {
        check_unique_extensions(c, provider_id, rt, &p.doc, Some(old.seq))?;
    }
    let old_name = old.doc.get(rt.name_attribute()).and_then(Value::as_str);
    let old_external_id = old
        .doc
        .get(schema::EXTERNAL_ID.name)
        .and_then(Value::as_str);
    let keys_changed =
        old_name != Some(p.name.as_str()) || old_external_id != p.external_id.as_deref();
    if keys_changed {
        check_unique(c, provider_id, rt, &p.name, Some(old.seq))?;
        c.prepare_cached(
            "UPDATE resources SET external_id = ?1, name = ?2, name_key = ?3 WHERE seq = ?4",
        )?
        .execute(params![p.external_id, p.name, fold(&p.name), old.seq])?;
        // A group's displayName is shown in its members' `groups`.
        if holds_members(rt) && old_name != Some(p.name.as_str()) {
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
    if reindexing {
        reindex(c, old.seq, rt, &p.doc)?;
    }
    Ok(())
}

/// The current version of a resource.
fn version_of(c: &Connection, seq: i64) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT version FROM resources WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))?,
    )
}

/// Marks a resource changed (new version, lastModified) without touching its document.
fn touch(c: &Connection, seq: i64, now: &str) -> Result<()> {
    c.prepare_cached("UPDATE resources SET modified = ?1, version = version + 1 WHERE seq = ?2")?
        .execute(params![now, seq])?;
    Ok(())
}

/// What a PATCH did: the resource as stored now, whether anything changed, and the
/// non-standard shapes the request's operations used.
#[derive(Debug)]
pub struct Patched {
    pub(crate) resource: Resource,
    pub changed: bool,
    pub(crate) quirks: Quirks,
    /// The document before the PATCH.
    pub(crate) before: Map<String, Value>,
    pub(crate) members: MemberDelta,
}

/// What a PUT wrote, and what was there before.
pub(crate) struct Replaced {
    pub(crate) resource: Resource,
    pub(crate) before: Map<String, Value>,
    pub(crate) members_changed: bool,
}

/// PATCH operations applied to a resource as it was at `version`: everything a PATCH decides,
/// without writing. Made on a reader thread for a PATCH with many operations, so that its work
/// does not hold the writer; `patch` uses it when the resource has not changed since.
#[derive(Debug, Clone)]
pub struct PatchPlan {
    version: i64,
    prepared: Prepared,
    password: PasswordUpdate,
    members: Vec<MemberChange>,
    quirks: Quirks,
}

/// Applies `ops` to `old` (RFC 7644 §3.5.2) and validates the result as a PUT body is
/// validated. `password_hash` is the hash of the password the operations set, computed
/// beforehand (`patch::password_in`).
pub(crate) fn plan_patch(
    rt: &ResourceType,
    old: &Resource,
    ops: &[Operation],
    password_hash: Option<&str>,
) -> Result<PatchPlan> {
    let outcome = patch::apply(rt, &old.doc, ops)?;
    let password = outcome.password_update(password_hash);
    let prepared = resource::prepare(rt, &Value::Object(outcome.doc))?;
    resource::check_immutable(rt.schema(), &old.doc, &prepared.doc)?;
    Ok(PatchPlan {
        version: old.version,
        prepared,
        password,
        members: outcome.members,
        // Only the request's own shapes count; the stored document has none.
        quirks: outcome.quirks,
    })
}

/// Reads a resource and plans a PATCH of it (`plan_patch`), checking `If-Match` first as the
/// write will. Runs on a reader.
pub(crate) fn read_and_plan_patch(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    id: &str,
    ops: &[Operation],
    password_hash: Option<&str>,
    if_match: Option<&str>,
) -> Result<PatchPlan> {
    let old = require(c, provider_id, rt.kind(), id)?;
    check_if_match(&old, if_match)?;
    plan_patch(rt, &old, ops, password_hash)
}

/// Applies PATCH operations (RFC 7644 §3.5.2) to a stored resource. The result passes the same
/// validation as a PUT body; `meta.version` and `lastModified` move only when the document or a
/// membership changed. Membership changes are row operations, whatever the group's size.
/// `planned` is the plan made beforehand on a reader, if one was: it is used when the resource
/// is still at the version it was planned for, and made again here otherwise. Runs on the
/// writer.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    c: &Connection,
    provider_id: i64,
    rt: &ResourceType,
    id: &str,
    ops: &[Operation],
    password_hash: Option<&str>,
    if_match: Option<&str>,
    now: &str,
    base: &str,
    planned: Option<&PatchPlan>,
) -> Result<Patched> {
    let old = require(c, provider_id, rt.kind(), id)?;
    check_if_match(&old, if_match)?;
    let plan = match planned {
        Some(p) if p.version == old.version => p.clone(),
        _ => plan_patch(rt, &old, ops, password_hash)?,
    };
    let PatchPlan {
        prepared,
        password,
        members,
        quirks,
        ..
    } = plan;
    let doc_changed = prepared.doc != old.doc || !matches!(password, PasswordUpdate::Keep);
    if doc_changed {
        update_doc(c, provider_id, rt, &old, &prepared, password, now)?;
    }
    let delta = change_members(c, provider_id, rt, old.seq, base, &members)?;
    let members_changed = delta.any();
    if members_changed && !doc_changed {
        touch(c, old.seq, now)?;
    }
    // The stored row, known without reading it back.
    let changed = doc_changed || members_changed;
    let before = old.doc;
    let r = Resource {
        seq: old.seq,
        id: old.id,
        doc: prepared.doc,
        created: old.created,
        modified: if changed {
            now.to_string()
        } else {
            old.modified
        },
        // Membership changes can move the version more than once (in a cycle of groups a
        // group is also below the members it gains): read it then.
        version: if members_changed {
            version_of(c, old.seq)?
        } else {
            old.version + i64::from(changed)
        },
    };
    // Debug builds (every integration test) check that against the database.
    #[cfg(debug_assertions)]
    {
        let stored = require(c, provider_id, rt.kind(), &r.id)?;
        assert_eq!(
            (&stored.doc, &stored.modified, stored.version),
            (&r.doc, &r.modified, r.version),
            "PATCH result differs from the stored row"
        );
    }
    Ok(Patched {
        resource: r,
        changed,
        quirks,
        before,
        members: delta,
    })
}

/// Deletes a resource and its memberships (DELETE); returns it as it was. Runs on the writer.
pub(crate) fn delete(
    c: &Connection,
    provider_id: i64,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
) -> Result<Resource> {
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
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_request;
    use crate::scim::resource::prepare;
    use crate::scim::{ProviderKind, ResourceKind};
    use crate::store::{providers, test_conn};
    use serde_json::json;

    #[test]
    fn a_plan_made_before_a_concurrent_change_is_made_again() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        let rt = ResourceKind::User.builtin();
        let body = json!({"userName": "u", "title": "before"});
        let u = create(&c, p.id, rt, &prepare(rt, &body).unwrap(), None, "t1").unwrap();
        let ops = |v: serde_json::Value| parse_request(&json!({"Operations": v})).unwrap();
        let add = ops(json!([{"op": "add", "path": "emails", "value": [{"value": "x@y"}]}]));
        let plan = plan_patch(rt, &u, &add, None).unwrap();
        // Another request changes the user between the plan and the write.
        let retitle = ops(json!([{"op": "replace", "path": "title", "value": "after"}]));
        patch(&c, p.id, rt, &u.id, &retitle, None, None, "t2", "b", None).unwrap();
        let done = patch(
            &c,
            p.id,
            rt,
            &u.id,
            &add,
            None,
            None,
            "t3",
            "b",
            Some(&plan),
        )
        .unwrap();
        assert_eq!(
            done.resource.doc["title"], "after",
            "the other change is kept"
        );
        assert_eq!(done.resource.doc["emails"], json!([{"value": "x@y"}]));
        assert_eq!(done.resource.version, 3);
        // An up-to-date plan is used as it is.
        let current = get(&c, p.id, ResourceKind::User, &u.id).unwrap().unwrap();
        let plan = plan_patch(rt, &current, &retitle, None).unwrap();
        let same = patch(
            &c,
            p.id,
            rt,
            &u.id,
            &retitle,
            None,
            None,
            "t4",
            "b",
            Some(&plan),
        )
        .unwrap();
        assert!(!same.changed);
    }
}
