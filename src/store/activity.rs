//! The `activity` table: what each identity provider did and what scimd answered. A change's
//! record is written by the same transaction as the change, so a committed change always has
//! one and a rolled-back one has none.

use std::collections::HashMap;

use crate::scim::events::Op;
use crate::scim::schema::ResourceType;
use rusqlite::{Connection, params, params_from_iter, types::Value as Sql};
use serde::Serialize;
use serde_json::{Map, Value};

use super::Result;
use crate::scim::ResourceKind;

/// Who asked, for a record: the token, the request, and whether values may be recorded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) token_id: String,
    pub(crate) request_id: String,
    pub(crate) method: String,
    pub(crate) path: String,
    /// The provider's `activity_values` setting: record the new values of what changed.
    pub(crate) values: bool,
}

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Created,
    Replaced,
    Patched,
    /// `active` went from true (or absent) to false.
    Deactivated,
    /// `active` went from false to true (or absent).
    Reactivated,
    Deleted,
    MemberAdded,
    MemberRemoved,
    /// A request answered 4xx or 5xx after authentication.
    Refused,
    /// Refused authentications of one token id (or of unknown tokens) in one minute.
    AuthFailed,
    /// Entra's Test Connection: a lookup of a random GUID that finds nothing.
    ConnectionTest,
    /// A person signed in to the console with the identity provider.
    SignedIn,
    /// A sign-in with the identity provider that let nobody in.
    SignInRefused,
    AppPasswordCreated,
    AppPasswordRevoked,
    /// A change feed's receiver has not taken its events for `feed_failing_after`.
    FeedFailing,
    /// A failing change feed delivers again.
    FeedRecovered,
}

impl Action {
    /// Every action, in the order a filter lists them.
    pub(crate) const ALL: [Action; 17] = [
        Action::Created,
        Action::Replaced,
        Action::Patched,
        Action::Deactivated,
        Action::Reactivated,
        Action::Deleted,
        Action::MemberAdded,
        Action::MemberRemoved,
        Action::Refused,
        Action::AuthFailed,
        Action::ConnectionTest,
        Action::SignedIn,
        Action::SignInRefused,
        Action::AppPasswordCreated,
        Action::AppPasswordRevoked,
        Action::FeedFailing,
        Action::FeedRecovered,
    ];

    /// The change feed's operation for a change of this action (none for the others).
    pub(crate) fn feed_op(self) -> Option<Op> {
        Some(match self {
            Action::Created => Op::Create,
            Action::Replaced => Op::Replace,
            Action::Patched => Op::Patch,
            Action::Deleted => Op::Delete,
            Action::Reactivated => Op::Activate,
            Action::Deactivated => Op::Deactivate,
            Action::MemberAdded | Action::MemberRemoved => Op::Members,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Replaced => "replaced",
            Action::Patched => "patched",
            Action::Deactivated => "deactivated",
            Action::Reactivated => "reactivated",
            Action::Deleted => "deleted",
            Action::MemberAdded => "member added",
            Action::MemberRemoved => "member removed",
            Action::Refused => "refused",
            Action::AuthFailed => "auth failed",
            Action::ConnectionTest => "connection test",
            Action::SignedIn => "signed in",
            Action::SignInRefused => "sign-in refused",
            Action::AppPasswordCreated => "application password created",
            Action::AppPasswordRevoked => "application password revoked",
            Action::FeedFailing => "feed failing",
            Action::FeedRecovered => "feed recovered",
        }
    }
}

/// One change, as the store use cases report it.
#[derive(Debug, Clone)]
pub(crate) struct Change<'a> {
    pub(crate) kind: ResourceKind,
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) external_id: Option<&'a str>,
    pub(crate) action: Action,
    pub(crate) changed: Vec<String>,
    pub(crate) version: i64,
    /// The new values of what changed (recorded only when the context allows it).
    pub(crate) values: Option<Map<String, Value>>,
    pub(crate) detail: Option<String>,
    pub(crate) status: u16,
}

/// The attribute paths whose values differ between two documents: top-level attributes, and
/// the attributes inside extension objects as `urn:...:attr`. Pure, in key order of `new` then
/// of what `old` alone has.
pub(crate) fn changed_paths(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Map::new();
    let mut visit = |key: &String, a: Option<&Value>, b: Option<&Value>| {
        if a == b {
            return;
        }
        let is_extension = key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
        match (is_extension, a, b) {
            (true, a, b) => {
                let a = a.and_then(Value::as_object).unwrap_or(&empty);
                let b = b.and_then(Value::as_object).unwrap_or(&empty);
                for k in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
                    if a.get(k) != b.get(k) {
                        out.push(format!("{key}:{k}"));
                    }
                }
            }
            _ => out.push(key.clone()),
        }
    };
    for (k, v) in new {
        visit(k, old.get(k), Some(v));
    }
    for (k, v) in old.iter().filter(|(k, _)| !new.contains_key(*k)) {
        visit(k, Some(v), None);
    }
    out
}

/// What a change record names as changed: `changed_paths`, then the write-only secret when
/// one was set (it is not in the document) and the attribute kept as membership rows when
/// those changed, named as the model names them.
pub(crate) fn changed_attributes(
    rt: &ResourceType,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    secret_set: bool,
    links_changed: bool,
) -> Vec<String> {
    let mut changed = changed_paths(old, new);
    if secret_set && let Some(a) = rt.with_role(crate::scim::schema::Role::Secret) {
        changed.push(a.name.into());
    }
    if links_changed && let Some(a) = rt.linked() {
        changed.push(a.name.into());
    }
    changed
}

