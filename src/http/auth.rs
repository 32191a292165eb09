//! The `Principal` extractor: authenticates the bearer token against the provider in the URL.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
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
    type Future = Pin<Box<dyn Future<Output = Result<Principal, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
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
                return Err(Error::Forbidden("this token is read-only"));
            }
            Ok(principal)
        })
    }
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
            .run(move |c| tokens::record_use(c, &use_id, now))
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
