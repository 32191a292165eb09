//! `/Users` and `/Groups`: create, read, replace, delete and list (RFC 7644 §3.3–§3.6).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use chrono::{SecondsFormat, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::auth::Principal;
use super::{AppState, method_not_allowed};
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Stored, etag, etag_matches};
use crate::scim::{self, ResourceKind};
use crate::store::resources::{self as rows, Reference};
use crate::store::{self, write_tx};

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The collection and item endpoints of one resource kind.
pub fn services(kind: ResourceKind) -> Vec<Resource> {
    let collection = web::resource(format!("/{}", kind.endpoint()))
        .route(web::get().to(move |s, p, r| list(kind, s, p, r)))
        .route(web::post().to(move |s, p, r, b| create(kind, s, p, r, b)))
        .default_service(web::to(method_not_allowed));
    let item = web::resource(format!("/{}/{{id}}", kind.endpoint()))
        .route(web::get().to(move |s, p, r, id| get(kind, s, p, r, id)))
        .route(web::put().to(move |s, p, r, id, b| replace(kind, s, p, r, id, b)))
        .route(web::delete().to(move |s, p, r, id| delete(kind, s, p, r, id)))
        .default_service(web::to(method_not_allowed));
    vec![collection, item]
}

/// Query parameters, looked up regardless of case.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_request(req: &HttpRequest) -> Result<Params, Error> {
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Params(q.into_inner()))
            .map_err(|e| Error::invalid_syntax(format!("malformed query string: {e}")))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn projection(&self, kind: ResourceKind) -> Projection {
        Projection::parse(kind, self.get("attributes"), self.get("excludedAttributes"))
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

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Builds the representation of a stored resource, loading computed members or groups only
/// when the projection will keep them.
fn represent(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    r: &rows::Resource,
    projection: &Projection,
) -> store::Result<Value> {
    let computed = match kind {
        ResourceKind::Group if projection.wants("members") => Some(
            rows::members_of(c, r.seq)?
                .into_iter()
                .map(|m| reference_json(base, &m, m.kind.name()))
                .collect(),
        ),
        ResourceKind::User if projection.wants("groups") => Some(
            rows::groups_of(c, r.seq)?
                .into_iter()
                .map(|g| reference_json(base, &g, if g.direct { "direct" } else { "indirect" }))
                .collect(),
        ),
        _ => None,
    };
    let stored = Stored {
        id: &r.id,
        doc: &r.doc,
        created: &r.created,
        modified: &r.modified,
        version: r.version,
        location: format!("{base}/{}/{}", kind.endpoint(), r.id),
    };
    Ok(Value::Object(
        projection.apply(kind, resource::render(kind, &stored, computed)),
    ))
}

fn reference_json(base: &str, r: &Reference, type_: &str) -> Value {
    let mut v = json!({
        "value": r.id,
        "$ref": format!("{base}/{}/{}", r.kind.endpoint(), r.id),
        "type": type_,
    });
    if let Some(d) = &r.display {
        v["display"] = Value::from(d.as_str());
    }
    v
}

fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

fn with_version(status: StatusCode, body: &Value, version: i64) -> HttpResponse {
    let mut res = scim_json(status, body);
    if let Ok(v) = header::HeaderValue::from_str(&etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

async fn create(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, Error> {
    let params = Params::from_request(&req)?;
    let prepared = resource::prepare(kind, &body)?;
    let password_hash = hash_password(&state, &prepared).await?;
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let now = now();
    let (body, version) = state
        .store
        .run(move |c| -> Result<_, Error> {
            let r = write_tx(c, |tx| {
                rows::insert(
                    tx,
                    principal.provider_id,
                    kind,
                    &prepared,
                    password_hash.as_deref(),
                    &now,
                )
            })?;
            Ok((represent(c, &base, kind, &r, &projection)?, r.version))
        })
        .await?;
    let mut res = with_version(StatusCode::CREATED, &body, version);
    if let Some(loc) = body["meta"]["location"].as_str()
        && let Ok(v) = header::HeaderValue::from_str(loc)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn hash_password(state: &AppState, p: &resource::Prepared) -> Result<Option<String>, Error> {
    match &p.password {
        None => Ok(None),
        Some(pw) => state
            .verifier
            .hash(pw.clone())
            .await
            .map(Some)
            .map_err(|e| Error::Store(store::Error::Task(e))),
    }
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
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let found = state
        .store
        .run(move |c| -> Result<_, Error> {
            let r = rows::get(c, principal.provider_id, kind, &id)?
                .ok_or_else(|| Error::NotFound(format!("{} {id} not found", kind.name())))?;
            if if_none_match
                .as_deref()
                .is_some_and(|h| etag_matches(h, r.version))
            {
                return Ok((None, r.version));
            }
            Ok((Some(represent(c, &base, kind, &r, &projection)?), r.version))
        })
        .await?;
    Ok(match found {
        (None, version) => {
            let mut res = HttpResponse::NotModified().finish();
            if let Ok(v) = header::HeaderValue::from_str(&etag(version)) {
                res.headers_mut().insert(header::ETAG, v);
            }
            res
        }
        (Some(body), version) => with_version(StatusCode::OK, &body, version),
    })
}

async fn replace(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let params = Params::from_request(&req)?;
    let prepared = resource::prepare(kind, &body)?;
    let password_hash = hash_password(&state, &prepared).await?;
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let if_match = if_match(req.headers());
    let now = now();
    let (body, version) = state
        .store
        .run(move |c| -> Result<_, Error> {
            let r = write_tx(c, |tx| -> Result<_, Error> {
                let old = rows::current(tx, principal.provider_id, kind, &id)?;
                resource::check_immutable(kind.schema(), &old.doc, &prepared.doc)?;
                Ok(rows::replace(
                    tx,
                    principal.provider_id,
                    kind,
                    &id,
                    &prepared,
                    password_hash.as_deref(),
                    if_match.as_deref(),
                    &now,
                )?)
            })?;
            Ok((represent(c, &base, kind, &r, &projection)?, r.version))
        })
        .await?;
    Ok(with_version(StatusCode::OK, &body, version))
}

async fn delete(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let if_match = if_match(req.headers());
    state
        .store
        .run(move |c| {
            write_tx(c, |tx| {
                rows::delete(tx, principal.provider_id, kind, &id, if_match.as_deref())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let params = Params::from_request(&req)?;
    if params.get("filter").is_some() {
        return Err(Error::Scim(scim::Error::InvalidFilter(
            "filtering is not supported by this version of scimd".into(),
        )));
    }
    let max = i64::from(state.config.max_page_size);
    let start_index = params.integer("startIndex")?.unwrap_or(1).max(1);
    let count = params.integer("count")?.unwrap_or(max).clamp(0, max);
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let body = state
        .store
        .run(move |c| -> store::Result<Value> {
            let (total, page) = rows::list(c, principal.provider_id, kind, start_index - 1, count)?;
            let resources = page
                .iter()
                .map(|r| represent(c, &base, kind, r, &projection))
                .collect::<store::Result<Vec<_>>>()?;
            Ok(json!({
                "schemas": [LIST_RESPONSE],
                "totalResults": total,
                "startIndex": start_index,
                "itemsPerPage": resources.len(),
                "Resources": resources,
            }))
        })
        .await?;
    Ok(scim_json(StatusCode::OK, &body))
}