/// `Deactivated` or `Reactivated` when the resource's activation (`Role::Active`) changed
/// that way, else `otherwise`.
pub(crate) fn action_for(
    rt: &ResourceType,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    otherwise: Action,
) -> Action {
    match (rt.is_active(old), rt.is_active(new)) {
        (true, false) => Action::Deactivated,
        (false, true) => Action::Reactivated,
        _ => otherwise,
    }
}

/// The new values of `paths` in `doc` (for providers that record values).
pub(crate) fn values_of(doc: &Map<String, Value>, paths: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for p in paths {
        let v = match doc.get(p) {
            Some(v) => v.clone(),
            None => match p.rsplit_once(':') {
                Some((urn, attr)) => doc
                    .get(urn)
                    .and_then(|e| e.get(attr))
                    .cloned()
                    .unwrap_or(Value::Null),
                None => Value::Null,
            },
        };
        out.insert(p.clone(), v);
    }
    out
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Records a change; called inside the change's transaction.
pub(crate) fn record_change(
    c: &Connection,
    provider_id: i64,
    ctx: &Context,
    change: &Change<'_>,
) -> Result<()> {
    record_change_at(c, provider_id, ctx, change, now_ms())
}

/// `record_change` at `at` (unix milliseconds). When the provider has a change feed, the
/// record is the change's event too: it carries the event's number and the externalId.
fn record_change_at(
    c: &Connection,
    provider_id: i64,
    ctx: &Context,
    change: &Change<'_>,
    at: i64,
) -> Result<()> {
    let values = match (&change.values, ctx.values) {
        (Some(v), true) => Some(Value::Object(v.clone()).to_string()),
        _ => None,
    };
    let changed = serde_json::to_string(&change.changed).unwrap_or_else(|_| "[]".into());
    let feed_seq = match change.action.feed_op() {
        Some(_) => super::feeds::next_number(c, provider_id)?,
        None => None,
    };
    c.prepare_cached(
        "INSERT INTO activity (at, provider_id, token_id, request_id, method, path, kind,
                               resource_id, name, action, changed, version, status, detail,
                               doc_values, feed_seq, external_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        at,
        provider_id,
        ctx.token_id,
        ctx.request_id,
        ctx.method,
        ctx.path,
        change.kind.name(),
        change.id,
        change.name,
        change.action.as_str(),
        changed,
        change.version,
        change.status,
        change.detail,
        values,
        feed_seq,
        feed_seq.and(change.external_id),
    ])?;
    if let Some(n) = feed_seq {
        super::feeds::numbered(provider_id, n);
    }
    Ok(())
}

/// What a person did at the console (signed in, made or revoked an application password),
/// or an admin did to a person's application password.
pub(crate) struct PersonRecord<'a> {
    pub(crate) action: Action,
    pub(crate) user_id: &'a str,
    pub(crate) user_name: &'a str,
    /// The application password concerned (shown where a token is).
    pub(crate) credential: &'a str,
    pub(crate) client: Option<String>,
    pub(crate) detail: String,
}

pub(crate) fn record_person(c: &Connection, provider_id: i64, r: &PersonRecord<'_>) -> Result<()> {
    let status = match r.action {
        Action::SignInRefused => 403,
        _ => 200,
    };
    let detail = match (&r.client, r.detail.is_empty()) {
        (Some(ip), true) => format!("from {ip}"),
        (Some(ip), false) => format!("{} (from {ip})", r.detail),
        (None, _) => r.detail.clone(),
    };
    c.prepare_cached(
        "INSERT INTO activity (at, provider_id, token_id, method, path, kind, resource_id, name,
                               action, status, detail)
         VALUES (?1, ?2, nullif(?3, ''), 'CONSOLE', '/me', 'User', nullif(?4, ''),
                 nullif(?5, ''), ?6, ?7, nullif(?8, ''))",
    )?
    .execute(params![
        now_ms(),
        provider_id,
        r.credential,
        r.user_id,
        r.user_name,
        r.action.as_str(),
        status,
        detail,
    ])?;
    Ok(())
}

/// A change feed that turned failing (`status` 502, what its receiver last answered in
/// `detail`) or delivers again (200): method `FEED`, path `/feeds/<name>`, left out of the
/// provider's request and error figures like the console's records.
pub(crate) fn record_feed(
    c: &Connection,
    provider_id: i64,
    feed: &str,
    action: Action,
    detail: &str,
) -> Result<()> {
    let status = match action {
        Action::FeedFailing => 502,
        _ => 200,
    };
    c.prepare_cached(
        "INSERT INTO activity (at, provider_id, method, path, action, status, detail)
         VALUES (?1, ?2, 'FEED', ?3, ?4, ?5, nullif(?6, ''))",
    )?
    .execute(params![
        now_ms(),
        provider_id,
        format!("/feeds/{feed}"),
        action.as_str(),
        status,
        detail
    ])?;
    Ok(())
}

