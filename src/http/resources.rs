//! `/Users` and `/Groups`: create, read, replace, delete and list (RFC 7644 §3.3–§3.6).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::auth::Principal;
use super::{AppState, method_not_allowed};
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::scim::projection::Projection;
use crate::scim::quirks::Quirks;
use crate::scim::resource::{self, etag, etag_matches};
use crate::scim::{self, ResourceKind};
use crate::scim::{filter, patch};
use crate::store;
use crate::store::query::Compiler;
use crate::store::render;
use crate::store::resources as rows;
use crate::store::search::{self, Condition, Paging};

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The collection and item endpoints of one resource kind.
pub fn services(kind: ResourceKind) -> Vec<Resource> {
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

/// The representation of a resource a write returned, with the computed attributes that write
/// loaded in its own transaction.
fn render(
    base: &str,
    kind: ResourceKind,
    (r, computed): (rows::Resource, Option<Vec<Value>>),
    projection: &Projection,
) -> Value {
    render::render_with(base, kind, &r, computed, projection)
}

fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

fn with_version(status: StatusCode, body: &Value, version: i64) -> HttpResponse {
    tag(scim_json(status, body), version)
}

/// Sets the ETag header of a response to the resource's version.
fn tag(mut res: HttpResponse, version: i64) -> HttpResponse {
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
    state.record_quirks(&req, &principal.provider_name, prepared.quirks);
    let password_hash = hash_password(&state, prepared.password.clone()).await?;
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let now = now();
    let (pid, in_tx) = (principal.provider_id, (base.clone(), projection.clone()));
    let written = state
        .write(&principal, move |c| -> Result<_, Error> {
            let r = rows::create(c, pid, kind, &prepared, password_hash.as_deref(), &now)?;
            // A user created just now belongs to no group yet.
            let computed = match kind {
                ResourceKind::User => None,
                ResourceKind::Group => render::computed_for(c, &in_tx.0, kind, r.seq, &in_tx.1)?,
            };
            Ok((r, computed))
        })
        .await?;
    let location = format!("{base}/{}/{}", kind.endpoint(), written.0.id);
    let mut res = answer(StatusCode::CREATED, &base, kind, written, &projection)?;
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// The answer to a write: the resource as the projection shows it, with its ETag. With the
/// default projection the representation is written as text around the document's JSON text,
/// as GET writes it, without building a Value tree (debug builds check both agree).
fn answer(
    status: StatusCode,
    base: &str,
    kind: ResourceKind,
    written: (rows::Resource, Option<Vec<Value>>),
    projection: &Projection,
) -> Result<HttpResponse, Error> {
    let version = written.0.version;
    if !projection.is_default() {
        return Ok(with_version(
            status,
            &render(base, kind, written, projection),
            version,
        ));
    }
    let text = full_text(base, kind, &written.0, written.1.as_deref())?;
    debug_assert_eq!(
        serde_json::from_str::<Value>(&text).ok(),
        Some(render(base, kind, written, projection)),
        "the text and value renderings of a written resource differ"
    );
    Ok(tag(
        HttpResponse::build(status)
            .content_type(SCIM_CONTENT_TYPE)
            .body(text),
        version,
    ))
}

/// The full representation (default projection) of a resource just written, as JSON text:
/// the same JSON as `render`.
fn full_text(
    base: &str,
    kind: ResourceKind,
    r: &rows::Resource,
    computed: Option<&[Value]>,
) -> Result<String, Error> {
    let unwritable = |e: serde_json::Error| {
        Error::Store(store::Error::Internal(format!("rendering a resource: {e}")))
    };
    let doc = serde_json::to_string(&r.doc).map_err(unwritable)?;
    let computed = match computed {
        Some(c) if !c.is_empty() => serde_json::to_string(c).map_err(unwritable)?,
        _ => String::new(),
    };
    let mut out = String::with_capacity(doc.len() + computed.len() + 512);
    resource::write_text(
        &mut out,
        kind,
        base,
        &r.id,
        &doc,
        &computed,
        &r.created,
        &r.modified,
        r.version,
    );
    Ok(out)
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
            .map_err(|e| Error::Store(store::Error::Internal(e))),
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
    let not_found = move |id: &str| Error::NotFound(format!("{} {id} not found", kind.name()));
    let unchanged = move |version: i64| {
        if_none_match
            .as_deref()
            .is_some_and(|h| etag_matches(h, version))
    };
    let pid = principal.provider_id;
    let found = state
        .read(&principal, move |c| -> Result<_, Error> {
            if projection.is_default() {
                // The common case: the stored document text goes out as it is.
                let r = rows::get_raw(c, pid, kind, &id)?.ok_or_else(|| not_found(&id))?;
                if unchanged(r.version) {
                    return Ok((None, r.version));
                }
                return Ok((Some(render::represent_raw(c, &base, kind, &r)?), r.version));
            }
            let r = rows::get(c, pid, kind, &id)?.ok_or_else(|| not_found(&id))?;
            if unchanged(r.version) {
                return Ok((None, r.version));
            }
            let body = render::represent(c, &base, kind, &r, &projection)?;
            Ok((Some(body.to_string()), r.version))
        })
        .await?;
    Ok(match found {
        (None, version) => tag(HttpResponse::NotModified().finish(), version),
        (Some(body), version) => tag(
            HttpResponse::Ok()
                .content_type(SCIM_CONTENT_TYPE)
                .body(body),
            version,
        ),
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
    state.record_quirks(&req, &principal.provider_name, prepared.quirks);
    let password_hash = hash_password(&state, prepared.password.clone()).await?;
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let if_match = if_match(req.headers());
    let now = now();
    let (pid, in_tx) = (principal.provider_id, (base.clone(), projection.clone()));
    let written = state
        .write(&principal, move |c| -> Result<_, Error> {
            let r = rows::replace(
                c,
                pid,
                kind,
                &id,
                &prepared,
                password_hash.as_deref(),
                if_match.as_deref(),
                &now,
            )?;
            let computed = render::computed_for(c, &in_tx.0, kind, r.seq, &in_tx.1)?;
            Ok((r, computed))
        })
        .await?;
    answer(StatusCode::OK, &base, kind, written, &projection)
}

/// Whether a PATCH answers 204 without a body: Microsoft advises 204 for group PATCH from
/// Entra; a client can ask either way with `Prefer: return=minimal|representation` (RFC 7240).
fn patch_minimal(kind: ResourceKind, principal: &Principal, req: &HttpRequest) -> bool {
    let prefer = req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .find_map(|p| p.strip_prefix("return=").map(str::to_string));
    match prefer.as_deref() {
        Some("minimal") => true,
        Some("representation") => false,
        _ => principal.provider_kind.patch_answers_minimal(kind),
    }
}

async fn patch(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, Error> {
    let (_, id) = id.into_inner();
    let params = Params::from_request(&req)?;
    let ops = patch::parse_request(&body)?;
    let hash = hash_password(&state, patch::password_in(kind, &ops)).await?;
    let minimal = patch_minimal(kind, &principal, &req);
    let projection = params.projection(kind);
    let base = state.scim_base(&principal.provider_name);
    let if_match = if_match(req.headers());
    let now = now();
    let provider_name = principal.provider_name.clone();
    let pid = principal.provider_id;
    let in_tx = (base.clone(), projection.clone());
    let (written, quirks) = state
        .write(&principal, move |tx| -> Result<_, Error> {
            let (base, projection) = &in_tx;
            let patched = rows::patch(
                tx,
                pid,
                kind,
                &id,
                &ops,
                hash.as_deref(),
                if_match.as_deref(),
                &now,
                base,
            )?;
            let computed = if minimal {
                None
            } else {
                render::computed_for(tx, base, kind, patched.resource.seq, projection)?
            };
            Ok(((patched.resource, computed), patched.quirks))
        })
        .await?;
    state.record_quirks(&req, &provider_name, quirks);
    match minimal {
        false => answer(StatusCode::OK, &base, kind, written, &projection),
        true => Ok(tag(HttpResponse::NoContent().finish(), written.0.version)),
    }
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
    let pid = principal.provider_id;
    state
        .write(&principal, move |c| {
            rows::delete(c, pid, kind, &id, if_match.as_deref())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What a list or search asks for (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors).
pub struct ListRequest {
    filter: Option<String>,
    sort_by: Option<String>,
    descending: bool,
    start_index: i64,
    count: i64,
    cursor: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
}

fn bad_value(msg: String) -> Error {
    Error::Scim(scim::Error::InvalidValue(msg))
}

impl ListRequest {
    fn new(
        filter: Option<String>,
        sort_by: Option<String>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        max: i64,
    ) -> Result<ListRequest, Error> {
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(bad_value(format!(
                    "sortOrder must be ascending or descending, got {other:?}"
                )));
            }
        };
        Ok(ListRequest {
            filter: filter.filter(|f| !f.trim().is_empty()),
            sort_by: sort_by.filter(|s| !s.trim().is_empty()),
            descending,
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(max).clamp(0, max),
            cursor: None,
            attributes: None,
            excluded: None,
        })
    }

    pub fn from_query(params: &Params, max: i64) -> Result<ListRequest, Error> {
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
    pub fn from_body(body: &Value, max: i64) -> Result<ListRequest, Error> {
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

    fn projection(&self, kind: ResourceKind) -> Projection {
        Projection::parse(kind, self.attributes.as_deref(), self.excluded.as_deref())
    }

    /// The parsed filter, if any, and the non-standard shapes it used.
    fn parsed(&self) -> Result<(Option<filter::Filter>, Quirks), Error> {
        match &self.filter {
            None => Ok((None, Quirks::default())),
            Some(text) => {
                let (f, q) = filter::parse_noting(text)?;
                Ok((Some(f), q))
            }
        }
    }
}

fn compile(kind: ResourceKind, base: &str, ast: &filter::Filter) -> Result<Condition, Error> {
    let mut compiler = Compiler::new(kind, base, 3);
    let sql = compiler.filter(ast)?;
    let driven = compiler.driven_by_lookup(ast);
    Ok(Condition {
        sql,
        params: compiler.into_params(),
        driven,
    })
}

const CURSOR_PREFIX: &str = "c";

fn decode_cursor(cursor: &str) -> Result<i64, Error> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|n| i64::from_str_radix(n, 16).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Error::Scim(scim::Error::InvalidCursor(format!(
                "{cursor:?} is not a cursor this server handed out"
            )))
        })
}

async fn list(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let params = Params::from_request(&req)?;
    let request = ListRequest::from_query(&params, i64::from(state.config.max_page_size))?;
    search_kind(kind, &state, principal, &req, request).await
}

async fn search(
    kind: ResourceKind,
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, Error> {
    let request = ListRequest::from_body(&body, i64::from(state.config.max_page_size))?;
    search_kind(kind, &state, principal, &req, request).await
}

async fn search_kind(
    kind: ResourceKind,
    state: &AppState,
    principal: Principal,
    req: &HttpRequest,
    request: ListRequest,
) -> Result<HttpResponse, Error> {
    let base = state.scim_base(&principal.provider_name);
    let (ast, quirks) = request.parsed()?;
    let condition = ast.as_ref().map(|f| compile(kind, &base, f)).transpose()?;
    state.record_quirks(req, &principal.provider_name, quirks);
    let order = match &request.sort_by {
        Some(s) => Some(Compiler::new(kind, &base, 1).order_by(s, request.descending)?),
        None => None,
    };
    let after = match &request.cursor {
        Some(_) if order.is_some() => {
            return Err(bad_value(
                "cursor pagination supports the default order only; leave out sortBy".into(),
            ));
        }
        Some(c) => Some(decode_cursor(c)?),
        None => None,
    };
    let projection = request.projection(kind);
    let (start_index, count) = (request.start_index, request.count);
    let pid = principal.provider_id;
    let body = state
        .read(&principal, move |c| -> store::Result<String> {
            let tx = c.transaction()?;
            let paging = match after {
                Some(seq) => Paging::After(seq),
                None => Paging::Index {
                    offset: start_index - 1,
                    order: order.as_deref(),
                },
            };
            // The resources as comma-separated JSON texts after the ListResponse's head; with
            // the default projection built around the stored document texts.
            let head = |total: i64, items: usize, more: bool, last: Option<i64>| {
                let mut head = json!({
                    "schemas": [LIST_RESPONSE],
                    "totalResults": total,
                    "itemsPerPage": items,
                });
                match after {
                    None => head["startIndex"] = json!(start_index),
                    Some(_) => {
                        if more && let Some(seq) = last {
                            head["nextCursor"] = json!(format!("{CURSOR_PREFIX}{seq:x}"));
                        }
                    }
                }
                list_head(&head)
            };
            let mut out;
            if projection.is_default() {
                let page = search::search_raw(&tx, pid, kind, condition.as_ref(), paging, count)?;
                let views: Vec<_> = page.items.views().collect();
                let last = views.last().map(|r| r.seq);
                out = head(page.total, views.len(), page.more, last);
                render::represent_raw_into(&mut out, &tx, &base, kind, &views)?;
            } else {
                let page = search::search(&tx, pid, kind, condition.as_ref(), paging, count)?;
                let values = render::represent_many(&tx, &base, kind, &page.items, &projection)?;
                let last = page.items.last().map(|r| r.seq);
                out = head(page.total, page.items.len(), page.more, last);
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&v.to_string());
                }
            }
            out.push_str("]}");
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body))
}

/// The start of a ListResponse as text: `head`'s members, then `"Resources":[`, to be
/// followed by the comma-separated resources and `]}`.
fn list_head(head: &Value) -> String {
    let head = head.to_string();
    let open = head.strip_suffix('}').unwrap_or(&head);
    let mut out = String::with_capacity(open.len() + 16);
    out.push_str(open);
    out.push_str(",\"Resources\":[");
    out
}

/// `POST /.search` at the provider's root: Users and Groups together, Users first.
pub async fn search_all(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, Error> {
    let request = ListRequest::from_body(&body, i64::from(state.config.max_page_size))?;
    if request.sort_by.is_some() || request.cursor.is_some() {
        return Err(bad_value(
            "a search across resource types supports neither sortBy nor cursor; search \
             /Users/.search or /Groups/.search instead"
                .into(),
        ));
    }
    let base = state.scim_base(&principal.provider_name);
    // Tests of an attribute one type lacks match nothing of that type; a filter that names no
    // attribute of either type is an error (reported as for Users).
    let (ast, quirks) = request.parsed()?;
    state.record_quirks(&req, &principal.provider_name, quirks);
    let mut kinds = Vec::new();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let cond = match &ast {
            None => None,
            Some(f) => match filter::prune(kind, f) {
                Some(pruned) => Some(compile(kind, &base, &pruned)?),
                None => continue,
            },
        };
        kinds.push((kind, cond, request.projection(kind)));
    }
    if kinds.is_empty()
        && let Some(f) = &ast
    {
        filter::check(ResourceKind::User, f)?;
    }
    let (start_index, count) = (request.start_index, request.count);
    let pid = principal.provider_id;
    let body = state
        .read(&principal, move |c| -> store::Result<Value> {
            let tx = c.transaction()?;
            let mut total = 0;
            let mut skip = start_index - 1;
            let mut room = count;
            let mut resources = Vec::new();
            for (kind, cond, projection) in &kinds {
                let page = search::search(
                    &tx,
                    pid,
                    *kind,
                    cond.as_ref(),
                    Paging::Index {
                        offset: skip,
                        order: None,
                    },
                    room,
                )?;
                total += page.total;
                skip = (skip - page.total).max(0);
                room -= page.items.len() as i64;
                resources.extend(render::represent_many(
                    &tx,
                    &base,
                    *kind,
                    &page.items,
                    projection,
                )?);
            }
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
