//! The use cases on Users and Groups: read one, create, replace, patch and delete (lists and
//! searches are in `lists`). Each looks
//! up the provider's model, lets `scim` decide, and runs its unit of work with the caller
//! rechecked inside it; every change writes its activity record in the same transaction. The
//! door parses the request before and presents the outcome after.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::{AppState, Principal};
use crate::error::Error;
use crate::render::{self, Computed};
use crate::scim::ResourceKind;
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::quirks::Quirks;
use crate::scim::resource::{self, Prepared, etag_matches};
use crate::scim::schema::{Model, ResourceType};
use crate::store::activity::{self, Action, Change};
use crate::store::members;
use crate::store::resources as rows;
use crate::store::rows::Resource;

/// PATCHes with more operations than this are applied on a reader before the write (see
/// `store::resources::PatchPlan`); identity providers send one to a few.
const PLAN_ON_A_READER: usize = 8;

/// Most members a group PATCH answers with in full when the client did not ask either way.
pub(crate) const GROUP_ANSWER_MEMBERS: usize = 100;

/// What a write was asked with, besides its body.
pub(crate) struct Ask {
    /// Who asked, for the activity record.
    pub(crate) who: activity::Context,
    /// What the answer shows.
    pub(crate) projection: Projection,
    /// The `If-Match` precondition, if any.
    pub(crate) if_match: Option<String>,
}

/// A change as committed, with what its answer needs.
pub(crate) struct Written {
    pub(crate) model: Arc<Model>,
    pub(crate) kind: ResourceKind,
    /// The provider's SCIM base URL (for `meta.location` and references).
    pub(crate) base: String,
    pub(crate) projection: Projection,
    pub(crate) resource: Resource,
    /// Computed values (members, groups) for the answer; `None` when it has no body.
    pub(crate) computed: Option<Computed>,
}

impl Written {
    pub(crate) fn resource_type(&self) -> &ResourceType {
        self.model.get(self.kind)
    }
}

/// How a PATCH is answered (RFC 7644 §3.5.2 allows `200` with the resource or `204`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PatchAnswer {
    /// `204`, no body.
    Minimal,
    /// `200` with the resource (subject to `attributes` / `excludedAttributes`).
    Full,
    /// `200` with the group while it has at most `GROUP_ANSWER_MEMBERS` members, else `204`:
    /// the answer to adding one member never grows with the group.
    FullWhenSmall,
}