/// A refused request (4xx or 5xx after authentication), or a connection test.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) scim_type: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) body_bytes: Option<i64>,
    /// The resource the request named, when its path names one.
    pub(crate) kind: Option<ResourceKind>,
    pub(crate) resource_id: Option<String>,
    pub(crate) connection_test: bool,
}

pub(crate) fn record_refusal(
    c: &Connection,
    provider_id: i64,
    ctx: &Context,
    r: &Refusal,
) -> Result<()> {
    let action = match r.connection_test {
        true => Action::ConnectionTest,
        false => Action::Refused,
    };
    c.prepare_cached(
        "INSERT INTO activity (at, provider_id, token_id, request_id, method, path, kind,
                               resource_id, action, status, scim_type, detail, body_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        now_ms(),
        provider_id,
        ctx.token_id,
        ctx.request_id,
        ctx.method,
        ctx.path,
        r.kind.map(ResourceKind::name),
        r.resource_id,
        action.as_str(),
        r.status,
        r.scim_type,
        r.detail,
        r.body_bytes,
    ])?;
    Ok(())
}

/// Refused authentications of one interval, as counted: (provider name, token id as presented,
/// refused with 401, refused with 429). A token id that is not one of the provider's tokens is
/// counted with the provider's unknown tokens (`token_id` NULL), so the rows an interval adds
/// are bounded by the provider's real tokens whatever ids a flood makes up; providers that do
/// not exist are skipped. Returns the rows written.
pub(crate) fn record_auth_failures(
    c: &Connection,
    counted: &[(String, String, u64, u64)],
) -> Result<usize> {
    use std::collections::BTreeMap;
    let mut known = c.prepare_cached(
        "SELECT 1 FROM credentials t JOIN providers p ON p.id = t.provider_id
         WHERE t.id = ?1 AND t.kind = 'scim' AND p.name = ?2",
    )?;
    let mut rows: BTreeMap<(String, Option<String>), (u64, u64)> = BTreeMap::new();
    for (provider, token, unauthorized, throttled) in counted {
        let token = known
            .exists(params![token, provider])?
            .then(|| token.clone());
        let e = rows.entry((provider.clone(), token)).or_default();
        e.0 += unauthorized;
        e.1 += throttled;
    }
    let mut st = c.prepare_cached(
        "INSERT INTO activity (at, provider_id, token_id, action, status, detail, count)
         SELECT ?1, id, ?3, ?4, ?5, ?6, ?7 FROM providers WHERE name = ?2",
    )?;
    let at = now_ms();
    let mut n = 0;
    for ((provider, token), (unauthorized, throttled)) in rows {
        for (status, count, detail) in [
            (
                401,
                unauthorized,
                "refused: missing, malformed, wrong, expired or revoked token",
            ),
            (
                429,
                throttled,
                "refused: too many new secrets for this token id from one address",
            ),
        ] {
            if count > 0 {
                n += st.execute(params![
                    at,
                    provider,
                    token,
                    Action::AuthFailed.as_str(),
                    status,
                    match &token {
                        Some(_) => detail.to_string(),
                        None => format!("{detail} (tokens this provider does not have)"),
                    },
                    count as i64
                ])?;
            }
        }
    }
    Ok(n)
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Record {
    pub(crate) seq: i64,
    /// Unix milliseconds.
    pub(crate) at: i64,
    pub(crate) provider: String,
    pub(crate) token_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) resource_type: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) action: String,
    pub(crate) changed: Vec<String>,
    pub(crate) version: Option<i64>,
    pub(crate) status: i64,
    pub(crate) scim_type: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) body_bytes: Option<i64>,
    pub(crate) count: i64,
    pub(crate) values: Option<Value>,
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub(crate) provider: Option<String>,
    /// Unix milliseconds, inclusive.
    pub(crate) since: Option<i64>,
    pub(crate) until: Option<i64>,
    pub(crate) failed: bool,
    pub(crate) resource_id: Option<String>,
    /// A user's userName or a group's displayName, regardless of case.
    pub(crate) name: Option<(ResourceKind, String)>,
    /// Only records after this one (for following).
    pub(crate) after_seq: Option<i64>,
    /// Only this record.
    pub(crate) seq: Option<i64>,
    /// Only records of this action (`Action::as_str`).
    pub(crate) action: Option<String>,
    /// Only records answered with this status.
    pub(crate) status: Option<i64>,
    /// Only among the newest this many records of the log, or of those up to `before_seq` (a
    /// resource's records, read a window of the log at a time).
    pub(crate) window: Option<i64>,
    /// Only this record and those before it.
    pub(crate) before_seq: Option<i64>,
    pub(crate) limit: usize,
}

impl Query {
    /// Whether the records are read by key (following, one record, a resource's records)
    /// rather than from a provider's time index.
    fn by_key(&self) -> bool {
        self.after_seq.is_some()
            || self.seq.is_some()
            || self.before_seq.is_some()
            || self.resource_id.is_some()
            || self.name.is_some()
    }
}

