//! Bearer-token authentication of every request under a provider's SCIM base URL.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;

use super::AppState;
use crate::auth::verifier::Verdict;
use crate::auth::{TokenState, token};
use crate::error::Error;
use crate::scim::ProviderKind;
use crate::store::tokens::{self, AuthRecord};

/// The authenticated caller: which token, for which identity provider, with which scope.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub provider_id: i64,
    pub provider_name: String,
    pub provider_kind: ProviderKind,
    pub read_only: bool,
    /// The provider's schema model version when the token's record was read.
    pub model_version: i64,
    /// Whether the provider's activity records carry attribute values.
    pub activity_values: bool,
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
    pub fn recheck(&self, c: &rusqlite::Connection, writing: bool) -> Result<(), Error> {
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
        {
            self.stale.store(true, Ordering::Release);
        }
        if writing && record.model_version != self.model_used.load(Ordering::Acquire) {
            return Err(Error::ModelChanged);
        }
        self.checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Notes the version of the model the request validates against.
    pub(crate) fn used_model(&self, version: i64) {
        self.model_used.store(version, Ordering::Release);
    }

    fn was_checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    /// Whether the remembered record of this token should be dropped.
    fn is_stale(&self) -> bool {
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
#[derive(Default)]
pub struct RecordCache {
    records: Mutex<HashMap<String, AuthRecord>>,
}

/// Tokens are few; the bound only stops a pathological number of them from growing memory.
const RECORD_CAPACITY: usize = 4096;

impl RecordCache {
    fn get(&self, id: &str) -> Option<AuthRecord> {
        lock(&self.records).get(id).cloned()
    }

    fn put(&self, id: &str, record: AuthRecord) {
        let mut records = lock(&self.records);
        if records.len() >= RECORD_CAPACITY {
            records.clear();
        }
        records.insert(id.to_string(), record);
    }

    pub fn forget(&self, id: &str) {
        lock(&self.records).remove(id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Put in the request's extensions so the access log can name the token.
#[derive(Debug, Clone)]
pub struct TokenId(pub String);

const INVALID: &str = "invalid bearer token";

impl FromRequest for Principal {
    type Error = Error;
    type Future = Ready<Result<Principal, Error>>;

    /// Handlers inside the authenticated scope take the principal `require_token` stored.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or(Error::Unauthorized(INVALID)),
        )
    }
}

/// Middleware for everything under a provider's SCIM base URL: every request, also one to an
/// unknown path, needs a valid token of that provider; read-only tokens may only read.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or(Error::Unauthorized(INVALID))?;
    let provider = req
        .match_info()
        .get("provider")
        .unwrap_or_default()
        .to_string();
    check_request_target(req.request())?;
    if req
        .headers()
        .get_all(header::AUTHORIZATION)
        .nth(1)
        .is_some()
    {
        return Err(Error::invalid_syntax("send one Authorization header, not several").into());
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let client = client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers().get_all("x-forwarded-for"),
        &state.config.trusted_proxies,
    );
    let (principal, from_memory) =
        authenticate(&state, &provider, header.as_deref(), client).await?;
    #[cfg(debug_assertions)]
    let principal = Principal {
        fault: super::faults::requested(&req),
        ..principal
    };
    req.extensions_mut()
        .insert(TokenId(principal.token_id.clone()));
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD)
        || (req.method() == Method::POST && req.path().ends_with("/.search"));
    if principal.read_only && !reads_only {
        return Err(Error::Forbidden("this token is read-only").into());
    }
    req.extensions_mut().insert(principal.clone());
    let res = next.call(req).await?;
    // A handler that did no database work (discovery, unknown paths, a request refused before
    // reaching the store) has not re-read the token: read it now. Such a handler changed
    // nothing, so its answer can still be replaced by the 401.
    if from_memory && !principal.was_checked() {
        let checking = principal.clone();
        if let Err(e) = state.store.run(move |c| checking.recheck(c, false)).await {
            state.records.forget(&principal.token_id);
            return Err(e.into());
        }
    }
    if principal.is_stale() {
        state.records.forget(&principal.token_id);
    }
    Ok(res)
}

/// Refuses a path or query that is not UTF-8 once percent-decoded: replaced by U+FFFD it could
/// even match a stored value.
/// The address a request came from: the peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` (read right to left, past other trusted proxies) that
/// is not one. Entries a proxy did not add cannot be told from forged ones, so none is believed
/// beyond the first untrusted hop; an unreadable entry stops the walk at the last trusted one.
pub(crate) fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded: impl DoubleEndedIterator<Item = &'a header::HeaderValue>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    for value in forwarded.rev() {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip;
            if !is_trusted(&client) {
                return Some(client);
            }
        }
    }
    Some(client)
}

fn check_request_target(req: &HttpRequest) -> Result<(), Error> {
    let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    if decodes_to_utf8(target) {
        Ok(())
    } else {
        Err(Error::invalid_syntax(
            "the request's path or query is not UTF-8 once percent-decoded",
        ))
    }
}

fn decodes_to_utf8(s: &str) -> bool {
    // Already text, and nothing encoded to decode: most requests.
    !s.contains('%')
        || percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .is_ok()
}

/// Authenticates a request; also says whether the token's record came from memory (and so
/// still needs `Principal::recheck`).
async fn authenticate(
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
    let lookup_id = id.clone();
    let record = state
        .store
        .run(move |c| tokens::auth_record(c, &lookup_id))
        .await?
        .ok_or(Error::Unauthorized(INVALID))?;
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
    record: AuthRecord,
    client: Option<std::net::IpAddr>,
) -> Result<Principal, Error> {
    match state
        .verifier
        .verify(id, secret, &record.secret_hash, client)
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
        provider_name: record.provider_name,
        provider_kind: record.provider_kind,
        read_only: record.read_only,
        model_version: record.model_version,
        model_used: Arc::new(AtomicI64::new(record.model_version)),
        activity_values: record.activity_values,
        checked: Arc::new(AtomicBool::new(false)),
        stale: Arc::new(AtomicBool::new(false)),
        #[cfg(debug_assertions)]
        fault: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: &[&str], trusted: &str) -> Option<IpAddr> {
        let values: Vec<header::HeaderValue> = forwarded
            .iter()
            .map(|v| {
                header::HeaderValue::from_str(v).unwrap_or(header::HeaderValue::from_static(""))
            })
            .collect();
        let trusted = crate::config::networks(Some(&trusted.to_string())).unwrap_or_default();
        client_address(peer.parse().ok(), values.iter(), &trusted)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        // No proxy trusted: the header is anyone's to write.
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], ""),
            ip("203.0.113.9")
        );
        // From a trusted proxy: the hop it added, not what the client claimed before it.
        assert_eq!(
            client("10.0.0.2", &["192.0.2.66, 198.51.100.1"], "10.0.0.0/8"),
            ip("198.51.100.1")
        );
        // Through two trusted proxies, on separate header lines.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1", "10.0.0.3"], "10.0.0.0/8"),
            ip("198.51.100.1")
        );
        // Only proxies, or nothing forwarded: the last trusted address.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.3"], "10.0.0.0/8"),
            ip("10.0.0.3")
        );
        assert_eq!(client("10.0.0.2", &[], "10.0.0.2"), ip("10.0.0.2"));
        // An unreadable hop stops the walk where trust ends.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, bogus"], "10.0.0.0/8"),
            ip("10.0.0.2")
        );
        assert_eq!(client("::1", &["2001:db8::7"], "::1"), ip("2001:db8::7"));
    }
}