/// One resource as read: its body, or only its version when the client's copy is current.
pub(crate) enum Found {
    /// `If-None-Match` named the current version.
    Unchanged(i64),
    Body(Vec<u8>, i64),
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The schema URNs a body names as keys (extension objects).
pub(crate) fn body_urns(body: &Value) -> impl Iterator<Item = &str> {
    body.as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .map(String::as_str)
        .filter(|k| k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")))
}

/// The argon2id hash of a password a request sets, computed before any transaction opens.
async fn hash_password(
    state: &AppState,
    password: Option<String>,
) -> Result<Option<String>, Error> {
    match password {
        None => Ok(None),
        Some(pw) => state
            .verifier
            .hash(pw)
            .await
            .map(Some)
            .map_err(|e| Error::Store(crate::store::Error::Internal(e))),
    }
}

/// The resource `id` of `kind`, rendered with `projection`; or `Unchanged` when
/// `if_none_match` names its version.
pub(crate) async fn get(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    id: String,
    projection: impl FnOnce(&ResourceType) -> Projection,
    if_none_match: Option<String>,
) -> Result<Found, Error> {
    let model = state.model(principal).await?;
    let projection = projection(model.get(kind));
    let base = state.scim_base(&principal.provider_name);
    let pid = principal.provider_id;
    state
        .read(principal, move |c| -> Result<_, Error> {
            let rows = rows::read(c, pid, kind, &id)?;
            let Some(row) = rows.iter().next() else {
                return Err(Error::NotFound(format!("{} {id} not found", kind.name())));
            };
            if if_none_match
                .as_deref()
                .is_some_and(|h| etag_matches(h, row.version))
            {
                return Ok(Found::Unchanged(row.version));
            }
            let mut body = Vec::with_capacity(row.doc.len() + 512);
            let rt = model.get(kind);
            super::push_rows(c, &mut body, (rt, &base), &[row], &projection, b"")?;
            Ok(Found::Body(body, row.version))
        })
        .await
}

/// A body validated against the provider's model (made to know the schemas it names), with
/// the hash of any password it sets that the provider's password policy keeps (`creating`: in a
/// create); `quirks` hears of the non-standard shapes it used.
async fn prepared(
    state: &AppState,
    principal: &Principal,
    (kind, creating): (ResourceKind, bool),
    body: &Value,
    quirks: impl FnOnce(Quirks),
) -> Result<(Arc<Model>, Prepared, Option<String>), Error> {
    let model = state.model_knowing(principal, body_urns(body)).await?;
    let mut prepared = resource::prepare(model.get(kind), body)?;
    quirks(prepared.quirks);
    if !principal.scim_passwords.keeps(creating) {
        // The provider's policy (`--scim-passwords`): validated, then not kept.
        prepared.password = None;
    }
    let hash = hash_password(state, prepared.password.clone()).await?;
    Ok((model, prepared, hash))
}

/// Creates a User or Group from `body`.
pub(crate) async fn create(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    body: &Value,
    ask: impl FnOnce(&Model) -> Ask,
    quirks: impl FnOnce(Quirks),
) -> Result<Written, Error> {
    let (model, prepared, hash) = prepared(state, principal, (kind, true), body, quirks).await?;
    let ask = ask(&model);
    let projection = ask.projection.clone();
    let base = state.scim_base(&principal.provider_name);
    let (in_tx, pid, now) = (base.clone(), principal.provider_id, now());
    let tx_model = model.clone();
    let (resource, computed) = state
        .write(principal, move |c| -> Result<_, Error> {
            let rt = tx_model.get(kind);
            let r = rows::create(c, pid, rt, &prepared, hash.as_deref(), &now)?;
            let with_members = prepared.members.as_ref().is_some_and(|m| !m.is_empty());
            let changed = activity::changed_attributes(
                rt,
                &Map::new(),
                &r.doc,
                prepared.password.is_some(),
                with_members,
            );
            let change = change_of(
                &ask.who,
                (kind, &r, &prepared.name),
                changed,
                Action::Created,
                201,
            );
            activity::record_change(c, pid, &ask.who, &change)?;
            let linked = members::linked_of_new(c, rt, r.seq, &ask.projection)?;
            let computed = render::computed(&in_tx, rt, &linked);
            Ok((r, computed))
        })
        .await?;
    Ok(Written {
        model,
        kind,
        base,
        projection,
        resource,
        computed: Some(computed),
    })
}

/// Replaces the User or Group `id` with `body`.
pub(crate) async fn replace(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    id: String,
    body: &Value,
    ask: impl FnOnce(&Model) -> Ask,
    quirks: impl FnOnce(Quirks),
) -> Result<Written, Error> {
    let (model, prepared, hash) = prepared(state, principal, (kind, false), body, quirks).await?;
    let ask = ask(&model);
    let projection = ask.projection.clone();
    let base = state.scim_base(&principal.provider_name);
    let (in_tx, pid, now) = (base.clone(), principal.provider_id, now());
    let tx_model = model.clone();
    let (resource, computed) = state
        .write(principal, move |c| -> Result<_, Error> {
            let rt = tx_model.get(kind);
            let (hash, if_match) = (hash.as_deref(), ask.if_match.as_deref());
            let replaced = rows::replace(c, pid, rt, &id, &prepared, hash, if_match, &now)?;
            let r = replaced.resource;
            let changed = activity::changed_attributes(
                rt,
                &replaced.before,
                &r.doc,
                prepared.password.is_some(),
                replaced.members_changed,
            );
            let action = activity::action_for(rt, &replaced.before, &r.doc, Action::Replaced);
            let change = change_of(&ask.who, (kind, &r, &prepared.name), changed, action, 200);
            activity::record_change(c, pid, &ask.who, &change)?;
            let computed = super::computed(c, &in_tx, rt, &[r.seq], &ask.projection)?;
            Ok((r, computed))
        })
        .await?;
    Ok(Written {
        model,
        kind,
        base,
        projection,
        resource,
        computed: Some(computed),
    })
}

/// Applies the PATCH `body` to the User or Group `id`; the answer has computed values unless
/// `answer` (or the group's size, for `FullWhenSmall`) says it has no body.
pub(crate) async fn patch(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    id: String,
    body: &Value,
    answer: PatchAnswer,
    ask: impl FnOnce(&Model) -> Ask,
) -> Result<(Written, Quirks), Error> {
    let ops = patch::parse_request(body)?;
    let model = state.model_knowing(principal, patch::urns(&ops)).await?;
    let ask = ask(&model);
    let projection = ask.projection.clone();
    patch::check_count(&ops, state.config.max_patch_operations as usize)?;
    let password = patch::password_in(model.get(kind), &ops);
    let kept = password.filter(|_| principal.scim_passwords.keeps(false));
    let hash = hash_password(state, kept).await?;
    let base = state.scim_base(&principal.provider_name);
    let pid = principal.provider_id;
    // Many operations are applied on a reader first, so that their work does not hold the
    // writer; the writer uses that plan unless the resource changed in between.
    let plan = if ops.len() > PLAN_ON_A_READER {
        let (model, id, ops, hash) = (model.clone(), id.clone(), ops.clone(), hash.clone());
        let if_match = ask.if_match.clone();
        let plan = state
            .read(principal, move |c| {
                let rt = model.get(kind);
                let (hash, if_match) = (hash.as_deref(), if_match.as_deref());
                rows::read_and_plan_patch(c, pid, rt, &id, &ops, hash, if_match)
            })
            .await?;
        Some(plan)
    } else {
        None
    };
    let (tx_model, in_tx) = (model.clone(), base.clone());
    let now = now();
    let (resource, computed, quirks) = state
        .write(principal, move |tx| -> Result<_, Error> {
            let rt = tx_model.get(kind);
            let patched = rows::patch(
                tx,
                pid,
                rt,
                &id,
                &ops,
                hash.as_deref(),
                ask.if_match.as_deref(),
                &now,
                &in_tx,
                plan.as_ref(),
            )?;
            let seq = patched.resource.seq;
            let full = match answer {
                PatchAnswer::Minimal => false,
                PatchAnswer::Full => true,
                PatchAnswer::FullWhenSmall => members::at_most(tx, seq, GROUP_ANSWER_MEMBERS)?,
            };
            let change = patch_change(rt, &patched, hash.is_some(), &ask.who, full);
            activity::record_change(tx, pid, &ask.who, &change)?;
            let computed = if full {
                Some(super::computed(tx, &in_tx, rt, &[seq], &ask.projection)?)
            } else {
                None
            };
            Ok((patched.resource, computed, patched.quirks))
        })
        .await?;
    let written = Written {
        model,
        kind,
        base,
        projection,
        resource,
        computed,
    };
    Ok((written, quirks))
}

/// The activity record of a PATCH: adding or removing members alone is named as such.
fn patch_change<'p>(
    rt: &ResourceType,
    patched: &'p rows::Patched,
    password_set: bool,
    who: &activity::Context,
    full: bool,
) -> Change<'p> {
    let r = &patched.resource;
    let m = patched.members;
    let changed = activity::changed_attributes(rt, &patched.before, &r.doc, password_set, m.any());
    let action = match (changed.len(), m.added, m.removed, m.replaced) {
        (1, 1.., 0, false) => Action::MemberAdded,
        (1, 0, 1.., false) => Action::MemberRemoved,
        _ => activity::action_for(rt, &patched.before, &r.doc, Action::Patched),
    };
    let detail = m.any().then(|| {
        format!(
            "members: {} added, {} removed{}",
            m.added,
            m.removed,
            if m.replaced { ", list replaced" } else { "" }
        )
    });
    let name = r
        .doc
        .get(rt.name_attribute())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = if full { 200 } else { 204 };
    Change {
        detail,
        ..change_of(who, (rt.kind(), r, name), changed, action, status)
    }
}

