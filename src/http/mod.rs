//! The SCIM API front door: routes, middleware (access log, request limits, the activity
//! records of refused requests), authentication (`auth`) and the handlers (`resources`,
//! `discovery`); errors map to SCIM error responses in `crate::error`.

pub(crate) mod auth;
mod body;
mod discovery;
mod feeds;
pub(crate) mod metrics;
mod paths;
pub(crate) mod quirks;
pub(crate) mod resources;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, web};

pub(crate) use crate::app::AppState;
pub(crate) use crate::app::Principal;
use crate::error::Error;
use crate::scim::ResourceKind;
use crate::scim::quirks::Quirks;

/// Who is asking, for the request's activity records.
pub(crate) fn activity_context(
    principal: &Principal,
    req: &HttpRequest,
) -> crate::store::activity::Context {
    crate::store::activity::Context {
        token_id: principal.token_id.clone(),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        method: req.method().to_string(),
        path: req.uri().to_string(),
        values: principal.activity_values,
    }
}

/// Notes and counts the non-standard shapes a request used.
pub(crate) fn record_quirks(state: &AppState, req: &HttpRequest, provider: &str, used: Quirks) {
    quirks::record(&state.counters, req, provider, used);
}

/// The application: every route, with SCIM errors for anything unmatched.
pub(crate) fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.max_body_size;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(limit))
        .wrap(from_fn(admit))
        .wrap(from_fn(access_log))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/feeds/{name}/jwks.json", web::get().to(feeds::jwks))
        .service(
            web::scope("/scim/v2/{provider}")
                .wrap(from_fn(auth::require_token))
                // Users and Groups first: the router tries routes in order, and each route with
                // a {segment} costs a regular-expression match (14k instructions) when tried.
                .service(resources::services(ResourceKind::User))
                .service(resources::services(ResourceKind::Group))
                .service(discovery::services())
                .service(
                    web::resource("/Feeds/{name}")
                        .route(web::post().to(feeds::poll))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/.search")
                        .route(web::post().to(resources::search_all))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found))
}

/// Liveness: `200` while the writer and the readers are there and moving, even if writes
/// fail for a reason a restart would not fix (a full disk); `503` naming the part that is gone
/// or stuck, so systemd or an orchestrator restarts the process.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health().await;
    health_answer(&health, health.is_alive())
}

/// Readiness: `200` while writes can commit and reads answer; `503` naming the part that
/// cannot (`"writer":"failing: the disk is full ..."`), so a load balancer stops sending
/// traffic to a server that can no longer write.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health().await;
    health_answer(&health, health.is_ok())
}

fn health_answer(health: &crate::store::Health, ok: bool) -> HttpResponse {
    if ok {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ok"}"#);
    }
    // What failed is logged where it failed (the writer, at most once a minute).
    tracing::debug!(writer = ?health.writer, readers = ?health.readers, "health check failed");
    let mut body = serde_json::json!({"status": "unavailable"});
    if let Some(w) = &health.writer {
        body["writer"] = w.as_str().into();
    }
    if let Some(r) = &health.readers {
        body["readers"] = r.as_str().into();
    }
    HttpResponse::ServiceUnavailable()
        .content_type("application/json")
        .insert_header((header::RETRY_AFTER, "1"))
        .body(body.to_string())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, Error> {
    let path = req.path();
    // Quoted back, but not at any length.
    let shown = match path.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &path[..cut]),
        None => path.to_string(),
    };
    Err(Error::NotFound(format!("no endpoint at {shown}")))
}

/// A method the endpoint does not answer: 405 with the SCIM error body.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::MethodNotAllowed(req.method().to_string()))
}

/// Before routing: refuses a request target over `MAX_TARGET` bytes (`414`) and a body whose
/// declared length is over the limit before reading any of it (`413`); spells endpoint names as
/// RFC 7644 does and drops a trailing slash (`paths::canonical`).
async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > crate::error::MAX_TARGET {
        return Err(Error::UriTooLong(target).into());
    }
    if let Some(path) = paths::canonical(req.path()) {
        let target = match req.query_string() {
            "" => path,
            query => format!("{path}?{query}"),
        };
        let mut parts = req.head().uri.clone().into_parts();
        parts.path_and_query = target.parse().ok();
        if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(usize::MAX, |s| s.config.max_body_size);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge(limit).into());
    }
    next.call(req).await
}

/// One line per request: provider, method, path, status, latency and token id — never a secret.
/// The id of a request: the client's `X-Request-Id` when it is a plausible one, else one made
/// here; echoed in the response and kept in the access log and the activity log.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

