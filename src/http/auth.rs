//! Bearer-token authentication of every request under a provider's SCIM base URL.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::app::caller::{INVALID, authenticate};
use crate::app::{AppState, Principal};
use crate::error::Error;

/// Put in the request's extensions so the access log can name the token.
#[derive(Debug, Clone)]
pub(crate) struct TokenId(pub String);

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
pub(crate) async fn require_token(
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
    let client = crate::web::client_ip(req.request(), &state.config);
    #[cfg_attr(not(debug_assertions), allow(unused_mut))]
    let (mut principal, from_memory) =
        authenticate(&state, &provider, header.as_deref(), client).await?;
    #[cfg(debug_assertions)]
    {
        principal.fault = crate::app::faults::requested(
            req.headers()
                .get("x-scimd-test-fault")
                .and_then(|v| v.to_str().ok()),
        );
    }
    req.extensions_mut()
        .insert(TokenId(principal.token_id.clone()));
    // A poll of a pulled feed reads events (and moves only the feed's own position).
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD)
        || (req.method() == Method::POST
            && (req.path().ends_with("/.search") || req.path().split('/').nth(4) == Some("Feeds")));
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
