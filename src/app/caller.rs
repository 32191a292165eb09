//! Who a SCIM request is: the bearer token it presents, checked against its argon2 hash (on
//! the verifier's throttled slots) and against the provider in the URL, as a `Principal`; and
//! the rule that keeps revocation exact while token records are remembered in memory
//! (`Principal::recheck`, in the request's own unit of work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::AppState;
use crate::auth::verifier::Verdict;
use crate::auth::{TokenState, token};
use crate::error::Error;
use crate::scim::ProviderKind;
use crate::store::tokens::{self, AuthRecord};

/// The authenticated caller: which token, for which identity provider, with which scope.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) token_id: String,
    pub(crate) provider_id: i64,
    pub(crate) provider_name: String,
    pub(crate) provider_kind: ProviderKind,
    pub(crate) read_only: bool,
    /// The provider's schema model version when the token's record was read.
    pub(crate) model_version: i64,
    /// Whether the provider's activity records carry attribute values.
    pub(crate) activity_values: bool,
    /// What the provider's requests may do to users' passwords.
    pub(crate) scim_passwords: crate::scim::ScimPasswords,
    /// The version of the model this request validated against (`AppState::model`).
    pub(crate) model_used: Arc<AtomicI64>,
    /// Set once the token's row has been read again by this request's database work.
    checked: Arc<AtomicBool>,
    /// Set when that read found the provider's type changed since the record was remembered.
    stale: Arc<AtomicBool>,
    /// A fault a test asked this request to inject (debug builds only).
    #[cfg(debug_assertions)]
    pub(crate) fault: Option<super::faults::Fault>,
}

impl Principal {
    /// Reads the token's row again on the connection about to do the request's database work
    /// (the same pool hop, or inside the writer's transaction): it must still exist, be active
    /// and belong to the same provider. This keeps revocation and expiry exact while the
    /// record used to authenticate came from memory.
    ///
    /// A write also refuses to go on with a schema model that changed since the request was
    /// validated against it (`scimd schema add/remove` while serving): `503`, and the retry
    /// uses the new model. A read answers with the model it started with.
    pub(crate) fn recheck(&self, c: &rusqlite::Connection, writing: bool) -> Result<(), Error> {
        let now = Utc::now().timestamp();
        let record = tokens::auth_record(c, &self.token_id)?.ok_or(Error::Unauthorized(INVALID))?;
        if record.provider_id != self.provider_id || record.provider_name != self.provider_name {
            return Err(Error::Unauthorized(
                "this token belongs to another identity provider",
            ));
        }
        usable(&record, now)?;
        // `provider set --type` while serving: this request keeps the type it started with
        // (it only decides 200 or 204 for a group PATCH); the next one reads the new type.
        if record.provider_kind != self.provider_kind
            || record.read_only != self.read_only
            || record.activity_values != self.activity_values
            || record.model_version != self.model_version
            || record.scim_passwords != self.scim_passwords
        {
            self.stale.store(true, Ordering::Release);
        }
        // A write goes on only under the model and password policy it was prepared with.
        if writing
            && (record.model_version != self.model_used.load(Ordering::Acquire)
                || record.scim_passwords != self.scim_passwords)
        {
            return Err(Error::ModelChanged);
        }
        self.checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Notes the version of the model the request validates against.
    pub(crate) fn used_model(&self, version: i64) {
        self.model_used.store(version, Ordering::Release);
    }

    pub(crate) fn was_checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    /// Whether the remembered record of this token should be dropped.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }
}

/// Refuses an expired or revoked token, saying which (the secret was right by then).
fn usable(record: &AuthRecord, now: i64) -> Result<(), Error> {
    match token::state(record.expires, record.revoked, now) {
        TokenState::Active => Ok(()),
        TokenState::Expired => Err(Error::Unauthorized("this token has expired")),
        TokenState::Revoked => Err(Error::Unauthorized("this token has been revoked")),
    }
}

/// Token rows as last read, by token id, so a request with a known token needs no database
/// round trip of its own to authenticate. Never trusted for a token's state: `recheck` reads
/// the row again in the request's own database work, and any disagreement drops the entry.
///
/// Token ids no row had when last looked up are remembered too, for `ABSENT_FOR`: a client
/// repeating a token that does not exist costs no database read each time. A new token's id is
/// random and unseen, so it works at once; revocation is a row's state, never an absence.
#[derive(Default)]
pub(crate) struct RecordCache {
    /// Shared, so a request takes a reference count, not a copy of the row's strings.
    records: Mutex<HashMap<String, Arc<AuthRecord>>>,
    absent: Mutex<HashMap<String, std::time::Instant>>,
}

/// Tokens are few; the bound only stops a pathological number of them from growing memory.
const RECORD_CAPACITY: usize = 4096;
/// How long a token id found in no row is taken as absent without reading again.
const ABSENT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

impl RecordCache {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<AuthRecord>> {
        lock(&self.records).get(id).cloned()
    }

    pub(crate) fn put(&self, id: &str, record: Arc<AuthRecord>) {
        let mut records = lock(&self.records);
        if records.len() >= RECORD_CAPACITY {
            records.clear();
        }
        records.insert(id.to_string(), record);
    }