impl RequestId {
    fn of(req: &ServiceRequest) -> RequestId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static PREFIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!("{:08x}", chrono::Utc::now().timestamp_millis() as u32)
        });
        let given = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                    })
            });
        match given {
            Some(v) => RequestId(v.to_string()),
            None => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                RequestId(format!("{}-{n:x}", *PREFIX))
            }
        }
    }
}

/// Marks a list request that was Entra's Test Connection (see `store::activity`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionTest;

async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let request_id = RequestId::of(&req);
    req.extensions_mut().insert(request_id.clone());
    let body_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    // Kept as it is (a reference count), read only if the request is refused.
    let presented = req.headers().get(header::AUTHORIZATION).cloned();
    let method = req.method().clone();
    let path = req.path().to_string();
    let provider = path
        .strip_prefix("/scim/v2/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("-")
        .to_string();
    let mut res = next.call(req).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(r) = &mut res
        && let Ok(v) = header::HeaderValue::from_str(&request_id.0)
    {
        r.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), v);
    }
    if let (Some(state), Ok(r)) = (&state, &res) {
        record_activity(state, r, body_bytes).await;
    }
    let (status, token, quirk_names) = match &res {
        Ok(res) => (
            res.status().as_u16(),
            res.request()
                .extensions()
                .get::<auth::TokenId>()
                .map_or_else(|| "-".to_string(), |t| t.0.clone()),
            quirks::names(res.request()),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            "-".to_string(),
            "-".to_string(),
        ),
    };
    {
        let ext = res.as_ref().ok().map(|r| r.request().extensions());
        let provider = ext
            .as_ref()
            .and_then(|e| e.get::<Principal>())
            .map_or("-", |p| p.provider_name.as_str());
        metrics::request(
            provider,
            method_label(&method),
            &path,
            status,
            latency_ms / 1000.0,
        );
    }
    if let (401 | 429, Some(state), Err(e)) = (status, &state, &res) {
        let token = presented
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .and_then(|(_, t)| crate::auth::token::parse(t.trim()).map(|(id, _)| id.to_string()));
        let token = token.as_deref().unwrap_or("-");
        state
            .counters
            .refusal(&provider, token, status, &e.to_string());
        return res;
    }
    tracing::info!(
        provider = %provider,
        method = %method,
        path = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        token = %token,
        quirks = %quirk_names,
        request_id = %request_id.0,
        "request"
    );
    res
}

/// The method as a metrics label, from a fixed set.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Counts an authenticated request for its provider, and records it in the activity log when
/// it was refused (4xx or 5xx) or was Entra's Test Connection. Changes record themselves, in
/// their own transaction.
async fn record_activity<B>(state: &AppState, res: &ServiceResponse<B>, body_bytes: Option<i64>) {
    let req = res.request();
    let status = res.status().as_u16();
    let connection_test = {
        let ext = req.extensions();
        let Some(principal) = ext.get::<Principal>() else {
            return;
        };
        state.counters.request(
            &principal.provider_name,
            chrono::Utc::now().timestamp_millis(),
        );
        ext.get::<ConnectionTest>().is_some()
    };
    if status < 400 && !connection_test {
        return;
    }
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return;
    };
    let error = res.response().error().and_then(|e| e.as_error::<Error>());
    // `/scim/v2/{provider}/{Users|Groups}/{id}`
    let mut segments = req.path().split('/').skip(4);
    let kind = segments.next().and_then(|e| {
        [ResourceKind::User, ResourceKind::Group]
            .into_iter()
            .find(|k| k.endpoint() == e)
    });
    let resource_id = segments
        .next()
        .filter(|id| kind.is_some() && !id.starts_with('.'))
        .map(str::to_string);
    let refusal = crate::store::activity::Refusal {
        status,
        scim_type: error.and_then(|e| e.scim_type()).map(str::to_string),
        detail: error.map(|e| e.detail()),
        body_bytes,
        kind,
        resource_id,
        connection_test,
    };
    let ctx = activity_context(&principal, req);
    let pid = principal.provider_id;
    let store = state.store.clone();
    let recorded = async move {
        let write = store
            .write(move |c| crate::store::activity::record_refusal(c, pid, &ctx, &refusal))
            .await;
        if let Err(e) = write {
            tracing::debug!(error = %e, "could not record a refused request in the activity log");
        }
    };
    // A server error may come from the writer itself: its record must not hold the answer.
    if status >= 500 {
        actix_web::rt::spawn(recorded);
    } else {
        recorded.await;
    }
}