/// Records matching `q`, oldest first: the last `limit` of them, or with `after_seq` the first
/// `limit` after it.
///
/// Each read walks an index range, never sorts the log: one provider's newest records are the
/// end of its `(provider_id, at)` range; every provider's newest are the newest of each
/// provider's, merged here; records that are not changes (the failed-only view) have an index
/// of their own; following reads the key range after a record. A resource's records have no
/// index (one would cost every change a page write): they are found by reading back from the
/// newest record, as far as `window` allows.
pub(crate) fn query(c: &Connection, q: &Query) -> Result<Vec<Record>> {
    if q.provider.is_some() || q.by_key() {
        return query_one(c, q);
    }
    let providers: Vec<String> = c
        .prepare_cached("SELECT name FROM providers")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut all = Vec::new();
    for p in providers {
        all.extend(query_one(
            c,
            &Query {
                provider: Some(p),
                ..q.clone()
            },
        )?);
    }
    all.sort_by_key(|r| (r.at, r.seq));
    let skip = all.len().saturating_sub(q.limit.max(1));
    all.drain(..skip);
    Ok(all)
}

/// The newest record's key (0 for an empty log).
pub(crate) fn last_seq(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT coalesce(max(seq), 0) FROM activity")?
            .query_row([], |r| r.get(0))?,
    )
}

