//! `/Users` and `/Groups`: create, read, replace, delete and list (RFC 7644 §3.3–§3.6). Each
//! handler parses the request, lets `scim` decide, runs a store use case and answers with what
//! `render` writes.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, Resource, web};
use serde_json::Value;

use super::Principal;
use super::body::ScimJson;
use super::{AppState, method_not_allowed};
use crate::app::lists::{self, ListRequest, bad_value};
use crate::app::resources::{self, Ask, Found, PatchAnswer, Written};
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::render;
use crate::scim::projection::Projection;
use crate::scim::schema::Model;
use crate::scim::schema::ResourceType;
use crate::scim::{self, ProviderKind, ResourceKind};

/// The collection and item endpoints of one resource kind.
pub(crate) fn services(kind: ResourceKind) -> Vec<Resource> {
    let search_endpoint = web::resource(format!("/{}/.search", kind.endpoint()))
        .route(web::post().to(move |s, p, r, b| search(kind, s, p, r, b)))
        .default_service(web::to(method_not_allowed));
    let collection = web::resource(format!("/{}", kind.endpoint()))
        .route(web::get().to(move |s, p, r| list(kind, s, p, r)))
        .route(web::post().to(move |s, p, r, b| create(kind, s, p, r, b)))
        .default_service(web::to(method_not_allowed));
    let item = web::resource(format!("/{}/{{id}}", kind.endpoint()))
        .route(web::get().to(move |s, p, r, id| get(kind, s, p, r, id)))
        .route(web::put().to(move |s, p, r, id, b| replace(kind, s, p, r, id, b)))
        .route(web::delete().to(move |s, p, r, id| delete(kind, s, p, r, id)))
        .route(web::patch().to(move |s, p, r, id, b| patch(kind, s, p, r, id, b)))
        .default_service(web::to(method_not_allowed));
    // `.search` before `{id}`, so it is not taken for an id.
    vec![search_endpoint, collection, item]
}

/// The query parameters of RFC 7644 (§3.4.2, §3.9) and RFC 9865.
const SCIM_PARAMETERS: &[&str] = &[
    "filter",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
    "cursor",
    "attributes",
    "excludedAttributes",
];

/// Query parameters, looked up regardless of case.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The query's parameters. One that SCIM defines may appear once: which of two would
    /// count is exactly what a proxy and scimd could disagree about.
    pub(crate) fn from_request(req: &HttpRequest) -> Result<Params, Error> {
        let params = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Params(q.into_inner()))
            .map_err(|e| Error::invalid_syntax(format!("malformed query string: {e}")))?;
        for name in SCIM_PARAMETERS {
            let n = params
                .0
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .count();
            if n > 1 {
                let detail = format!("the query parameter {name} is given {n} times");
                return Err(Error::Scim(match *name {
                    "filter" => scim::Error::InvalidFilter(detail),
                    _ => scim::Error::InvalidSyntax(detail),
                }));
            }
        }
        Ok(params)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn projection(&self, rt: &ResourceType) -> Projection {
        Projection::parse(rt, self.get("attributes"), self.get("excludedAttributes"))
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, Error> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    Error::Scim(scim::Error::InvalidValue(format!(
                        "{name} must be an integer, got {v:?}"
                    )))
                })
            })
            .transpose()
    }
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A SCIM JSON response with `body`.
fn scim_body(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(SCIM_CONTENT_TYPE)
        .body(body)
}

/// Sets the ETag header of a response to the resource's version.
fn tag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&render::etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The answer to a write: the resource as the projection shows it, with its ETag; `204` when
/// the use case computed nothing to show.
fn answer(status: StatusCode, w: &Written) -> Result<HttpResponse, Error> {
    let (base, r, projection) = (&w.base, &w.resource, &w.projection);
    match &w.computed {
        Some(computed) => {
            let body = render::written(w.resource_type(), base, r, computed, projection)?;
            Ok(tag(scim_body(status, body), r.version))
        }
        None => Ok(tag(HttpResponse::NoContent().finish(), r.version)),
    }
}

/// What a write was asked with, read from the request.
fn ask(
    principal: &Principal,
    req: &HttpRequest,
    model: &Model,
    kind: ResourceKind,
    params: &Params,
) -> Ask {
    Ask {
        who: super::activity_context(principal, req),
        projection: params.projection(model.get(kind)),
        if_match: if_match(req.headers()),
    }
}

