//! Bearer-token authentication of every request under a provider's SCIM base URL.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;

use super::AppState;
use crate::auth::{TokenState, token};
use crate::error::Error;
use crate::store::providers::ProviderKind;
use crate::store::tokens;

/// The authenticated caller: which token, for which identity provider, with which scope.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub provider_id: i64,
    pub provider_name: String,
    pub provider_kind: ProviderKind,
    pub read_only: bool,
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
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let principal = authenticate(&state, &provider, header.as_deref()).await?;
    req.extensions_mut()
        .insert(TokenId(principal.token_id.clone()));
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD)
        || (req.method() == Method::POST && req.path().ends_with("/.search"));
    if principal.read_only && !reads_only {
        return Err(Error::Forbidden("this token is read-only").into());
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

async fn authenticate(
    state: &AppState,
    provider: &str,
    header: Option<&str>,
) -> Result<Principal, Error> {
    let header = header.ok_or(Error::Unauthorized("missing Authorization header"))?;
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthorized(
            "use an Authorization header of the form: Bearer <token>",
        ));
    }
    let (id, secret) = token::parse(value.trim()).ok_or(Error::Unauthorized(INVALID))?;
    let id = id.to_string();
    let lookup_id = id.clone();
    let record = state
        .store
        .run(move |c| tokens::auth_record(c, &lookup_id))
        .await?
        .ok_or(Error::Unauthorized(INVALID))?;
    if !state
        .verifier
        .verify(&id, &secret, &record.secret_hash)
        .await
    {
        return Err(Error::Unauthorized(INVALID));
    }
    // The secret is right; from here on the holder may learn why the token does not work.
    if !record.provider_name.eq_ignore_ascii_case(provider) {
        return Err(Error::Unauthorized(
            "this token belongs to another identity provider",
        ));
    }
    let now = Utc::now().timestamp();
    match token::state(record.expires, record.revoked, now) {
        TokenState::Active => {}
        TokenState::Expired => return Err(Error::Unauthorized("this token has expired")),
        TokenState::Revoked => return Err(Error::Unauthorized("this token has been revoked")),
    }
    if state.verifier.should_record_use(&id, record.last_used, now) {
        let use_id = id.clone();
        if let Err(e) = state
            .store
            .write(move |c| tokens::record_use(c, &use_id, now))
            .await
        {
            tracing::warn!(token = %id, error = %e, "could not record token use");
        }
    }
    Ok(Principal {
        token_id: id,
        provider_id: record.provider_id,
        provider_name: record.provider_name,
        provider_kind: record.provider_kind,
        read_only: record.read_only,
    })
}