fn query_one(c: &Connection, q: &Query) -> Result<Vec<Record>> {
    let mut cond = vec!["1".to_string()];
    let mut args: Vec<Sql> = Vec::new();
    let bind = |v: Sql, args: &mut Vec<Sql>| {
        args.push(v);
        format!("?{}", args.len())
    };
    // A resource's records and following read by key: the provider's index would read every
    // one of its records in time order to find them.
    let by_key = q.by_key();
    let plus = if by_key { "+" } else { "" };
    if let Some(p) = &q.provider {
        let b = bind(Sql::Text(p.clone()), &mut args);
        cond.push(format!(
            "{plus}a.provider_id = (SELECT id FROM providers WHERE name = {b})"
        ));
    }
    if let Some(t) = q.since {
        let b = bind(Sql::Integer(t), &mut args);
        cond.push(format!("{plus}a.at >= {b}"));
    }
    if let Some(t) = q.until {
        let b = bind(Sql::Integer(t), &mut args);
        cond.push(format!("{plus}a.at <= {b}"));
    }
    if q.failed {
        // Refused LDAP binds carry LDAP's own code (49), below HTTP's errors. No change is a
        // failure, which lets the index of other records answer.
        cond.push(format!(
            "(a.status >= 400 OR a.action = 'auth failed') AND a.action NOT IN {CHANGES}"
        ));
    }
    if let Some(id) = &q.resource_id {
        let b = bind(Sql::Text(id.clone()), &mut args);
        cond.push(format!("a.resource_id = {b}"));
    }
    if let Some((kind, name)) = &q.name {
        // Every record of the resources that had this name at some point.
        let k = bind(Sql::Text(kind.name().into()), &mut args);
        let n = bind(Sql::Text(name.clone()), &mut args);
        cond.push(format!(
            "a.resource_id IN (SELECT resource_id FROM activity
                               WHERE kind = {k} AND name = {n} COLLATE NOCASE)"
        ));
    }
    let top = match q.before_seq {
        Some(s) => {
            let b = bind(Sql::Integer(s), &mut args);
            cond.push(format!("a.seq <= {b}"));
            b
        }
        None => "(SELECT coalesce(max(seq), 0) FROM activity)".to_string(),
    };
    if let Some(w) = q.window {
        let b = bind(Sql::Integer(w), &mut args);
        cond.push(format!("a.seq > {top} - {b}"));
    }
    if let Some(s) = q.after_seq {
        let b = bind(Sql::Integer(s), &mut args);
        cond.push(format!("a.seq > {b}"));
    }
    if let Some(s) = q.seq {
        let b = bind(Sql::Integer(s), &mut args);
        cond.push(format!("a.seq = {b}"));
    }
    if let Some(a) = &q.action {
        let b = bind(Sql::Text(a.clone()), &mut args);
        cond.push(format!("a.action = {b}"));
    }
    if let Some(s) = q.status {
        let b = bind(Sql::Integer(s), &mut args);
        cond.push(format!("a.status = {b}"));
    }
    let limit = bind(Sql::Integer(q.limit.max(1) as i64), &mut args);
    // Following reads forward from a position; otherwise the newest `limit`, shown oldest first.
    let (order, outer) = match (q.after_seq, by_key) {
        (Some(_), _) => ("a.seq ASC", "seq ASC"),
        (None, true) => ("a.seq DESC", "at ASC, seq ASC"),
        (None, false) => ("a.at DESC, a.seq DESC", "at ASC, seq ASC"),
    };
    let sql = format!(
        "SELECT * FROM (
           SELECT a.seq, a.at, p.name, a.token_id, a.request_id, a.method, a.path, a.kind,
                  a.resource_id, a.name, a.action, a.changed, a.version, a.status, a.scim_type,
                  a.detail, a.body_bytes, a.count, a.doc_values
           FROM activity a JOIN providers p ON p.id = a.provider_id
           WHERE {} ORDER BY {order} LIMIT {limit})
         ORDER BY {outer}",
        cond.join(" AND ")
    );
    let mut st = c.prepare(&sql)?;
    let rows = st
        .query_map(params_from_iter(args), |r| {
            let changed: Option<String> = r.get(11)?;
            let values: Option<String> = r.get(18)?;
            Ok(Record {
                seq: r.get(0)?,
                at: r.get(1)?,
                provider: r.get(2)?,
                token_id: r.get(3)?,
                request_id: r.get(4)?,
                method: r.get(5)?,
                path: r.get(6)?,
                resource_type: r.get(7)?,
                resource_id: r.get(8)?,
                name: r.get(9)?,
                action: r.get(10)?,
                changed: changed
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or_default(),
                version: r.get(12)?,
                status: r.get(13)?,
                scim_type: r.get(14)?,
                detail: r.get(15)?,
                body_bytes: r.get(16)?,
                count: r.get(17)?,
                values: values.and_then(|v| serde_json::from_str(&v).ok()),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes records older than `before` (unix milliseconds) and, per provider, all but the
/// newest `keep` changes and all but the newest `keep` other records (refusals, refused
/// authentications, connection tests): the two are capped apart, so a flood of refusals never
/// pushes a change out. A record that is a change feed's event stays until the feed retention
/// lets go of the event (`feeds::prune`). At most `batch` rows per call, so the writer is never
/// held long; returns how many went (call again while it returns `batch`).
pub(crate) fn prune(c: &Connection, before: i64, keep: i64, batch: usize) -> Result<usize> {
    let providers: Vec<i64> = c
        .prepare_cached("SELECT id FROM providers")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut old = c.prepare_cached(
        "DELETE FROM activity WHERE seq IN
           (SELECT seq FROM activity WHERE provider_id = ?1 AND at < ?2 AND feed_seq IS NULL
            ORDER BY at LIMIT ?3)",
    )?;
    let over = |changes: bool| {
        let which = match changes {
            true => format!("action IN {CHANGES}"),
            false => format!("action NOT IN {CHANGES}"),
        };
        format!(
            "DELETE FROM activity WHERE seq IN
               (SELECT seq FROM activity WHERE provider_id = ?1 AND {which} AND feed_seq IS NULL
                  AND (at, seq) <= (SELECT at, seq FROM activity WHERE provider_id = ?1
                                    AND {which}
                                    ORDER BY at DESC, seq DESC LIMIT 1 OFFSET ?2)
                ORDER BY at LIMIT ?3)"
        )
    };
    let mut over_changes = c.prepare_cached(&over(true))?;
    let mut over_others = c.prepare_cached(&over(false))?;
    let mut n = 0;
    for p in providers {
        if n < batch {
            n += old.execute(params![p, before, (batch - n) as i64])?;
        }
        for st in [&mut over_others, &mut over_changes] {
            if n < batch {
                n += st.execute(params![p, keep, (batch - n) as i64])?;
            }
        }
        if n >= batch {
            break;
        }
    }
    c.prepare_cached("DELETE FROM provider_traffic WHERE hour < ?1")?
        .execute([before / 3_600_000])?;
    if n > 0 {
        super::text_index::forget_deleted_records(c)?;
    }
    Ok(n)
}

/// Refused LDAP binds of one interval: (provider name, the name bound as, how many, what the
/// record says). One record each, with its count; providers that do not exist are skipped.
/// Returns the rows written.
pub(crate) fn record_bind_refusals(
    c: &Connection,
    counted: &[(String, String, u64, String)],
) -> Result<usize> {
    let mut st = c.prepare_cached(
        "INSERT INTO activity (at, provider_id, method, path, action, status, detail, count)
         SELECT ?1, id, 'LDAP BIND', ?3, ?4, 49, ?5, ?6 FROM providers WHERE name = ?2",
    )?;
    let at = now_ms();
    let mut n = 0;
    for (provider, name, count, detail) in counted {
        n += st.execute(params![
            at,
            provider,
            name,
            Action::AuthFailed.as_str(),
            detail,
            *count as i64
        ])?;
    }
    Ok(n)
}

/// Adds the requests a server counted since its last flush (provider name -> (count, last
/// request in unix milliseconds)).
pub(crate) fn add_traffic(c: &Connection, counted: &[(String, u64, i64)]) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO provider_traffic (provider_id, hour, requests, last_at)
         SELECT id, ?2 / 3600000, ?3, ?2 FROM providers WHERE name = ?1
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests,
                                   last_at = max(last_at, excluded.last_at)",
    )?;
    for (provider, n, last) in counted {
        st.execute(params![provider, last, *n as i64])?;
    }
    Ok(())
}

/// What `provider list` and `provider show` say about a provider's recent activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Status {
    /// Unix milliseconds.
    pub(crate) last_request: Option<i64>,
    pub(crate) last_write: Option<i64>,
    pub(crate) last_error: Option<(i64, String)>,
    pub requests_24h: i64,
    pub writes_24h: i64,
    pub errors_24h: i64,
}

const CHANGES: &str = "('created','replaced','patched','deactivated','reactivated','deleted',\
                       'member added','member removed')";

/// A provider's newest error (?1): errors are never changes, and saying so lets the index of
/// other records answer.
fn last_error_sql() -> String {
    format!(
        "SELECT at, status || ' ' || coalesce(method || ' ' || path || ': ', '') ||
                coalesce(detail, '')
         FROM activity WHERE provider_id = ?1 AND action NOT IN {CHANGES}
           AND status >= 400 AND coalesce(method, '') NOT IN ('CONSOLE', 'FEED')
         ORDER BY at DESC LIMIT 1"
    )
}

/// A provider's (?1) changes and errors from ?2 to before ?3. The changes are its records less
/// the others: two counts over index ranges, where counting the changes themselves reads each
/// of them.
fn day_counts_sql() -> String {
    format!(
        "SELECT (SELECT count(*) FROM activity WHERE provider_id = ?1 AND at >= ?2 AND at < ?3)
                - (SELECT count(*) FROM activity WHERE provider_id = ?1 AND at >= ?2 AND at < ?3
                     AND action NOT IN {CHANGES}),
                (SELECT coalesce(sum(count), 0) FROM activity
                 WHERE provider_id = ?1 AND at >= ?2 AND at < ?3 AND action NOT IN {CHANGES}
                   AND status >= 400 AND coalesce(method, '') NOT IN ('CONSOLE', 'FEED'))"
    )
}

const HOUR_MS: i64 = 3_600_000;
/// An hour that ended this long ago gets no more records (the counters' flushes write records
/// dated up to an `activity_interval` back): its counts can be kept.
const SETTLED_MS: i64 = 15 * 60_000;

/// Changes and errors of whole hours long past, per provider (its id and creation, so a new
/// provider that gets a removed one's id starts afresh): the 24-hour figures of the dashboard
/// and a provider's page count those hours once, and only the ends of the day each time. At a
/// million records a day, counting the whole day took 25 ms a page.
#[derive(Default)]
pub(crate) struct HourCounts(std::sync::Mutex<HashMap<HourKey, (i64, i64)>>);

/// A provider's id and creation (unix seconds), and an hour (since the epoch).
type HourKey = (i64, i64, i64);

impl HourCounts {
    fn get(&self, key: HourKey) -> Option<(i64, i64)> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
    }

    /// Keeps `counts`, and forgets hours over a day old (bounded: 25 per provider).
    fn put(&self, key: HourKey, counts: (i64, i64), oldest_hour: i64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|k, _| k.2 >= oldest_hour);
        m.insert(key, counts);
    }
}