async fn create(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let params = Params::from_request(&req)?;
    let quirks = |q| super::record_quirks(&state, &req, &principal.provider_name, q);
    let ask = |m: &Model| ask(&principal, &req, m, kind, &params);
    let written = resources::create(&state, &principal, kind, &body, ask, quirks).await?;
    let location = format!(
        "{}/{}/{}",
        written.base,
        kind.endpoint(),
        written.resource.id
    );
    let mut res = answer(StatusCode::CREATED, &written)?;
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn get(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let params = Params::from_request(&req)?;
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let projection = |rt: &ResourceType| params.projection(rt);
    let found = resources::get(&state, &principal, kind, id, projection, if_none_match).await?;
    Ok(match found {
        Found::Unchanged(version) => tag(HttpResponse::NotModified().finish(), version),
        Found::Body(body, version) => tag(scim_body(StatusCode::OK, body), version),
    })
}

async fn replace(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let params = Params::from_request(&req)?;
    let quirks = |q| super::record_quirks(&state, &req, &principal.provider_name, q);
    let ask = |m: &Model| ask(&principal, &req, m, kind, &params);
    let written = resources::replace(&state, &principal, kind, id, &body, ask, quirks).await?;
    answer(StatusCode::OK, &written)
}

/// The client's `Prefer: return=minimal` or `return=representation` (RFC 7240) decides; a
/// request naming `attributes` or `excludedAttributes` wants the representation. Otherwise a
/// User PATCH answers in full, a Group PATCH from an `entra` provider with 204 (Microsoft advises
/// it: "returning all the members isn't advisable"), and from other providers in full while
/// the group is small.
fn patch_answer(
    kind: ResourceKind,
    provider: ProviderKind,
    params: &Params,
    req: &HttpRequest,
) -> PatchAnswer {
    let prefer = req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .find_map(|p| p.strip_prefix("return=").map(str::to_string));
    let projected =
        params.get("attributes").is_some() || params.get("excludedAttributes").is_some();
    match (prefer.as_deref(), kind, provider) {
        (Some("minimal"), _, _) => PatchAnswer::Minimal,
        (Some("representation"), _, _) => PatchAnswer::Full,
        (_, ResourceKind::User, _) => PatchAnswer::Full,
        _ if projected => PatchAnswer::Full,
        (_, ResourceKind::Group, ProviderKind::Entra) => PatchAnswer::Minimal,
        (_, ResourceKind::Group, ProviderKind::Generic) => PatchAnswer::FullWhenSmall,
    }
}

async fn patch(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let params = Params::from_request(&req)?;
    let answer_with = patch_answer(kind, principal.provider_kind, &params, &req);
    let ask = |m: &Model| ask(&principal, &req, m, kind, &params);
    let (written, quirks) =
        resources::patch(&state, &principal, kind, id, &body, answer_with, ask).await?;
    super::record_quirks(&state, &req, &principal.provider_name, quirks);
    answer(StatusCode::OK, &written)
}

async fn delete(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let ask = Ask {
        who: super::activity_context(&principal, &req),
        projection: Projection::default(),
        if_match: if_match(req.headers()),
    };
    resources::delete(&state, &principal, kind, id, ask).await?;
    Ok(HttpResponse::NoContent().finish())
}

impl ListRequest {
    pub(crate) fn from_query(params: &Params, max: i64) -> Result<ListRequest, Error> {
        let mut r = ListRequest::new(
            params.get("filter").map(str::to_string),
            params.get("sortBy").map(str::to_string),
            params.get("sortOrder"),
            params.integer("startIndex")?,
            params.integer("count")?,
            max,
        )?;
        r.cursor = params.get("cursor").map(str::to_string);
        r.attributes = params.get("attributes").map(str::to_string);
        r.excluded = params.get("excludedAttributes").map(str::to_string);
        Ok(r)
    }

    /// A SearchRequest body (`POST .../.search`).
    pub(crate) fn from_body(body: &Value, max: i64) -> Result<ListRequest, Error> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let field = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .filter(|v| !v.is_null())
        };
        let text = |name: &str| -> Result<Option<String>, Error> {
            match field(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(Error::invalid_syntax(format!(
                    "{name} must be a string, got {v}"
                ))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, Error> {
            match field(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| bad_value(format!("{name} must be an integer, got {v}"))),
            }
        };
        let names = |name: &str| -> Result<Option<String>, Error> {
            match field(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            Error::invalid_syntax(format!("{name} must list attribute names"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| Some(v.join(","))),
                Some(v) => Err(Error::invalid_syntax(format!(
                    "{name} must be an array, got {v}"
                ))),
            }
        };
        let sort_order = text("sortOrder")?;
        let mut r = ListRequest::new(
            text("filter")?,
            text("sortBy")?,
            sort_order.as_deref(),
            int("startIndex")?,
            int("count")?,
            max,
        )?;
        r.cursor = text("cursor")?;
        r.attributes = names("attributes")?;
        r.excluded = names("excludedAttributes")?;
        Ok(r)
    }
}

async fn list(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let params = Params::from_request(&req)?;
    let request = ListRequest::from_query(&params, i64::from(state.config.max_page_size))?;
    list_kind(kind, &state, &principal, &req, request).await
}

async fn search(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let request = ListRequest::from_body(&body, i64::from(state.config.max_page_size))?;
    list_kind(kind, &state, &principal, &req, request).await
}

async fn list_kind(
    kind: ResourceKind,
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    request: ListRequest,
) -> Result<HttpResponse, Error> {
    let quirks = |q| super::record_quirks(state, req, &principal.provider_name, q);
    let listed = lists::list(state, principal, kind, request, quirks).await?;
    if listed.connection_test {
        req.extensions_mut().insert(super::ConnectionTest);
    }
    Ok(scim_body(StatusCode::OK, listed.body))
}

/// `POST /.search` at the provider's root: Users and Groups together, Users first.
pub(crate) async fn search_all(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: ScimJson,
) -> Result<HttpResponse, Error> {
    let request = ListRequest::from_body(&body, i64::from(state.config.max_page_size))?;
    let quirks = |q| super::record_quirks(&state, &req, &principal.provider_name, q);
    let body = lists::list_all(&state, &principal, request, quirks).await?;
    Ok(scim_body(StatusCode::OK, body))
}
