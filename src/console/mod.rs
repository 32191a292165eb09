//! The admin console on `admin_listen`: server-rendered pages for identity providers, their
//! SCIM URL, tokens and extension schemas, read-only Users and Groups, the activity log and
//! the settings. Every change goes through the core the command line also calls (tokens:
//! `app::credentials`), on the writer. Sessions live in SQLite (`store::admins`); see
//! `session` for sign-in.

mod activity_export;
mod admins;
mod app_passwords;
mod detail;
mod feeds;
mod me;
mod pages;
mod person;
pub(crate) mod session;
mod test_connection;
mod view;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use maud::Markup;

pub(crate) use me::SignIns;
pub(crate) use session::Console;

use crate::store;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Content-Security-Policy of every console answer: scripts, styles and requests only from the
/// console itself, never inline, never in a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What a console request can fail with; each renders as a page (never as SCIM JSON).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// No valid session: a page request goes to the login page, then back to `0`.
    #[error("log in first")]
    Login(String),
    /// A session that has ended (idle or too old): as `Login`, and the login page says why.
    #[error("your session has ended")]
    Ended(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(store::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Failure {
        match e {
            store::Error::NotFound(m) => Failure::NotFound(m),
            store::Error::Conflict(m) | store::Error::Invalid(m) => Failure::Invalid(m),
            other => Failure::Store(other),
        }
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Failure::Login(_) | Failure::Ended(_) => StatusCode::SEE_OTHER,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::Invalid(_) => StatusCode::BAD_REQUEST,
            Failure::Store(store::Error::Busy(_) | store::Error::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::Store(_) | Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Failure::Login(next) | Failure::Ended(next) = self {
            let ended = match self {
                Failure::Ended(_) => "&ended=1",
                _ => "",
            };
            let to = format!("/login?next={}{ended}", urlencode(next));
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish();
        }
        let status = self.status_code();
        let message = match self {
            Failure::Store(_) | Failure::Internal(_) if status.is_server_error() => {
                tracing::error!(error = %self, "admin console request failed");
                match status {
                    StatusCode::SERVICE_UNAVAILABLE => {
                        "The database is busy or cannot be written right now; try again shortly."
                            .to_string()
                    }
                    _ => "Something went wrong on the server; the log has the details.".into(),
                }
            }
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        html_response(
            status,
            view::page(
                title,
                view::Nav::Error,
                None,
                maud::html! {
                    (view::error_box(Some(&message)))
                    p { a href="/" { "Back to the dashboard" } }
                },
            ),
        )
    }
}

/// What is escaped in a path segment or query value the console writes: all but unreserved
/// characters (RFC 3986), so ids and names stay readable.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

pub(crate) fn html_response(status: StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

pub(crate) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// The console's routes (the admin listener adds `/metrics` beside them).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/console.css", web::get().to(css))
        .route("/static/console.js", web::get().to(js))
        .route("/favicon.ico", web::get().to(HttpResponse::NoContent))
        .service(
            web::resource("/login")
                // A login form is small: a larger one is refused before it is read whole.
                .app_data(
                    web::FormConfig::default()
                        .limit(16 * 1024)
                        .error_handler(|_, _| {
                            Failure::Invalid(
                                "This login form is larger than a login form can be (16 KiB)."
                                    .into(),
                            )
                            .into()
                        }),
                )
                .route(web::get().to(pages::login_form))
                .route(web::post().to(pages::login)),
        )
        .route("/logout", web::post().to(pages::logout))
        .route("/oidc/callback", web::get().to(me::callback))
        .route("/oidc/{provider}/start", web::get().to(me::start))
        .route("/me", web::get().to(me::page))
        .route("/me/logout", web::post().to(me::logout))
        .route("/me/passwords", web::post().to(me::create))
        .route("/me/passwords/{id}/created", web::get().to(me::created))
        .route("/me/passwords/{id}/revoke", web::post().to(me::revoke))
        .route("/", web::get().to(pages::dashboard))
        .route("/providers", web::get().to(pages::providers))
        .route("/providers", web::post().to(pages::add_provider))
        .route("/providers/new", web::get().to(pages::new_provider))
        .route("/providers/{p}", web::get().to(pages::provider))
        .route(
            "/providers/{p}/edit",
            web::get().to(pages::edit_provider_form),
        )
        .route("/providers/{p}/edit", web::post().to(pages::edit_provider))
        .route(
            "/providers/{p}/remove",
            web::get().to(pages::remove_provider_form),
        )
        .route(
            "/providers/{p}/remove",
            web::post().to(pages::remove_provider),
        )
        .route("/providers/{p}/tokens", web::post().to(pages::create_token))
        .route("/providers/{p}/test", web::post().to(test_connection::test))
        .route(
            "/providers/{p}/tokens/{id}/created",
            web::get().to(pages::token_created),
        )
        .route(
            "/providers/{p}/tokens/{id}/rotate",
            web::get().to(pages::rotate_token_form),
        )
        .route(
            "/providers/{p}/tokens/{id}/rotate",
            web::post().to(pages::rotate_token),
        )
        .route(
            "/providers/{p}/tokens/{id}/revoke",
            web::get().to(pages::revoke_token_form),
        )
        .route(
            "/providers/{p}/tokens/{id}/revoke",
            web::post().to(pages::revoke_token),
        )
        .route(
            "/providers/{p}/ldap-accounts",
            web::post().to(pages::create_ldap_account),
        )
        .route(
            "/providers/{p}/ldap-accounts/{id}/created",
            web::get().to(pages::ldap_account_created),
        )
        .route(
            "/providers/{p}/ldap-accounts/{id}/revoke",
            web::get().to(pages::revoke_ldap_account_form),
        )
        .route(
            "/providers/{p}/ldap-accounts/{id}/revoke",
            web::post().to(pages::revoke_ldap_account),
        )
        .route(
            "/providers/{p}/app-passwords/{id}/revoke",
            web::get().to(app_passwords::revoke_form),
        )
        .route(
            "/providers/{p}/app-passwords/{id}/revoke",
            web::post().to(app_passwords::revoke),
        )
        .route("/providers/{p}/feeds", web::post().to(feeds::add))
        .route("/providers/{p}/feeds/{f}", web::get().to(feeds::show))
        .route(
            "/providers/{p}/feeds/{f}/pause",
            web::post().to(feeds::pause),
        )
        .route(
            "/providers/{p}/feeds/{f}/replay",
            web::post().to(feeds::replay),
        )
        .route(
            "/providers/{p}/feeds/{f}/rotate",
            web::post().to(feeds::rotate),
        )
        .route(
            "/providers/{p}/feeds/{f}/secret",
            web::get().to(feeds::secret),
        )
        .route(
            "/providers/{p}/feeds/{f}/remove",
            web::get().to(feeds::remove_form),
        )
        .route(
            "/providers/{p}/feeds/{f}/remove",
            web::post().to(feeds::remove),
        )
        .route("/providers/{p}/schemas", web::post().to(pages::add_schema))
        .route(
            "/providers/{p}/schemas/remove",
            web::get().to(pages::remove_schema_form),
        )
        .route(
            "/providers/{p}/schemas/remove",
            web::post().to(pages::remove_schema),
        )
        .route("/providers/{p}/{kind}", web::get().to(pages::resources))
        .route("/providers/{p}/{kind}/{id}", web::get().to(pages::resource))
        .route("/activity", web::get().to(pages::activity))
        .route("/activity/rows", web::get().to(pages::activity_rows))
        .route("/activity/export", web::get().to(pages::activity_export))
        .route("/activity/{seq}", web::get().to(pages::activity_record))
        .route("/audit", web::get().to(pages::audit))
        .route("/settings", web::get().to(pages::settings))
        .route("/settings/admins", web::post().to(admins::add))
        .route(
            "/settings/admins/{name}/remove",
            web::get().to(admins::remove_form),
        )
        .route(
            "/settings/admins/{name}/remove",
            web::post().to(admins::remove),
        )
        .route("/settings/password", web::post().to(admins::password));
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(JS)
}

/// Around every admin-listener request but `/metrics`: refuses SCIM bearer tokens (the console
/// knows only its sessions) and adds the headers that keep pages out of frames, caches and
/// inline code.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.path() == "/metrics" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if req.headers().contains_key(header::AUTHORIZATION) {
        let res = HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body(
                "The admin console does not take SCIM bearer tokens (or any Authorization \
                 header): log in at /login.\n",
            );
        return Ok(req.into_response(res).map_into_boxed_body());
    }
    let is_static = req.path().starts_with("/static/");
    let https = req
        .app_data::<web::Data<crate::app::AppState>>()
        .is_some_and(|s| s.config.tls_cert.is_some() && s.config.tls_key.is_some());
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    if https {
        // The console speaks only HTTPS here: browsers are to remember that for a year.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if !is_static {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

/// Anything the console does not serve: a page saying so (the path quoted, shortened).
pub(crate) async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, Failure> {
    let path: String = req.path().chars().take(200).collect();
    Err(Failure::NotFound(format!("There is no page at {path}.")))
}