/// A provider's changes and errors from `from` to before `to` (unix ms), whole settled hours
/// from `hours` where it has them.
fn counts_between(
    c: &Connection,
    provider: (i64, i64),
    (from, to): (i64, i64),
    now_ms: i64,
    hours: Option<&HourCounts>,
) -> Result<(i64, i64)> {
    let mut st = c.prepare_cached(&day_counts_sql())?;
    let mut count = |a: i64, b: i64| -> Result<(i64, i64)> {
        Ok(st.query_row(params![provider.0, a, b], |r| Ok((r.get(0)?, r.get(1)?)))?)
    };
    let Some(hours) = hours else {
        return count(from, to);
    };
    let first_whole = (from + HOUR_MS - 1).div_euclid(HOUR_MS);
    let (mut changes, mut errors) = (0, 0);
    let mut add = |(a, b): (i64, i64)| {
        changes += a;
        errors += b;
    };
    // The start of the window up to the first whole hour, counted each time.
    add(count(from, (first_whole * HOUR_MS).min(to))?);
    let mut hour = first_whole;
    while (hour + 1) * HOUR_MS <= to && (hour + 1) * HOUR_MS <= now_ms - SETTLED_MS {
        let key = (provider.0, provider.1, hour);
        let counts = match hours.get(key) {
            Some(c) => c,
            None => {
                let counted = count(hour * HOUR_MS, (hour + 1) * HOUR_MS)?;
                hours.put(key, counted, first_whole - 1);
                counted
            }
        };
        add(counts);
        hour += 1;
    }
    // The rest, not settled yet.
    if hour * HOUR_MS < to {
        add(count(hour * HOUR_MS, to)?);
    }
    Ok((changes, errors))
}