    pub(crate) fn forget(&self, id: &str) {
        lock(&self.records).remove(id);
    }

    /// Whether `id` was found in no row within the last `ABSENT_FOR`.
    fn known_absent(&self, id: &str, now: std::time::Instant) -> bool {
        lock(&self.absent)
            .get(id)
            .is_some_and(|at| now.duration_since(*at) < ABSENT_FOR)
    }

    fn note_absent(&self, id: &str, now: std::time::Instant) {
        let mut absent = lock(&self.absent);
        if absent.len() >= RECORD_CAPACITY {
            absent.clear();
        }
        absent.insert(id.to_string(), now);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) const INVALID: &str = "invalid bearer token";

/// Authenticates a request; also says whether the token's record came from memory (and so
/// still needs `Principal::recheck`).
pub(crate) async fn authenticate(
    state: &AppState,
    provider: &str,
    header: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Result<(Principal, bool), Error> {
    let header = header.ok_or(Error::Unauthorized("missing Authorization header"))?;
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthorized(
            "use an Authorization header of the form: Bearer <token>",
        ));
    }
    let (id, secret) = token::parse(value.trim()).ok_or(Error::Unauthorized(INVALID))?;
    let id = id.to_string();
    if let Some(record) = state.records.get(&id) {
        match accept(state, provider, &id, &secret, record, client).await {
            // A wrong secret is wrong whatever the row says now.
            Err(Error::Unauthorized(INVALID)) => return Err(Error::Unauthorized(INVALID)),
            Err(e @ Error::TooManyRequests(_)) => return Err(e),
            Ok(p) => return Ok((p, true)),
            // Any other refusal may come from a stale record: decide on a fresh one.
            Err(_) => state.records.forget(&id),
        }
    }
    let now = std::time::Instant::now();
    if state.records.known_absent(&id, now) {
        return Err(Error::Unauthorized(INVALID));
    }
    let lookup_id = id.clone();
    let Some(record) = state
        .store
        .run(move |c| tokens::auth_record(c, &lookup_id))
        .await?
    else {
        state.records.note_absent(&id, now);
        return Err(Error::Unauthorized(INVALID));
    };
    let record = Arc::new(record);
    state.records.put(&id, record.clone());
    let principal = accept(state, provider, &id, &secret, record, client).await?;
    principal.checked.store(true, Ordering::Release);
    Ok((principal, false))
}

/// Checks a presented secret and the token's record against the provider in the URL.
async fn accept(
    state: &AppState,
    provider: &str,
    id: &str,
    secret: &token::Secret,
    record: Arc<AuthRecord>,
    client: Option<std::net::IpAddr>,
) -> Result<Principal, Error> {
    // A secret that its fingerprint rules out costs no argon2 and spends no budget: a flood
    // of wrong secrets, even from the holder's own address, never throttles the holder.
    let stored = (record.secret_hash.as_str(), record.fingerprint.as_deref());
    match state
        .verifier
        .verify_fingerprinted(id, secret, stored, client)
        .await
    {
        Verdict::Valid => {}
        Verdict::Invalid => return Err(Error::Unauthorized(INVALID)),
        Verdict::Throttled => {
            return Err(Error::TooManyRequests(
                "too many attempts with this token id; retry in a second",
            ));
        }
    }
    // The secret is right; from here on the holder may learn why the token does not work.
    if !record.provider_name.eq_ignore_ascii_case(provider) {
        return Err(Error::Unauthorized(
            "this token belongs to another identity provider",
        ));
    }
    let now = Utc::now().timestamp();
    usable(&record, now)?;
    if state.verifier.should_record_use(id, record.last_used, now) {
        let use_id = id.to_string();
        if let Err(e) = state
            .store
            .write(move |c| tokens::record_use(c, &use_id, now))
            .await
        {
            tracing::warn!(token = %id, error = %e, "could not record token use");
        }
    }
    Ok(Principal {
        token_id: id.to_string(),
        provider_id: record.provider_id,
        provider_name: record.provider_name.clone(),
        provider_kind: record.provider_kind,
        read_only: record.read_only,
        model_version: record.model_version,
        model_used: Arc::new(AtomicI64::new(record.model_version)),
        activity_values: record.activity_values,
        scim_passwords: record.scim_passwords,
        checked: Arc::new(AtomicBool::new(false)),
        stale: Arc::new(AtomicBool::new(false)),
        #[cfg(debug_assertions)]
        fault: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_ids_are_remembered_briefly_and_boundedly() {
        let cache = RecordCache::default();
        let t0 = std::time::Instant::now();
        assert!(!cache.known_absent("a", t0));
        cache.note_absent("a", t0);
        assert!(cache.known_absent("a", t0 + ABSENT_FOR / 2));
        assert!(!cache.known_absent("a", t0 + ABSENT_FOR));
        for i in 0..RECORD_CAPACITY + 10 {
            cache.note_absent(&format!("x{i}"), t0);
        }
        assert!(lock(&cache.absent).len() <= RECORD_CAPACITY);
    }
}