/// The activity record of a change that left `r` as it is now: the attributes that changed,
/// with their new values when the provider's records carry values.
fn change_of<'r>(
    who: &activity::Context,
    (kind, r, name): (ResourceKind, &'r Resource, &'r str),
    changed: Vec<String>,
    action: Action,
    status: u16,
) -> Change<'r> {
    Change {
        kind,
        id: &r.id,
        name,
        external_id: r
            .doc
            .get(crate::scim::schema::EXTERNAL_ID.name)
            .and_then(Value::as_str),
        action,
        values: who.values.then(|| activity::values_of(&r.doc, &changed)),
        changed,
        version: r.version,
        detail: None,
        status,
    }
}

/// Deletes the User or Group `id` (its memberships go with it).
pub(crate) async fn delete(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    id: String,
    ask: Ask,
) -> Result<(), Error> {
    let pid = principal.provider_id;
    let model = state.model(principal).await?;
    state
        .write(principal, move |c| -> Result<_, Error> {
            let old = rows::delete(c, pid, kind, &id, ask.if_match.as_deref())?;
            let name = old
                .doc
                .get(model.get(kind).name_attribute())
                .and_then(Value::as_str)
                .unwrap_or_default();
            let change = Change {
                kind,
                id: &old.id,
                name,
                external_id: old
                    .doc
                    .get(crate::scim::schema::EXTERNAL_ID.name)
                    .and_then(Value::as_str),
                action: Action::Deleted,
                changed: Vec::new(),
                values: None,
                version: old.version,
                detail: None,
                status: 204,
            };
            activity::record_change(c, pid, &ask.who, &change)?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::app::caller;
    use crate::app::credentials::{self, Issue, Minted};
    use crate::config::RawConfig;
    use crate::scim::ProviderKind;
    use crate::store::{OpenMode, Store, activity, providers};

    /// A core over a database file with one provider and a token, and that token's caller.
    async fn core() -> (tempfile::TempDir, AppState, Principal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store =
            Store::open(&path, OpenMode::CreateIfMissing, Duration::from_secs(5), 2).unwrap();
        let (minted, secret) = Minted::here().unwrap();
        store
            .write(move |c| {
                let p = providers::insert(c, "idp", "", ProviderKind::Generic, 0)?;
                let plan = Issue {
                    description: String::new(),
                    read_only: false,
                    created: 0,
                    expires: i64::MAX / 2,
                };
                credentials::create(c, &minted, p.id, &plan)
            })
            .await
            .unwrap();
        let config = RawConfig::defaults().validate().unwrap();
        let state = AppState::new(config, store, "http://scimd.test".into());
        let header = format!("Bearer {}", secret.expose());
        let (principal, _) = caller::authenticate(&state, "idp", Some(&header), None)
            .await
            .unwrap();
        (dir, state, principal)
    }

    fn ask(request: &str) -> impl FnOnce(&Model) -> Ask {
        let who = activity::Context {
            request_id: request.into(),
            ..Default::default()
        };
        move |_| Ask {
            who,
            projection: Projection::default(),
            if_match: None,
        }
    }

    async fn records(state: &AppState) -> Vec<activity::Record> {
        let q = activity::Query {
            limit: 100,
            ..Default::default()
        };
        state
            .store
            .run(move |c| activity::query(c, &q))
            .await
            .unwrap()
    }

    /// Each use case runs without HTTP, and each change leaves its activity record, written in
    /// the change's own transaction.
    #[tokio::test]
    async fn changes_are_recorded_by_the_use_cases_themselves() {
        let (_dir, state, me) = core().await;
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": "ada", "active": true});
        let mut quirks = Quirks::default();
        let made = create(&state, &me, ResourceKind::User, &user, ask("r1"), |q| {
            quirks = q
        })
        .await
        .unwrap();
        assert!(quirks.is_empty());
        let id = made.resource.id.clone();
        assert_eq!(made.base, "http://scimd.test/scim/v2/idp");

        let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "replace", "path": "active", "value": false}]});
        let (patched, _) = patch(
            &state,
            &me,
            ResourceKind::User,
            id.clone(),
            &off,
            PatchAnswer::Minimal,
            ask("r2"),
        )
        .await
        .unwrap();
        assert!(
            patched.computed.is_none(),
            "a minimal answer computes nothing"
        );

        let found = get(
            &state,
            &me,
            ResourceKind::User,
            id.clone(),
            |_| Projection::default(),
            None,
        )
        .await
        .unwrap();
        let Found::Body(body, version) = found else {
            panic!("no body")
        };
        assert_eq!(version, patched.resource.version);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["active"], json!(false));
        let etag = format!("W/\"{version}\"");
        let unchanged = get(
            &state,
            &me,
            ResourceKind::User,
            id.clone(),
            |_| Projection::default(),
            Some(etag),
        )
        .await
        .unwrap();
        assert!(matches!(unchanged, Found::Unchanged(v) if v == version));

        let gone = |r: &str| Ask {
            who: activity::Context {
                request_id: r.into(),
                ..Default::default()
            },
            projection: Projection::default(),
            if_match: Some("W/\"1\"".into()),
        };
        // A stale If-Match refuses the delete, and nothing is recorded for it.
        let refused = delete(&state, &me, ResourceKind::User, id.clone(), gone("r3")).await;
        assert!(
            matches!(
                refused,
                Err(Error::Store(crate::store::Error::VersionMismatch(_)))
            ),
            "{refused:?}"
        );
        let mut fresh = gone("r4");
        fresh.if_match = None;
        delete(&state, &me, ResourceKind::User, id.clone(), fresh)
            .await
            .unwrap();

        let seen: Vec<_> = records(&state)
            .await
            .into_iter()
            .map(|r| (r.request_id.unwrap_or_default(), r.action))
            .collect();
        assert_eq!(
            seen,
            [
                ("r1".to_string(), "created".to_string()),
                ("r2".to_string(), "deactivated".to_string()),
                ("r4".to_string(), "deleted".to_string()),
            ]
        );
    }
}