pub(crate) fn status(
    c: &Connection,
    provider: (i64, i64),
    now_ms: i64,
    hours: Option<&HourCounts>,
) -> Result<Status> {
    let provider_id = provider.0;
    let day_ago = now_ms - 86_400_000;
    let (requests_24h, last_traffic): (i64, Option<i64>) = c
        .prepare_cached(
            "SELECT coalesce(sum(requests), 0), max(last_at) FROM provider_traffic
             WHERE provider_id = ?1 AND hour >= ?2",
        )?
        .query_row(params![provider_id, day_ago / 3_600_000], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let last_any: Option<i64> = c
        .prepare_cached(
            "SELECT at FROM activity WHERE provider_id = ?1 AND action != 'auth failed'
               AND coalesce(method, '') NOT IN ('CONSOLE', 'FEED')
             ORDER BY at DESC LIMIT 1",
        )?
        .query_row([provider_id], |r| r.get(0))
        .ok();
    let last_write: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT at FROM activity WHERE provider_id = ?1 AND action IN {CHANGES}
             ORDER BY at DESC LIMIT 1"
        ))?
        .query_row([provider_id], |r| r.get(0))
        .ok();
    let last_error: Option<(i64, String)> = c
        .prepare_cached(&last_error_sql())?
        .query_row([provider_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok();
    let (writes_24h, errors_24h) =
        counts_between(c, provider, (day_ago, now_ms + 1), now_ms, hours)?;
    Ok(Status {
        last_request: last_traffic.max(last_any),
        last_write,
        last_error,
        requests_24h,
        writes_24h,
        errors_24h,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A user's creation at `at` (unix milliseconds) by provider 1, recorded as a request's
    /// change is: an event when the provider has a feed.
    pub(crate) fn create(c: &Connection, id: &str, at: i64) {
        let ctx = Context {
            token_id: String::new(),
            request_id: String::new(),
            method: "POST".into(),
            path: "/Users".into(),
            values: false,
        };
        let change = Change {
            kind: ResourceKind::User,
            id,
            name: id,
            external_id: None,
            action: Action::Created,
            changed: Vec::new(),
            version: 1,
            values: None,
            detail: None,
            status: 201,
        };
        record_change_at(c, 1, &ctx, &change, at).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::events::Op;
    use crate::store::feeds;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn changed_paths_name_attributes_and_extension_attributes() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let old = map(json!({"userName": "a", "title": "t", "active": true,
                              urn: {"department": "d", "costCenter": "1"}}));
        let new = map(json!({"userName": "a", "displayName": "A", "active": false,
                              urn: {"department": "e", "costCenter": "1", "division": "x"}}));
        assert_eq!(
            changed_paths(&old, &new),
            [
                "displayName",
                "active",
                &format!("{urn}:department"),
                &format!("{urn}:division"),
                "title"
            ]
        );
        assert!(changed_paths(&old, &old).is_empty());
        let users = crate::scim::ResourceKind::User.builtin();
        assert_eq!(
            action_for(users, &old, &new, Action::Patched),
            Action::Deactivated
        );
        assert_eq!(
            action_for(users, &new, &old, Action::Patched),
            Action::Reactivated
        );
        assert_eq!(
            action_for(users, &old, &old, Action::Replaced),
            Action::Replaced
        );
        let values = values_of(&new, &changed_paths(&old, &new));
        assert_eq!(values["title"], Value::Null);
        assert_eq!(values[&format!("{urn}:division")], "x");
    }

    /// The dashboard's figures and the activity page's views read index ranges: the failed
    /// view, the last error and the day's counts the index of records that are not changes,
    /// every provider's newest records each provider's own range, merged.
    /// The 24-hour counts agree with a count of the whole day, keep the hours long past (a
    /// record removed from one is still counted) and count the last ones afresh each time.
    #[test]
    fn day_counts_keep_settled_hours_and_count_the_rest_live() {
        let c = crate::store::test_conn();
        c.execute(
            "INSERT INTO providers (id, name, kind, created) VALUES (1, 'a', 'generic', 0)",
            [],
        )
        .unwrap();
        let now = 1_000 * HOUR_MS + 1_234_567;
        let insert = |at: i64, action: &str, status: i64| {
            c.execute(
                "INSERT INTO activity (at, provider_id, method, path, action, status)
                 VALUES (?1, 1, 'PATCH', '/Users/x', ?2, ?3)",
                params![at, action, status],
            )
            .unwrap();
        };
        // Every 7 minutes over 26 hours: changes, with a refusal every fifth.
        for n in 0..(26 * 60 / 7) {
            let at = now - n * 7 * 60_000;
            match n % 5 {
                0 => insert(at, "refused", 409),
                _ => insert(at, "patched", 200),
            }
        }
        let hours = HourCounts::default();
        let whole = status(&c, (1, 0), now, None).unwrap();
        let kept = status(&c, (1, 0), now, Some(&hours)).unwrap();
        assert_eq!(
            (kept.writes_24h, kept.errors_24h),
            (whole.writes_24h, whole.errors_24h)
        );
        assert!(whole.writes_24h > 150 && whole.errors_24h > 30, "{whole:?}");
        // A settled hour's record goes: the kept count stays, the whole count drops.
        c.execute(
            "DELETE FROM activity WHERE rowid = (SELECT rowid FROM activity
               WHERE at < ?1 AND at > ?2 AND action = 'patched' LIMIT 1)",
            params![now - 5 * HOUR_MS, now - 20 * HOUR_MS],
        )
        .unwrap();
        assert_eq!(
            status(&c, (1, 0), now, Some(&hours)).unwrap().writes_24h,
            whole.writes_24h
        );
        assert_eq!(
            status(&c, (1, 0), now, None).unwrap().writes_24h,
            whole.writes_24h - 1
        );
        // A record of the last minutes is counted at once.
        insert(now - 1_000, "patched", 200);
        assert_eq!(
            status(&c, (1, 0), now, Some(&hours)).unwrap().writes_24h,
            whole.writes_24h + 1
        );
        // Another provider with the same id (made later) counts afresh.
        let other = status(&c, (1, 99), now, Some(&hours)).unwrap();
        assert_eq!(other.writes_24h, whole.writes_24h);
    }

    #[test]
    fn views_of_the_log_read_index_ranges_and_agree_with_the_records() {
        let c = crate::store::test_conn();
        for (id, name) in [(1, "a"), (2, "b")] {
            c.execute(
                "INSERT INTO providers (id, name, kind, created) VALUES (?1, ?2, 'generic', 0)",
                params![id, name],
            )
            .unwrap();
        }
        let now = now_ms();
        // (provider, at, action, status, count)
        let rows = [
            (1, now - 5_000, "created", 201, 1),
            (2, now - 4_000, "patched", 200, 1),
            (1, now - 3_000, "refused", 409, 1),
            (1, now - 2_000, "auth failed", 401, 3),
            (2, now - 1_000, "member added", 200, 1),
            (1, now - 90_000_000, "refused", 400, 1),
        ];
        for (p, at, action, status, count) in rows {
            c.execute(
                "INSERT INTO activity (at, provider_id, method, path, action, status, count)
                 VALUES (?1, ?2, 'POST', '/Users', ?3, ?4, ?5)",
                params![at, p, action, status, count],
            )
            .unwrap();
        }
        let st = status(&c, (1, 0), now, None).unwrap();
        assert_eq!((st.writes_24h, st.errors_24h), (1, 4));
        assert_eq!(st.last_error.map(|e| e.0), Some(now - 2_000));
        let failed = query(
            &c,
            &Query {
                failed: true,
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
        let actions: Vec<&str> = failed.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["refused", "refused", "auth failed"]);
        // The newest three of both providers, oldest first.
        let newest = query(
            &c,
            &Query {
                limit: 3,
                ..Query::default()
            },
        )
        .unwrap();
        let seen: Vec<(&str, &str)> = newest
            .iter()
            .map(|r| (r.provider.as_str(), r.action.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", "refused"),
                ("a", "auth failed"),
                ("b", "member added")
            ]
        );
        // A window of the newest two records sees only them.
        let windowed = query(
            &c,
            &Query {
                window: Some(2),
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(windowed.len(), 2);
        // The window before it: the two records before those.
        let before = query(
            &c,
            &Query {
                window: Some(2),
                before_seq: Some(windowed[0].seq - 1),
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
        let seqs: Vec<i64> = before.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [windowed[0].seq - 2, windowed[0].seq - 1]);
        let plan = |sql: &str| -> String {
            let mut q = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let args = [1, now - 86_400_000, now];
            let n = q.parameter_count();
            q.query_map(params_from_iter(&args[..n]), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        };
        for sql in [last_error_sql(), day_counts_sql()] {
            let p = plan(&sql);
            assert!(p.contains("activity_others"), "{p}");
            assert!(!p.contains("SCAN activity"), "{p}");
        }
    }

    #[test]
    fn numbers_go_on_without_gaps_across_pruning_and_start_afresh_after_the_last_feed() {
        let c = feeds::testing::with_provider();
        let append = |c: &Connection, id: &str, at: i64| testing::create(c, id, at);
        let seqs = |c: &Connection| -> Vec<i64> {
            feeds::events_after(c, 1, 0, 100)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        // No feed: a change writes no event.
        append(&c, "u0", 10);
        assert_eq!((seqs(&c), feeds::last_seq(&c, 1).unwrap()), (vec![], 0));
        feeds::add(&c, &feeds::testing::webhook("f")).unwrap();
        for id in ["u1", "u2", "u3"] {
            append(&c, id, 10);
        }
        assert_eq!(
            (seqs(&c), feeds::last_seq(&c, 1).unwrap()),
            (vec![1, 2, 3], 3)
        );
        // Every event kept is pruned: the next one still follows the last.
        assert_eq!(feeds::prune(&c, 11, 100).unwrap(), 3);
        assert_eq!((seqs(&c), feeds::last_seq(&c, 1).unwrap()), (vec![], 3));
        append(&c, "u4", 20);
        assert_eq!((seqs(&c), feeds::last_seq(&c, 1).unwrap()), (vec![4], 4));
        // A pruning that deletes nothing moves nothing.
        assert_eq!(feeds::prune(&c, 11, 100).unwrap(), 0);
        append(&c, "u5", 20);
        assert_eq!(seqs(&c), vec![4, 5]);
        // The provider's last feed removed: no events, and a new feed's numbers start afresh.
        feeds::remove(&c, "f").unwrap();
        append(&c, "u6", 30);
        assert_eq!((seqs(&c), feeds::last_seq(&c, 1).unwrap()), (vec![], 0));
        feeds::add(&c, &feeds::testing::webhook("g")).unwrap();
        append(&c, "u7", 30);
        assert_eq!(seqs(&c), vec![1]);
    }

    #[test]
    fn a_feeds_operation_of_a_record_is_its_actions_in_sql_too() {
        let c = crate::store::test_conn();
        for a in Action::ALL {
            let op: Option<String> = c
                .query_row(
                    &format!("SELECT {} FROM (SELECT ?1 AS action)", feeds::OP_OF_ACTION),
                    [a.as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(op.as_deref(), a.feed_op().map(Op::as_str), "{a:?}");
        }
    }

    #[test]
    fn a_record_that_is_a_kept_event_outlives_the_activity_retention_until_the_feeds_one() {
        let c = feeds::testing::with_provider();
        feeds::add(&c, &feeds::testing::webhook("f")).unwrap();
        for id in ["u1", "u2"] {
            testing::create(&c, id, 10);
        }
        let records = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM activity", [], |r| r.get(0))
                .unwrap()
        };
        // Past the activity retention and over the cap: the events' records stay.
        assert_eq!(prune(&c, 1_000, 0, 100).unwrap(), 0);
        assert_eq!(records(&c), 2);
        // The feed retention lets go of the events: their records go at the next pruning.
        assert_eq!(feeds::prune(&c, 1_000, 100).unwrap(), 2);
        assert!(feeds::events_after(&c, 1, 0, 10).unwrap().is_empty());
        assert_eq!(prune(&c, 1_000, 0, 100).unwrap(), 2);
        assert_eq!(records(&c), 0);
    }
}
