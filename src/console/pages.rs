//! The console's pages and the changes they make. Reads run on the store's reader threads;
//! changes on the writer through the same store functions as the command line.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::session::{self, Console, CsrfForm, Signed};
use super::view::{self, Chrome, Nav};
use super::{Failure, html_response, redirect, urlencode};
use crate::app::AppState;
use crate::app::admin::{self, Actor};
use crate::app::credentials::{self, Issue, Minted, Validity};
use crate::auth::TokenState;
use crate::scim::ResourceKind;
use crate::scim::projection::Projection;
use crate::store::activity::{self, Query};
use crate::store::credentials::CredentialKind;
use crate::store::providers::{self, Provider};
use crate::store::search::{self, Order, Paging};
use crate::store::tokens::{self, TokenInfo};
use crate::store::{self, admins, schemas};

type Page = Result<HttpResponse, Failure>;

/// Items per page of Users, Groups and activity.
const PAGE: i64 = 50;
const ACTIVITY_ROWS: usize = 200;
/// Members listed on a group's page.
const MEMBERS_SHOWN: usize = 100;

fn chrome(s: &Signed) -> Chrome<'_> {
    Chrome {
        admin: &s.session.admin,
        csrf: &s.session.csrf,
    }
}

fn ok(title: &str, nav: Nav, s: &Signed, body: maud::Markup) -> Page {
    Ok(html_response(
        StatusCode::OK,
        view::page(title, nav, Some(&chrome(s)), body),
    ))
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn is_tls(state: &AppState) -> bool {
    state.config.tls_cert.is_some() && state.config.tls_key.is_some()
}

/// Only local paths are followed after login, so a link cannot send an admin elsewhere:
/// one `/`, then no second `/` or `\\`, and no control character or space anywhere (browsers
/// drop tabs and line breaks from a URL, so `/<TAB>/evil.example` would be `//evil.example`,
/// and a line break cannot go into a header).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
    /// Set when a session ended: the page says so.
    ended: Option<String>,
    /// Set after the admin changed their password.
    changed: Option<String>,
}

pub(crate) async fn login_form(
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> HttpResponse {
    let sign_ins = super::me::providers_with_sign_in(&state).await;
    html_response(
        StatusCode::OK,
        view::login(
            &safe_next(q.next.as_deref()),
            "",
            match (&q.ended, &q.changed) {
                (_, Some(_)) => Some("Your password was changed: log in with the new one."),
                (Some(_), None) => Some(
                    "Your session has ended (too long without a request, or too long since \
                     logging in): log in again to go on where you were.",
                ),
                (None, None) => None,
            },
            &sign_ins,
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// A login from another site's page is refused: with `SameSite=Strict` a forged login could
/// not read the console, but it could sign a victim's browser into the attacker's account.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req.connection_info().host().to_string();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, h)| h == host)
}

pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    form: web::Form<LoginForm>,
) -> Page {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    if !same_origin(&req) {
        return Err(Failure::Forbidden(
            "this login form was sent from another site".into(),
        ));
    }
    let client = crate::web::client_ip(&req, &state.config);
    // A name no admin can have is neither kept (in the attempt budget), logged, nor shown back.
    let possible = admins::check_name(&form.name).is_ok();
    let shown = if possible { form.name.as_str() } else { "" };
    let sign_ins = super::me::providers_with_sign_in(&state).await;
    let refuse = |status: StatusCode, message: &str| {
        html_response(status, view::login(&next, shown, Some(message), &sign_ins))
    };
    let account = if possible {
        form.name.as_str()
    } else {
        "(not an account name)"
    };
    if let Some(secs) = console.wait(account, client) {
        return Ok(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed logins: wait {} minutes and try again.",
                secs.div_ceil(60)
            ),
        ));
    }
    let name = account.to_string();
    let stored = state
        .store
        .run(move |c| admins::password_hash(c, &name))
        .await?;
    // An unknown account costs an argon2 run too, so timing does not tell which names exist.
    let (admin_id, phc) = stored.unwrap_or((0, String::new()));
    let password = form.password.clone();
    let verified = state
        .verifier
        .check_password(password, phc)
        .await
        .unwrap_or(false);
    if !verified || admin_id == 0 {
        console.failed(account, client);
        tracing::warn!(account, client = ?client, "admin console login failed");
        let by = Actor::console(account, client);
        // The attempt budget bounds these writes; a database that cannot take one still answers.
        if let Err(e) = state
            .store
            .write(move |c| admin::sign_in_refused(c, &by))
            .await
        {
            tracing::warn!(error = %e, "a refused console login was not recorded");
        }
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            "Wrong account name or password.",
        ));
    }
    console.succeeded(account, client);
    let cookie = crate::auth::token::random_hex(32);
    let csrf = crate::auth::token::random_hex(32);
    let at = now().timestamp();
    let (stored_cookie, by) = (cookie.clone(), Actor::console(account, client));
    let kept = csrf.clone();
    let started = state
        .store
        .write(move |c| {
            let started = admin::SignIn {
                admin_id,
                cookie: &stored_cookie,
                csrf: &csrf,
                at,
            };
            admin::sign_in(c, &by, &started)
        })
        .await;
    match started {
        Ok(()) => {}
        Err(crate::store::Error::Unavailable(why)) => {
            // The database cannot be written: the session lives in memory, so the admin can
            // still read (and see why nothing can change).
            tracing::warn!(account, reason = %why, "admin console session kept in memory");
            console.remember(
                &cookie,
                admins::Session {
                    admin_id,
                    admin: account.to_string(),
                    csrf: kept,
                    created: at,
                },
                at,
            );
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(account, client = ?client, "admin console login");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .insert_header((
            header::SET_COOKIE,
            session::set_cookie(&cookie, is_tls(&state)),
        ))
        .finish())
}

pub(crate) async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    form: web::Form<CsrfForm>,
) -> Page {
    s.check(&form.csrf)?;
    if let Some(cookie) = session::cookie_of(&req) {
        console.forget(&cookie);
        let by = s.actor.clone();
        let ended = state
            .store
            .write(move |c| admin::sign_out(c, &by, &cookie))
            .await;
        match ended {
            Ok(()) | Err(crate::store::Error::Unavailable(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // An admin who signed in with the identity provider ends that session.
    super::me::end(&state, &req).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((header::SET_COOKIE, session::clear_cookie(is_tls(&state))))
        .finish())
}

fn scim_url(state: &AppState, provider: &str) -> String {
    crate::app::scim_base(&state.public_base, provider)
}

/// Seconds before a token's expiry from which the console warns (`token_expiry_warning`).
fn warn_within(state: &AppState) -> i64 {
    i64::try_from(state.config.token_expiry_warning.as_secs()).unwrap_or(i64::MAX)
}

/// A credential's state as a table shows it, and whether it expires soon enough to warn of.
/// A token rotated out still works until its overlap ends, as planned: no warning.
fn token_state(t: &TokenInfo, now: i64, warn_within: i64) -> (&'static str, bool) {
    let state = t.state(now);
    if state == TokenState::Active && t.replaced_by.is_some() {
        return ("rotated out", false);
    }
    let soon = state == TokenState::Active && t.expires - now <= warn_within;
    (state.as_str(), soon)
}

pub(crate) async fn dashboard(state: web::Data<AppState>, s: Signed) -> Page {
    let now_ms = now().timestamp_millis();
    let now_s = now_ms / 1000;
    let warn = warn_within(&state);
    let until = now_s.saturating_add(warn);
    let core = state.clone();
    let (providers, expiring) = state
        .store
        .run(move |c| -> store::Result<_> {
            Ok((
                crate::app::providers::summaries(c, now_ms, Some(&core.hour_counts))?,
                store::credentials::expiring(c, now_s, until)?,
            ))
        })
        .await?;
    ok(
        "Dashboard",
        Nav::Dashboard,
        &s,
        html! {
            @if !expiring.is_empty() {
                section.warning aria-labelledby="expiring" {
                    h2 #expiring {
                        "Credentials expiring within "
                        (crate::config::format_duration(state.config.token_expiry_warning))
                    }
                    ul {
                        @for k in &expiring {
                            li {
                                a href={"/providers/" (urlencode(&k.provider))} { (k.provider) }
                                @match k.kind {
                                    CredentialKind::Token => {
                                        ": token " code { (k.id) } " (" (k.description) ")"
                                    }
                                    CredentialKind::LdapAccount => {
                                        ": LDAP service account " code { (k.name) }
                                        " (" code { (k.id) } ")"
                                    }
                                    CredentialKind::AppPassword => {
                                        ": application password " code { (k.id) }
                                        " (" (k.description) ")"
                                    }
                                }
                                " expires " (view::time(k.expires))
                            }
                        }
                    }
                }
            }
            @if providers.is_empty() {
                p { "No identity providers yet. " a href="/providers/new" { "Add one" } "." }
            } @else {
                (view::table(
                    &["Provider", "Type", "Users", "Groups", "Last request", "Last write", "Errors (24 h)"],
                    html! {
                        @for crate::app::providers::Summary { provider: p, usage, status: st } in &providers {
                            tr.failed[st.errors_24h > 0] {
                                td { a href={"/providers/" (urlencode(&p.name))} { (p.name) } }
                                td { (kind_label(p)) }
                                td { (usage.users) }
                                td { (usage.groups) }
                                td { (view::time_ms(st.last_request)) }
                                td { (view::time_ms(st.last_write)) }
                                td { (st.errors_24h) }
                            }
                        }
                    }
                ))
            }
        },
    )
}

fn kind_label(p: &Provider) -> &'static str {
    match p.kind {
        crate::scim::ProviderKind::Generic => "Generic",
        crate::scim::ProviderKind::Entra => "Entra ID",
    }
}

pub(crate) async fn providers(
    state: web::Data<AppState>,
    s: Signed,
    q: web::Query<view::Done>,
) -> Page {
    let list = state.store.run(|c| providers::list(c)).await?;
    ok(
        "Identity providers",
        Nav::Providers,
        &s,
        html! {
            (q.notice())
            p { a.button href="/providers/new" { "Add identity provider" } }
            @if list.is_empty() {
                p { "None yet." }
            } @else {
                (view::table(&["Name", "Type", "Description", "Created"], html! {
                    @for p in &list {
                        tr {
                            td { a href={"/providers/" (urlencode(&p.name))} { (p.name) } }
                            td { (kind_label(p)) }
                            td { (p.description) }
                            td { (view::time(p.created)) }
                        }
                    }
                }))
            }
        },
    )
}

fn provider_form(
    s: &Signed,
    action: &str,
    name: Option<&str>,
    description: &str,
    kind: &str,
    message: Option<&str>,
) -> maud::Markup {
    html! {
        (view::error_box(message))
        form.stack method="post" action=(action) {
            (view::csrf(&s.session.csrf))
            @if let Some(n) = name {
                label for="name" { "Name (used in the SCIM URL)" }
                input #name name="name" type="text" required maxlength="64"
                    pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*" aria-describedby="name-rule"
                    title="1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; no spaces"
                    value=(n);
                p.hint #name-rule {
                    "1 to 64 letters, digits, " code { "." } ", " code { "_" } " or " code { "-" }
                    ", starting with a letter or digit; no spaces (it becomes part of the URL "
                    code { "/scim/v2/NAME" } ")."
                }
            }
            label for="description" { "Description" }
            input #description name="description" type="text" value=(description);
            fieldset {
                legend { "Provider type" }
                label { input type="radio" name="kind" value="generic" checked[kind != "entra"]; " Generic (Okta, OneLogin, JumpCloud, any SCIM client)" }
                label { input type="radio" name="kind" value="entra" checked[kind == "entra"]; " Microsoft Entra ID" }
            }
            button type="submit" { "Save" }
        }
    }
}

pub(crate) async fn new_provider(s: Signed) -> Page {
    ok(
        "Add identity provider",
        Nav::Providers,
        &s,
        provider_form(&s, "/providers", Some(""), "", "generic", None),
    )
}

#[derive(Deserialize)]
pub(crate) struct ProviderForm {
    csrf: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    kind: String,
}

pub(crate) async fn add_provider(
    state: web::Data<AppState>,
    s: Signed,
    form: web::Form<ProviderForm>,
) -> Page {
    s.check(&form.csrf)?;
    let form = form.into_inner();
    let name = form.name.clone().unwrap_or_default().trim().to_string();
    let again = |message: &str| {
        Ok(html_response(
            StatusCode::BAD_REQUEST,
            view::page(
                "Add identity provider",
                Nav::Providers,
                Some(&chrome(&s)),
                provider_form(
                    &s,
                    "/providers",
                    Some(&name),
                    &form.description,
                    &form.kind,
                    Some(message),
                ),
            ),
        ))
    };
    let kind = match form.kind.parse::<crate::scim::ProviderKind>() {
        Ok(k) => k,
        Err(e) => return again(&e),
    };
    let at = now().timestamp();
    let (n, d, by) = (name.clone(), form.description.clone(), s.actor.clone());
    match state
        .store
        .write(move |c| admin::add_provider(c, &by, &n, &d, kind, at))
        .await
    {
        Ok(p) => {
            tracing::info!(provider = %p.name, kind = %p.kind, admin = %s.session.admin, "identity provider added in the admin console");
            Ok(redirect(&format!(
                "/providers/{}?{}",
                urlencode(&p.name),
                view::Done::query("provider-added", &p.name)
            )))
        }
        Err(store::Error::Conflict(m) | store::Error::Invalid(m)) => again(&m),
        Err(e) => Err(e.into()),
    }
}

/// Drops what this server remembers of a provider's tokens, so the provider's next request
/// reads its type and schema model afresh (the command line's changes, from another process,
/// reach the server one request later).
async fn forget_tokens(state: &AppState, provider: &str) {
    let name = provider.to_string();
    let ids = state
        .store
        .run(move |c| -> store::Result<Vec<String>> {
            let p = providers::require(c, &name)?;
            Ok(tokens::list(c, Some(p.id))?
                .into_iter()
                .map(|t| t.id)
                .collect())
        })
        .await
        .unwrap_or_default();
    for id in ids {
        state.records.forget(&id);
    }
}

async fn require_provider(state: &AppState, name: &str) -> Result<Provider, Failure> {
    let name = name.to_string();
    Ok(state
        .store
        .run(move |c| providers::require(c, &name))
        .await?)
}

pub(crate) async fn edit_provider_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
) -> Page {
    let p = require_provider(&state, &path).await?;
    ok(
        &format!("Edit {}", p.name),
        Nav::Providers,
        &s,
        provider_form(
            &s,
            &format!("/providers/{}/edit", urlencode(&p.name)),
            None,
            &p.description,
            p.kind.as_str(),
            None,
        ),
    )
}

pub(crate) async fn edit_provider(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<ProviderForm>,
) -> Page {
    s.check(&form.csrf)?;
    let kind = form
        .kind
        .parse::<crate::scim::ProviderKind>()
        .map_err(Failure::Invalid)?;
    let changes = admin::ProviderChanges {
        description: Some(form.description.clone()),
        kind: Some(kind),
        ..Default::default()
    };
    let (name, by) = (path.into_inner(), s.actor.clone());
    let (p, _) = state
        .store
        .write(move |c| admin::set_provider(c, &by, &name, &changes))
        .await?;
    tracing::info!(provider = %p.name, kind = %p.kind, admin = %s.session.admin, "identity provider changed in the admin console");
    forget_tokens(&state, &p.name).await;
    Ok(redirect(&format!(
        "/providers/{}?{}",
        urlencode(&p.name),
        view::Done::query("provider-changed", &p.name)
    )))
}

pub(crate) async fn remove_provider_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
) -> Page {
    let name = path.into_inner();
    let (p, usage, toks) = state
        .store
        .run(move |c| -> store::Result<_> {
            let p = providers::require(c, &name)?;
            Ok((
                p.clone(),
                providers::usage(c, p.id)?,
                tokens::list(c, Some(p.id))?.len(),
            ))
        })
        .await?;
    ok(
        &format!("Remove {}?", p.name),
        Nav::Providers,
        &s,
        html! {
            p.warning role="alert" {
                "Removing identity provider " strong { (p.name) } " deletes, for good: "
                (usage.users) " users, " (usage.groups) " groups and " (toks) " tokens, "
                "with their activity. Its SCIM URL stops working at once. Take a backup first "
                "if in doubt (" code { "scimd backup FILE" } ")."
            }
            form method="post" action={"/providers/" (urlencode(&p.name)) "/remove"} {
                (view::csrf(&s.session.csrf))
                input type="hidden" name="confirm" value=(p.name);
                button.danger type="submit" { "Remove " (p.name) " and its data" }
                " "
                a href={"/providers/" (urlencode(&p.name))} { "Cancel" }
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    csrf: String,
    confirm: String,
}

pub(crate) async fn remove_provider(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Page {
    s.check(&form.csrf)?;
    let name = path.into_inner();
    if form.confirm != name {
        return Err(Failure::Invalid(
            "the confirmation does not name this provider".into(),
        ));
    }
    let (removing, by) = (name.clone(), s.actor.clone());
    let usage = state
        .store
        .write(move |c| admin::remove_provider(c, &by, &removing, true))
        .await?;
    tracing::info!(provider = %name, users = usage.users, groups = usage.groups, admin = %s.session.admin, "identity provider removed in the admin console");
    Ok(redirect(&format!(
        "/providers?{}",
        view::Done::query("provider-removed", &name)
    )))
}

/// The provider page: its SCIM tab (URL, type, tokens, token creation) and its extensions.
pub(crate) async fn provider(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    q: web::Query<view::Done>,
) -> Page {
    let notice = q.notice();
    provider_page(&state, &s, &path, Err(notice), StatusCode::OK).await
}

/// A form the provider page refused: why, and what it held that the page shows again.
struct Refused<'a> {
    message: &'a str,
    schema_draft: Option<&'a str>,
}

impl<'a> Refused<'a> {
    fn new(message: &'a str) -> Refused<'a> {
        Refused {
            message,
            schema_draft: None,
        }
    }
}

/// A provider's page; `said` is an error to show (`Ok`, from a form just refused, with what
/// the form held to show again) or a confirmation (`Err`).
async fn provider_page(
    state: &web::Data<AppState>,
    s: &Signed,
    name: &str,
    said: Result<Refused<'_>, maud::Markup>,
    status: StatusCode,
) -> Page {
    let (message, draft, notice) = match &said {
        Ok(r) => (Some(r.message), r.schema_draft, html! {}),
        Err(n) => (None, None, n.clone()),
    };
    let now_ms = now().timestamp_millis();
    let now_s = now_ms / 1000;
    let name = name.to_string();
    let core = state.clone();
    let o = state
        .store
        .run(move |c| crate::app::providers::overview(c, &name, now_ms, Some(&core.hour_counts)))
        .await?;
    let (p, usage, st) = (&o.summary.provider, o.summary.usage, &o.summary.status);
    let toks: Vec<&TokenInfo> = o.of_kind(CredentialKind::Token).collect();
    let accounts: Vec<_> = o.of_kind(CredentialKind::LdapAccount).collect();
    let exts = &o.extensions;
    let base = format!("/providers/{}", urlencode(&p.name));
    let body = html! {
        (view::error_box(message))
        (notice)
        p.summary {
            (kind_label(p)) " · " (p.description) " · "
            a href={(base) "/Users"} { (usage.users) " users" } " · "
            a href={(base) "/Groups"} { (usage.groups) " groups" } " · "
            "last request " (view::time_ms(st.last_request)) " · "
            a href={"/activity?provider=" (urlencode(&p.name))} { "activity" }
        }
        p {
            a href={(base) "/edit"} { "Edit" } " · "
            a href={(base) "/remove"} { "Remove…" }
        }
        section aria-labelledby="scim" {
            h2 #scim { "SCIM" }
            label for="scim-url" { "SCIM base URL" }
            (view::copyable("scim-url", &scim_url(state, &p.name), "SCIM base URL"))
            @if let Some(w) = super::test_connection::url_warning(&scim_url(state, &p.name)) {
                p.warning { (w) }
            }
            p.hint {
                @if p.kind == crate::scim::ProviderKind::Entra {
                    "In Entra ID: Provisioning → Admin Credentials → Tenant URL; the token goes into Secret Token."
                } @else {
                    "Give the identity provider this URL and a token as a Bearer token."
                }
            }
            (super::test_connection::form(&p.name, &s.session.csrf))
            h3 { "Tokens" }
            @if toks.is_empty() {
                p { "No tokens yet." }
            } @else {
                (view::table(&["Token", "Description", "Created", "Expires", "Last used", "State", "Actions"], html! {
                    @for t in &toks {
                        @let (label, soon) = token_state(t, now_s, warn_within(state));
                        tr.soon[soon] {
                            td { code { (t.id) } }
                            td { (t.description) @if t.read_only { " (read-only)" } }
                            td { (view::time(t.created)) }
                            td { (view::time(t.expires)) @if soon { " — expires soon" } }
                            td { (t.last_used.map_or("never".to_string(), view::time)) }
                            td {
                                (label)
                                @if let Some(new) = &t.replaced_by {
                                    @if t.state(now_s) == TokenState::Active {
                                        " (replaced by " code { (new) } "; works until it expires)"
                                    }
                                }
                            }
                            td {
                                @if t.state(now_s) == TokenState::Active {
                                    @if t.replaced_by.is_none() {
                                        a href={(base) "/tokens/" (t.id) "/rotate"} { "Rotate" } " · "
                                    }
                                    a href={(base) "/tokens/" (t.id) "/revoke"} { "Revoke" }
                                }
                            }
                        }
                    }
                }))
            }
            h3 { "Create token" }
            form.stack method="post" action={(base) "/tokens"} {
                (view::csrf(&s.session.csrf))
                label for="token-description" { "Description" }
                input #token-description name="description" type="text" value="";
                label for="validity" { "Valid for" }
                select #validity name="validity" {
                    option value="30d" { "30 days" }
                    option value="90d" { "90 days" }
                    option value="180d" { "180 days" }
                    option value="365d" selected { "365 days" }
                    option value="date" { "until a date…" }
                }
                label for="until" { "Date (when “until a date” is chosen; midnight UTC)" }
                input #until name="until" type="date";
                button type="submit" { "Create token" }
            }
        }
        (ldap_section(&o, &accounts, &s.session.csrf, (now_s, warn_within(state))))
        (super::app_passwords::section(&o, &format!("{}/oidc/callback", state.config.console_url()), now_s))
        (super::feeds::section(&o, &s.session.csrf))
        section aria-labelledby="schemas" {
            h2 #schemas { "Extension schemas" }
            @if exts.is_empty() {
                p { "None: the provider uses the core schemas and the enterprise extension." }
            } @else {
                (view::table(&["Schema", "For", "Indexed", "Added", "Actions"], html! {
                    @for e in exts {
                        tr {
                            td { code { (e.urn) } }
                            td { (e.kind.endpoint()) }
                            td { (e.indexed.join(", ")) }
                            td { (view::time(e.created)) }
                            td { a href={(base) "/schemas/remove?urn=" (urlencode(&e.urn))} { "Remove…" } }
                        }
                    }
                }))
            }
            h3 { "Add an extension schema" }
            form.stack method="post" action={(base) "/schemas"} {
                (view::csrf(&s.session.csrf))
                label for="schema-kind" { "For" }
                select #schema-kind name="kind" {
                    option value="User" { "Users" }
                    option value="Group" { "Groups" }
                }
                label for="schema-file" { "Schema file (JSON, RFC 7643 section 7)" }
                input #schema-file type="file" accept=".json,application/json" data-into="schema-definition";
                label for="schema-definition" { "…or paste it" }
                textarea #schema-definition name="definition" rows="8" required { (draft.unwrap_or_default()) }
                label for="schema-index" { "Index these attributes (comma-separated, optional)" }
                input #schema-index name="index" type="text";
                button type="submit" { "Add schema" }
            }
        }
    };
    Ok(html_response(
        status,
        view::page(&p.name, Nav::Providers, Some(&chrome(s)), body),
    ))
}

/// A provider's LDAP service accounts and its LDAP traffic of the last 24 hours.
fn ldap_section(
    o: &crate::app::providers::Overview,
    accounts: &[&store::credentials::Credential],
    csrf: &str,
    (now_s, warn): (i64, i64),
) -> maud::Markup {
    let traffic = &o.ldap_traffic;
    let base = format!("/providers/{}", urlencode(&o.summary.provider.name));
    html! {
        section aria-labelledby="ldap" {
            h2 #ldap { "LDAP" }
            dl.facts {
                dt { "Base DN" } dd { code { (o.ldap_base) } }
                dt { "Service accounts bind as" }
                dd { code { "cn=NAME,ou=services," (o.ldap_base) } }
                dt { "POSIX identities" }
                dd {
                    @match &o.posix {
                        None => { "off (" code { "scimd ldap posix --provider " (o.summary.provider.name) " --on" } ")" }
                        Some(x) => {
                            "on: uidNumber and gidNumber from " (x.first_id) " + the resource's key (at most "
                            (x.last_id) "), home " code { (x.home) } ", shell " code { (x.shell) } ", primary group "
                            @match x.primary_gid { None => { "each user's own" } Some(g) => { (g) } }
                        }
                    }
                }
            }
            @if !o.ldap_mappings.is_empty() {
                h3 { "The provider's own attributes" }
                (view::table(&["Of", "LDAP attribute", "SCIM path"], html! {
                    @for (kind, attr, path) in &o.ldap_mappings {
                        tr { td { (kind.endpoint()) } td { code { (attr) } } td { code { (path) } } }
                    }
                }))
            }
            h3 { "Service accounts" }
            @if accounts.is_empty() {
                p { "No LDAP service accounts." }
            } @else {
                (view::table(&["Name", "Id", "Created", "Expires", "Last used", "State", "Actions"], html! {
                    @for a in accounts {
                        @let (label, soon) = token_state(a, now_s, warn);
                        tr.soon[soon] {
                            td { code { (a.name) } }
                            td { code { (a.id) } }
                            td { (view::time(a.created)) }
                            td { (view::time(a.expires)) @if soon { " — expires soon" } }
                            td { (a.last_used.map_or("never".to_string(), view::time)) }
                            td { (label) }
                            td {
                                @if a.revoked.is_none() && a.expires > now_s {
                                    a href={(base) "/ldap-accounts/" (a.id) "/revoke"} aria-label={"Revoke " (a.name)} { "Revoke" }
                                }
                            }
                        }
                    }
                }))
            }
            h3 { "Create a service account" }
            form.stack method="post" action={(base) "/ldap-accounts"} {
                (view::csrf(csrf))
                label for="ldap-name" { "Name (letters, digits, " code { "-" } ", " code { "_" } ", " code { "." } "; the application's, e.g. grafana)" }
                input #ldap-name name="name" type="text" required maxlength="64";
                label for="ldap-validity" { "Expires after" }
                select #ldap-validity name="validity" {
                    option value="90d" { "90 days" }
                    option value="180d" { "180 days" }
                    option value="365d" selected { "365 days" }
                }
                button type="submit" { "Create service account" }
            }
            @if !traffic.is_empty() {
                h3 { "Last 24 hours" }
                (view::table(&["Account", "Binds", "Failed binds", "Searches", "Last"], html! {
                    @for t in traffic {
                        tr {
                            td { code { (t.account) } }
                            td { (t.binds) }
                            td { (t.failed_binds) }
                            td { (t.searches) }
                            td { (view::time_ms(Some(t.last))) }
                        }
                    }
                }))
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
    #[serde(default)]
    description: String,
    validity: String,
    #[serde(default)]
    until: String,
}

/// Hashes a fresh secret on the argon2 threads; the caller stores it.
fn shown_once(
    s: &Signed,
    state: &AppState,
    p: &Provider,
    info: &TokenInfo,
    secret: &str,
    note: Option<String>,
) -> Page {
    let base = format!("/providers/{}", urlencode(&p.name));
    let body = html! {
        div.dialog role="dialog" aria-labelledby="new-token" {
            h2 #new-token { "Token " code { (info.id) } " created" }
            p.warning role="alert" {
                "Copy the token now: it will not be shown again. Only a hash of it is stored."
            }
            label for="token" { "Token" }
            (view::copyable("token", secret, "Token"))
            label for="token-scim-url" { "SCIM base URL" }
            (view::copyable("token-scim-url", &scim_url(state, &p.name), "SCIM base URL"))
            p { "Valid until " (view::time(info.expires)) "." }
            @if let Some(n) = note { p { (n) } }
            p { a.button href=(base) { "Done" } }
        }
    };
    let mut res = html_response(
        StatusCode::OK,
        view::page("New token", Nav::Providers, Some(&chrome(s)), body),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

pub(crate) async fn create_token(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<TokenForm>,
) -> Page {
    s.check(&form.csrf)?;
    let p = require_provider(&state, &path).await?;
    let at = now();
    let validity = if form.validity == "date" {
        Validity::Until(&form.until)
    } else {
        Validity::For(&form.validity)
    };
    let expires = match credentials::expiry(validity, at, state.config.token_max_lifetime) {
        Ok(e) => e,
        Err(m) => {
            return provider_page(
                &state,
                &s,
                &p.name,
                Ok(Refused::new(&m)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let (minted, secret) = Minted::on(&state.verifier)
        .await
        .map_err(Failure::Internal)?;
    let issue = Issue {
        description: form.description.clone(),
        read_only: false,
        created: at.timestamp(),
        expires,
    };
    let (provider, by) = (p.clone(), s.actor.clone());
    let info = state
        .store
        .write(move |c| admin::create_token(c, &by, &minted, &provider, &issue))
        .await?;
    tracing::info!(provider = %p.name, token = %info.id, admin = %s.session.admin, "token created in the admin console");
    let key = console.stash(&s.session.csrf, secret.expose().to_string(), None);
    Ok(to_reveal(&p, &info, &key))
}

/// The redirect from a form that made a token to the page that shows its secret once: a
/// reload of that page, or Back, never makes another.
fn to_reveal(p: &Provider, info: &TokenInfo, key: &str) -> HttpResponse {
    redirect(&format!(
        "/providers/{}/tokens/{}/created?reveal={key}",
        urlencode(&p.name),
        info.id
    ))
}

/// A new token's secret, shown once to the session that made it; asked again, the page says
/// it is gone and how to get another.
pub(crate) async fn token_created(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<(String, String)>,
    q: web::Query<view::RevealQuery>,
) -> Page {
    let (p, info) = token_of(&state, &path.0, &path.1).await?;
    if let Some((secret, note)) = console.reveal(&q.reveal, &s.session.csrf) {
        return shown_once(&s, &state, &p, &info, &secret, note);
    }
    let base = format!("/providers/{}", urlencode(&p.name));
    let mut res = ok(
        &format!("Token {}", info.id),
        Nav::Providers,
        &s,
        html! {
            p.warning role="alert" {
                "The secret of token " code { (info.id) } " was shown once, when it was made, "
                "and is not kept: it cannot be shown again. If it was not copied, rotate the "
                "token (or revoke it and create another)."
            }
            p { a.button href=(base) { "Back to " (p.name) } }
        },
    )?;
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// A provider's credential of `kind` with this id, active or not; `NotFound` when it is
/// another provider's.
async fn credential_of(
    state: &AppState,
    kind: CredentialKind,
    provider: &str,
    id: &str,
) -> Result<(Provider, TokenInfo), Failure> {
    let (name, wanted) = (provider.to_string(), id.to_string());
    let (p, k) = state
        .store
        .run(move |c| -> store::Result<_> {
            let p = providers::require(c, &name)?;
            let k = store::credentials::require(c, kind, &wanted)?;
            Ok((p, k))
        })
        .await?;
    if k.provider_id != p.id {
        return Err(Failure::NotFound(format!(
            "identity provider {} has no {} {id}",
            p.name,
            kind.noun()
        )));
    }
    Ok((p, k))
}

async fn token_of(
    state: &AppState,
    provider: &str,
    id: &str,
) -> Result<(Provider, TokenInfo), Failure> {
    credential_of(state, CredentialKind::Token, provider, id).await
}

pub(crate) async fn rotate_token_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
) -> Page {
    let (p, t) = token_of(&state, &path.0, &path.1).await?;
    let base = format!("/providers/{}", urlencode(&p.name));
    ok(
        &format!("Rotate token {}", t.id),
        Nav::Providers,
        &s,
        html! {
            p {
                "A new token replaces " code { (t.id) } " (" (t.description) "), valid as long as "
                "this one was. The old token keeps working for the overlap you choose, so the "
                "identity provider can be given the new one without a gap."
            }
            form.stack method="post" action={(base) "/tokens/" (t.id) "/rotate"} {
                (view::csrf(&s.session.csrf))
                label for="overlap" { "The old token keeps working for" }
                select #overlap name="overlap" {
                    option value="1h" { "1 hour" }
                    option value="24h" selected { "24 hours" }
                    option value="7d" { "7 days" }
                }
                button type="submit" { "Rotate" }
                a href=(base) { "Cancel" }
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct RotateForm {
    csrf: String,
    overlap: String,
}

pub(crate) async fn rotate_token(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<RotateForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (p, old) = token_of(&state, &path.0, &path.1).await?;
    let overlap = crate::config::parse_duration(&form.overlap).map_err(Failure::Invalid)?;
    let plan = credentials::plan_rotation(
        old.clone(),
        None,
        overlap,
        now(),
        state.config.token_max_lifetime,
    )
    .map_err(Failure::Invalid)?;
    let (minted, secret) = Minted::on(&state.verifier)
        .await
        .map_err(Failure::Internal)?;
    let (provider, by) = (p.clone(), s.actor.clone());
    let (info, old_now) = state
        .store
        .write(move |c| admin::rotate_token(c, &by, &minted, &provider, &plan))
        .await?;
    tracing::info!(provider = %p.name, old = %old.id, token = %info.id, admin = %s.session.admin, "token rotated in the admin console");
    let note = format!(
        "The old token {} keeps working until {}: put the new one into the identity provider \
         before then.",
        old.id,
        view::time(old_now.expires)
    );
    let key = console.stash(&s.session.csrf, secret.expose().to_string(), Some(note));
    Ok(to_reveal(&p, &info, &key))
}

pub(crate) async fn revoke_token_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
) -> Page {
    let (p, t) = token_of(&state, &path.0, &path.1).await?;
    let base = format!("/providers/{}", urlencode(&p.name));
    ok(
        &format!("Revoke token {}?", t.id),
        Nav::Providers,
        &s,
        html! {
            p.warning role="alert" {
                "Token " code { (t.id) } " (" (t.description) ") stops working at once: the "
                "next SCIM request that uses it gets 401, and an identity provider still using "
                "it stops provisioning."
            }
            form method="post" action={(base) "/tokens/" (t.id) "/revoke"} {
                (view::csrf(&s.session.csrf))
                button.danger type="submit" { "Revoke token" }
                " "
                a href=(base) { "Cancel" }
            }
        },
    )
}

pub(crate) async fn revoke_token(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (p, t) = token_of(&state, &path.0, &path.1).await?;
    let (id, at, by) = (t.id.clone(), now().timestamp(), s.actor.clone());
    state
        .store
        .write(move |c| admin::revoke(c, &by, CredentialKind::Token, &id, at))
        .await?;
    // The server's memory of verified tokens must not outlive the revocation.
    state.records.forget(&t.id);
    tracing::info!(provider = %p.name, token = %t.id, admin = %s.session.admin, "token revoked in the admin console");
    Ok(redirect(&format!(
        "/providers/{}?{}",
        urlencode(&p.name),
        view::Done::query("token-revoked", &t.id)
    )))
}

#[derive(Deserialize)]
pub(crate) struct LdapAccountForm {
    csrf: String,
    name: String,
    validity: String,
}

/// Creates an LDAP service account; its secret is shown once on the page the form redirects
/// to.
pub(crate) async fn create_ldap_account(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<LdapAccountForm>,
) -> Page {
    s.check(&form.csrf)?;
    let p = require_provider(&state, &path).await?;
    let name = form.name.trim().to_string();
    let at = now();
    let checked = store::ldap_accounts::check_name(&name).and_then(|()| {
        credentials::expiry(
            Validity::For(&form.validity),
            at,
            state.config.token_max_lifetime,
        )
    });
    let expires = match checked {
        Ok(e) => e,
        Err(m) => {
            return provider_page(
                &state,
                &s,
                &p.name,
                Ok(Refused::new(&m)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let (minted, new) = Minted::bare_on(&state.verifier)
        .await
        .map_err(Failure::Internal)?;
    let (provider, by) = (p.name.clone(), s.actor.clone());
    let (n, created) = (name.clone(), at.timestamp());
    let made = state
        .store
        .write(move |c| {
            let account = store::ldap_accounts::NewAccount {
                id: &minted.id,
                provider: &provider,
                name: &n,
                secret_hash: &minted.hash,
                fingerprint: Some(&minted.fingerprint),
                created,
                expires,
            };
            admin::add_ldap_account(c, &by, &account)
        })
        .await;
    let a = match made {
        Ok(a) => a,
        Err(store::Error::Conflict(m) | store::Error::Invalid(m)) => {
            return provider_page(
                &state,
                &s,
                &p.name,
                Ok(Refused::new(&m)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(provider = %p.name, account = %a.name, admin = %s.session.admin, "LDAP service account created in the admin console");
    let key = console.stash(&s.session.csrf, new.secret.expose().to_string(), None);
    Ok(redirect(&format!(
        "/providers/{}/ldap-accounts/{}/created?reveal={key}",
        urlencode(&p.name),
        a.id
    )))
}

/// A new LDAP service account's bind DN and secret, shown once to the session that made it.
pub(crate) async fn ldap_account_created(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<(String, String)>,
    q: web::Query<view::RevealQuery>,
) -> Page {
    let (p, a) = ldap_account_of(&state, &path.0, &path.1).await?;
    let tree = {
        let pid = p.id;
        let name = p.name.clone();
        state
            .store
            .run(move |c| store::ldap_accounts::base_of(c, pid))
            .await?
            .unwrap_or_else(|| crate::scim::directory::base_dn(&name))
    };
    let bind_dn = format!(
        "cn={},ou=services,{tree}",
        crate::scim::directory::escape(&a.name)
    );
    let base = format!("/providers/{}", urlencode(&p.name));
    let secret = console.reveal(&q.reveal, &s.session.csrf);
    let body = html! {
        @match &secret {
            Some((secret, _)) => {
                div.dialog role="dialog" aria-labelledby="new-account" {
                    h2 #new-account { "LDAP service account " code { (a.name) } " created" }
                    p.warning role="alert" {
                        "Copy the password now: it will not be shown again. Only a hash of it is stored."
                    }
                    label for="bind-dn" { "Bind DN" }
                    (view::copyable("bind-dn", &bind_dn, "Bind DN"))
                    label for="base-dn" { "Base DN" }
                    (view::copyable("base-dn", &tree, "Base DN"))
                    label for="account-secret" { "Password" }
                    (view::copyable("account-secret", secret, "Password"))
                    p { "Valid until " (view::time(a.expires)) "." }
                    p { a.button href={(base) "#ldap"} { "Done" } }
                }
            }
            None => {
                p.warning role="alert" {
                    "The password of LDAP service account " code { (a.name) } " was shown once, "
                    "when it was made, and is not kept: it cannot be shown again. If it was not "
                    "copied, revoke the account and create another."
                }
                p { a.button href={(base) "#ldap"} { "Back to " (p.name) } }
            }
        }
    };
    let mut res = html_response(
        StatusCode::OK,
        view::page(
            "New LDAP service account",
            Nav::Providers,
            Some(&chrome(&s)),
            body,
        ),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

async fn ldap_account_of(
    state: &AppState,
    provider: &str,
    id: &str,
) -> Result<(Provider, TokenInfo), Failure> {
    credential_of(state, CredentialKind::LdapAccount, provider, id).await
}

pub(crate) async fn revoke_ldap_account_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
) -> Page {
    let (p, a) = ldap_account_of(&state, &path.0, &path.1).await?;
    let base = format!("/providers/{}", urlencode(&p.name));
    ok(
        &format!("Revoke LDAP service account {}?", a.name),
        Nav::Providers,
        &s,
        html! {
            p.warning role="alert" {
                "LDAP service account " code { (a.name) } " stops working at once: its next bind "
                "fails, and connections bound with it read nothing more. Applications that use it "
                "(Grafana, SSSD, a NAS) stop finding users until they are given another."
            }
            form method="post" action={(base) "/ldap-accounts/" (a.id) "/revoke"} {
                (view::csrf(&s.session.csrf))
                button.danger type="submit" { "Revoke service account" }
                " "
                a href={(base) "#ldap"} { "Cancel" }
            }
        },
    )
}

pub(crate) async fn revoke_ldap_account(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (p, a) = ldap_account_of(&state, &path.0, &path.1).await?;
    let (id, at, by) = (a.id.clone(), now().timestamp(), s.actor.clone());
    state
        .store
        .write(move |c| admin::revoke(c, &by, CredentialKind::LdapAccount, &id, at))
        .await?;
    tracing::info!(provider = %p.name, account = %a.name, admin = %s.session.admin, "LDAP service account revoked in the admin console");
    Ok(redirect(&format!(
        "/providers/{}?{}#ldap",
        urlencode(&p.name),
        view::Done::query("account-revoked", &a.name)
    )))
}

#[derive(Deserialize)]
pub(crate) struct SchemaForm {
    csrf: String,
    kind: String,
    definition: String,
    #[serde(default)]
    index: String,
}

pub(crate) async fn add_schema(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<SchemaForm>,
) -> Page {
    s.check(&form.csrf)?;
    let form = form.into_inner();
    let kind = ResourceKind::from_name(&form.kind)
        .ok_or_else(|| Failure::Invalid(format!("unknown resource type {:?}", form.kind)))?;
    let index: Vec<String> = form
        .index
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let (name, at) = (path.into_inner(), now().timestamp());
    let (provider, by) = (name.clone(), s.actor.clone());
    // Shown again in the form if the schema is refused, so a pasted one is not lost.
    let draft = form.definition.clone();
    match state
        .store
        .write(move |c| admin::add_schema(c, &by, &provider, kind, &form.definition, &index, at))
        .await
    {
        Ok(added) => {
            tracing::info!(provider = %name, schema = %added.urn, admin = %s.session.admin, "extension schema added in the admin console");
            forget_tokens(&state, &name).await;
            Ok(redirect(&format!(
                "/providers/{}?{}#schemas",
                urlencode(&name),
                view::Done::query("schema-added", &added.urn)
            )))
        }
        Err(store::Error::Invalid(m) | store::Error::Conflict(m)) => {
            let refused = Refused {
                message: &m,
                schema_draft: Some(&draft),
            };
            provider_page(&state, &s, &name, Ok(refused), StatusCode::BAD_REQUEST).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct UrnQuery {
    urn: String,
}

pub(crate) async fn remove_schema_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    q: web::Query<UrnQuery>,
) -> Page {
    let (name, urn) = (path.into_inner(), q.urn.clone());
    let (p, holders) = state
        .store
        .run(move |c| -> store::Result<_> {
            let p = providers::require(c, &name)?;
            schemas::require(c, &p.name, &urn)?;
            Ok((p.clone(), schemas::usage(c, &p.name, &urn)?))
        })
        .await?;
    let base = format!("/providers/{}", urlencode(&p.name));
    ok(
        "Remove extension schema?",
        Nav::Providers,
        &s,
        html! {
            p.warning role="alert" {
                "Removing " code { (q.urn) } " from " (p.name) " deletes its values from "
                (holders) " resources. Requests that still send its attributes are then "
                "treated as the provider's unknown-attribute setting says."
            }
            form method="post" action={(base) "/schemas/remove"} {
                (view::csrf(&s.session.csrf))
                input type="hidden" name="confirm" value=(q.urn);
                button.danger type="submit" { "Remove schema" }
                " "
                a href=(base) { "Cancel" }
            }
        },
    )
}

pub(crate) async fn remove_schema(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (name, urn) = (path.into_inner(), form.confirm.clone());
    let at = now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (provider, removed, by) = (name.clone(), urn.clone(), s.actor.clone());
    state
        .store
        .write(move |c| admin::remove_schema(c, &by, &provider, &removed, true, &at))
        .await?;
    tracing::info!(provider = %name, schema = %urn, admin = %s.session.admin, "extension schema removed in the admin console");
    forget_tokens(&state, &name).await;
    Ok(redirect(&format!(
        "/providers/{}?{}#schemas",
        urlencode(&name),
        view::Done::query("schema-removed", &urn)
    )))
}

#[derive(Deserialize)]
pub(crate) struct ResourceQuery {
    /// Text to look for, any case: at the start of the name, or (`mode=contains`) anywhere in
    /// the names, emails, phones, title or externalId.
    q: Option<String>,
    mode: Option<String>,
    /// A SCIM filter.
    filter: Option<String>,
    /// The order: `created` (the default), `-created` (newest first), `name`, `-name`.
    sort: Option<String>,
    /// The key in the order (a resource's key, or its folded name) of the last resource of
    /// the previous page (Next).
    after: Option<String>,
    /// The key in the order of the first resource of the next page (Previous).
    before: Option<String>,
    /// The last page.
    last: Option<String>,
    /// The position of the page's first resource (1-based), carried from page to page.
    from: Option<i64>,
}

fn kind_of(segment: &str) -> Result<ResourceKind, Failure> {
    match segment {
        "Users" => Ok(ResourceKind::User),
        "Groups" => Ok(ResourceKind::Group),
        other => Err(Failure::NotFound(format!("no page {other:?} here"))),
    }
}

/// A provider's Users or Groups: a page of 50 with its place ("51–100 of N") and First,
/// Previous, Next and Last (each a bounded read by key, whatever the list's length). The
/// simple search looks at the start of the unique name, which the name index answers at any
/// size, or anywhere in the names, emails, phones and externalId, which the text index answers
/// for three characters or more (`store::text_index`; shorter text reads every resource of the
/// provider); the filter box takes any SCIM filter. Measured in `bench/console.sh`.
pub(crate) async fn resources(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    q: web::Query<ResourceQuery>,
) -> Page {
    let (provider, kind) = (path.0.clone(), kind_of(&path.1)?);
    let q = q.into_inner();
    let simple = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let contains = q.mode.as_deref() == Some("contains");
    let advanced = q.filter.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let filter_text = match (advanced, simple) {
        (Some(f), _) => Some(f.to_string()),
        (None, Some(s)) => Some(crate::scim::summary::search_filter(
            kind.builtin(),
            s,
            contains,
        )),
        _ => None,
    };
    let parsed = match filter_text.as_deref().map(crate::scim::filter::parse) {
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(f)) => Ok(Some(f)),
        None => Ok(None),
    };
    let sort = q.sort.as_deref().unwrap_or("created");
    let order = match sort {
        "created" => Order::Created { desc: false },
        "-created" => Order::Created { desc: true },
        "name" => Order::Name { desc: false },
        "-name" => Order::Name { desc: true },
        other => {
            return Err(Failure::Invalid(format!(
                "cannot sort by {other:?}: created, -created, name or -name"
            )));
        }
    };
    // A key in the order: a resource's key in creation order, a folded name by name.
    let key_of = |text: &str| -> Result<rusqlite::types::Value, Failure> {
        match order {
            Order::Created { .. } => text
                .parse::<i64>()
                .map(rusqlite::types::Value::Integer)
                .map_err(|_| Failure::Invalid(format!("not a page position: {text:?}"))),
            Order::Name { .. } => Ok(rusqlite::types::Value::Text(text.to_string())),
        }
    };
    let last_page = q.last.is_some();
    let at_start = q.after.is_none() && q.before.is_none() && !last_page;
    let paging = match (last_page, &q.before, &q.after) {
        (true, _, _) => Paging::Keyed {
            order,
            key: None,
            back: true,
        },
        (false, Some(b), _) => Paging::Keyed {
            order,
            key: Some(key_of(b)?),
            back: true,
        },
        (false, None, a) => Paging::Keyed {
            order,
            key: a.as_deref().map(key_of).transpose()?,
            back: false,
        },
    };
    let base = state.public_base.clone();
    let scim = crate::app::scim_base(&base, &provider);
    let looked_up = provider.clone();
    let core = state.clone();
    // A search anywhere asks the text index first.
    let indexed_text = simple
        .filter(|_| contains && advanced.is_none())
        .map(str::to_string);
    let result = match parsed {
        Err(m) => Err(m),
        Ok(ast) => {
            let answer = state
                .store
                .run(move |c| -> store::Result<_> {
                    let p = providers::require(c, &looked_up)?;
                    // The provider's model from the core's cache, as SCIM requests get it.
                    let model = core.model_at(c, p.id, schemas::model_version(c, p.id)?)?;
                    let rt = model.get(kind);
                    let tx = c.transaction()?;
                    let by_index = match (&ast, &indexed_text) {
                        (Some(f), Some(t)) => {
                            crate::store::text_index::contains_condition(&tx, rt, &scim, t, f)?
                        }
                        _ => None,
                    };
                    let indexed = by_index.is_some();
                    let condition = match (by_index, &ast) {
                        (Some(cond), _) => Some(cond),
                        (None, None) => None,
                        (None, Some(f)) => Some(crate::store::query::condition(rt, &scim, f)?),
                    };
                    let page = search::search(&tx, p.id, kind, condition.as_ref(), paging, PAGE)?;
                    let rows: Vec<_> = page.items.iter().collect();
                    let out = summary_rows(&rows, crate::scim::summary::list_columns(kind))?;
                    // The page's ends as keys in the order, for Previous and Next.
                    let key = |seq: Option<i64>| -> store::Result<Option<String>> {
                        let Some(seq) = seq else { return Ok(None) };
                        Ok(Some(match order {
                            Order::Created { .. } => seq.to_string(),
                            Order::Name { .. } => tx
                                .prepare_cached("SELECT name_key FROM resources WHERE seq = ?1")?
                                .query_row([seq], |r| r.get(0))?,
                        }))
                    };
                    let ends = (
                        key(rows.first().map(|r| r.seq))?,
                        key(rows.last().map(|r| r.seq))?,
                    );
                    let total = Total {
                        n: page.total,
                        more_than: page.more_than_total,
                        more: page.more,
                    };
                    Ok((total, ends, out, indexed))
                })
                .await;
            match answer {
                Ok(a) => Ok(a),
                Err(store::Error::Rejected(e)) => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let pbase = format!("/providers/{}", urlencode(&provider));
    let endpoint = kind.endpoint();
    // The search a page's links carry.
    let mut search_args = String::new();
    if let Some(s) = simple {
        search_args.push_str(&format!("&q={}", urlencode(s)));
    }
    if contains {
        search_args.push_str("&mode=contains");
    }
    if let Some(f) = advanced {
        search_args.push_str(&format!("&filter={}", urlencode(f)));
    }
    // A page's link: where it starts (`at`), the order and the search.
    let carry = |at: &str| {
        let order = match sort {
            "created" => String::new(),
            other => format!("&sort={}", urlencode(other)),
        };
        format!("{pbase}/{endpoint}?{at}{order}{search_args}")
    };
    // The list in another order, from its start, with the same search.
    let sorted_by = |to: &str| format!("{pbase}/{endpoint}?sort={}{search_args}", urlencode(to));
    let (message, total, (first, last), rows, indexed) = match result {
        Err(m) => (Some(m), Total::default(), (None, None), Vec::new(), false),
        Ok((total, ends, rows, indexed)) => (None, total, ends, rows, indexed),
    };
    let page = PAGE;
    let shown = rows.len() as i64;
    // The first row's position. A broad search's total is "more than" a count, so its last
    // page, and the pages before it reached from there, have none (until one comes out short:
    // nothing lies before it, so it is the first).
    let from = match last_page {
        true => (!total.more_than).then(|| (total.n - shown + 1).max(1)),
        false if at_start => Some(1),
        false if total.more_than && q.before.is_some() && shown < page => Some(1),
        false => q.from.map(|f| f.max(1)).or((!total.more_than).then_some(1)),
    };
    let to = from.map(|f| f + shown - 1);
    let of = match total.more_than {
        true => format!("more than {}", total.n),
        false => total.n.to_string(),
    };
    let has_previous = from.is_none_or(|f| f > 1);
    let has_next = match total.more_than {
        true => !last_page && (total.more || q.before.is_some()),
        false => to.is_some_and(|t| t < total.n),
    };
    // A link's position, where this page's is known.
    let position = |p: Option<i64>| p.map(|p| format!("&from={p}")).unwrap_or_default();
    let columns = crate::scim::summary::list_columns(kind);
    ok(
        &format!("{} · {endpoint}", provider),
        Nav::Providers,
        &s,
        html! {
            p { a href=(pbase) { "← " (provider) } }
            form.search method="get" action={(pbase) "/" (endpoint)} role="search" {
                div.field {
                    label for="q" { "Search" }
                    input #q name="q" type="search" value=(simple.unwrap_or(""));
                }
                div.field {
                    label for="mode" { "Where" }
                    select #mode name="mode" {
                        option value="starts" selected[!contains] { (kind.builtin().name_attribute()) " starts with it" }
                        option value="contains" selected[contains] { "anywhere in names, emails, phones" }
                    }
                }
                div.field {
                    label for="filter" { "or a SCIM filter" }
                    input #filter name="filter" type="text" placeholder="userName eq \"a@example.com\"" value=(advanced.unwrap_or(""));
                }
                div.field {
                    label for="sort" { "Order" }
                    select #sort name="sort" {
                        @for (value, label) in [("created", "Oldest first"), ("-created", "Newest first"), ("name", "By name, A to Z"), ("-name", "By name, Z to A")] {
                            option value=(value) selected[sort == value] { (label) }
                        }
                    }
                }
                button type="submit" { "Search" }
            }
            (view::error_box(message.as_deref()))
            @if contains && simple.is_some() && advanced.is_none() && !indexed && message.is_none() {
                p.hint { "Text under three characters, or with * ? or [, is looked for in every one of the provider's " (endpoint) " (so is any text while the search index is being built): slow on a large provider, seconds at a million." }
            }
            p.count {
                @if rows.is_empty() { (of) " " (endpoint) @if filter_text.is_some() { " match" } }
                @else {
                    @if let (Some(from), Some(to)) = (from, to) { (from) "–" (to) }
                    @else if last_page { "The last " (shown) }
                    @else { (shown) }
                    " of " (of) " " (endpoint) @if filter_text.is_some() { " that match" }
                }
            }
            (view::sortable_table(
                &columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| view::Heading {
                        label: c.label,
                        // The first column is the unique name, which the name index orders.
                        sort: (i == 0).then(|| match sort {
                            "name" => (sorted_by("-name"), Some("ascending")),
                            "-name" => (sorted_by("name"), Some("descending")),
                            _ => (sorted_by("name"), None),
                        }),
                    })
                    .collect::<Vec<_>>(),
                html! {
                    @for (id, cells) in &rows {
                        @let href = format!("{pbase}/{endpoint}/{}", urlencode(id));
                        tr {
                            @for (i, cell) in cells.iter().enumerate() {
                                @if i == 0 {
                                    td { a href=(href) { (cell) } }
                                } @else {
                                    td { (cell) }
                                }
                            }
                        }
                    }
                }
            ))
            nav.pager aria-label="Pages" {
                @if has_previous {
                    a href=(carry("")) { "First page" }
                    @if let Some(f) = first {
                        a href=(carry(&format!("before={}{}", urlencode(&f), position(from.map(|f| (f - page).max(1)))))) rel="prev" { "Previous page" }
                    }
                }
                @if has_next {
                    @if let Some(l) = last {
                        a href=(carry(&format!("after={}{}", urlencode(&l), position(to.map(|t| t + 1))))) rel="next" { "Next page" }
                    }
                    a href=(carry("last=1")) { "Last page" }
                }
            }
        },
    )
}

/// A list's total: `n`, or more than `n` (a broad search counts so many at most), and whether
/// rows follow the page.
#[derive(Default)]
struct Total {
    n: i64,
    more_than: bool,
    more: bool,
}

/// Each row's id and the text of its `columns`, read from the stored documents (a list shows
/// no members: a large group's are not read).
fn summary_rows(
    rows: &[store::rows::Stored<'_>],
    columns: &[crate::scim::summary::Column],
) -> store::Result<Vec<(String, Vec<String>)>> {
    rows.iter()
        .map(|r| {
            let doc: serde_json::Value = serde_json::from_str(r.doc)
                .map_err(|e| store::Error::Internal(format!("a stored document: {e}")))?;
            let row = crate::scim::summary::Row {
                doc: &doc,
                id: r.id,
                created: r.created,
                modified: r.modified,
                linked: 0,
            };
            Ok((
                r.id.to_string(),
                columns.iter().map(|c| c.value(&row)).collect(),
            ))
        })
        .collect()
}

/// How far back a user's or group's page looks for its records: the newest this many of the
/// log (a bounded read whatever the log's size; the activity page finds older ones).
const HISTORY_WINDOW: i64 = 100_000;

/// Which page of a group's members its page shows: after the member with key `after`, the
/// first one at position `from` (1-based).
#[derive(Deserialize, Default)]
pub(crate) struct MembersQuery {
    after: Option<i64>,
    from: Option<usize>,
}

pub(crate) async fn resource(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String, String)>,
    q: web::Query<MembersQuery>,
) -> Page {
    let (provider, kind, id) = path.into_inner();
    let (after, from) = (q.after.unwrap_or(0).max(0), q.from.unwrap_or(1).max(1));
    let kind = kind_of(&kind)?;
    let scim = crate::app::scim_base(&state.public_base, &provider);
    let (looked_up, rid) = (provider.clone(), id.clone());
    let core = state.clone();
    let (doc, members, total_members, history, names) = state
        .store
        .run(move |c| -> store::Result<_> {
            let p = providers::require(c, &looked_up)?;
            let model = core.model_at(c, p.id, schemas::model_version(c, p.id)?)?;
            let rt = model.get(kind);
            let rows = crate::store::resources::read(c, p.id, kind, &rid)?;
            let Some(row) = rows.iter().next() else {
                return Err(store::Error::NotFound(format!(
                    "{} {rid} not found",
                    kind.name()
                )));
            };
            // A group's members are listed below, from the first ones only.
            let relation = rt
                .with_role(crate::scim::schema::Role::Relation)
                .map(|a| a.name);
            let projection = Projection::parse(rt, None, relation);
            let mut bytes = Vec::new();
            crate::app::push_rows(c, &mut bytes, (rt, &scim), &[row], &projection, b"")?;
            let (members, total) = match kind {
                ResourceKind::Group => {
                    let page =
                        crate::store::members::members_page(c, row.seq, after, MEMBERS_SHOWN)?;
                    let total = crate::store::members::member_counts(c, &[row.seq])?;
                    (page, total.first().copied().unwrap_or(0))
                }
                ResourceKind::User => (Vec::new(), 0),
            };
            let history = activity::query(
                c,
                &Query {
                    provider: Some(p.name.clone()),
                    resource_id: Some(rid.clone()),
                    window: Some(HISTORY_WINDOW),
                    limit: 100,
                    ..Query::default()
                },
            )?;
            // The summary names the resources it references (a manager) by their userName.
            let served: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| store::Error::Internal(e.to_string()))?;
            let ids = super::detail::referenced(rt, &served);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let names = crate::store::resources::names_by_id(c, p.id, ResourceKind::User, &ids)?;
            Ok((bytes, members, total, history, names))
        })
        .await?;
    let doc: serde_json::Value = serde_json::from_slice(&doc)
        .map_err(|e| Failure::Internal(format!("rendering a resource: {e}")))?;
    let pbase = format!("/providers/{}", urlencode(&provider));
    let rt = kind.builtin();
    let title = doc
        .get(rt.name_attribute())
        .and_then(|v| v.as_str())
        .unwrap_or(&id)
        .to_string();
    let groups = doc
        .get(rt.linked_name())
        .and_then(|g| g.as_array())
        .cloned()
        .unwrap_or_default();
    ok(
        &title,
        Nav::Providers,
        &s,
        html! {
            p { a href={(pbase) "/" (kind.endpoint())} { "← " (provider) " " (kind.endpoint()) } }
            (super::detail::summary(rt, &doc, &pbase, &names))
            h2 { "Attributes" }
            (view::attributes(&doc))
            @if kind == ResourceKind::User {
                h2 { "Group memberships" }
                @if groups.is_empty() { p { "None." } }
                ul {
                    @for g in &groups {
                        @let gid = g.get("value").and_then(|v| v.as_str()).unwrap_or("");
                        li { a href={(pbase) "/Groups/" (urlencode(gid))} { (g.get("display").and_then(|v| v.as_str()).unwrap_or(gid)) } }
                    }
                }
            } @else {
                h2 #members { "Members" }
                @if members.is_empty() { p { "None." } }
                @else {
                    p.count { (from) "–" (from + members.len() - 1) " of " (total_members) }
                }
                ul {
                    @for (_, m) in &members {
                        li { a href={(pbase) "/" (m.kind.endpoint()) "/" (urlencode(&m.id))} { (m.display.clone().unwrap_or(m.id.clone())) } }
                    }
                }
                @let here = format!("{pbase}/Groups/{}", urlencode(&id));
                nav.pager aria-label="Members" {
                    @if after > 0 { a href={(here) "#members"} { "First" } }
                    @if let Some((last, _)) = members.last().filter(|_| from + members.len() - 1 < total_members) {
                        a href={(here) "?after=" (last) "&from=" (from + members.len()) "#members"} { "Next" }
                    }
                }
            }
            h2 { "Activity" }
            @if history.is_empty() { p { "No activity for it among the newest " (HISTORY_WINDOW) " records." } }
            @else {
                (view::table(view::HISTORY_HEADERS, html! {
                    @for r in history.iter().rev() { (view::activity_row(r, false)) }
                }))
            }
            p { a href={"/activity?provider=" (urlencode(&provider)) "&resource=" (urlencode(&id))} { "All of its activity" } }
        },
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct ActivityQuery {
    provider: Option<String>,
    /// Dates or date-times (UTC) bounding the records, inclusive.
    since: Option<String>,
    until: Option<String>,
    failed: Option<String>,
    resource: Option<String>,
    /// One action (`activity::Action::as_str`), and one status.
    action: Option<String>,
    status: Option<String>,
    /// Only records after this one (what the page's script asks for).
    after: Option<i64>,
    /// Only records up to this one (a resource's older records).
    before: Option<i64>,
}

fn parse_when(text: &str, end_of_day: bool) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let time = if end_of_day {
            chrono::NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or_default()
        } else {
            chrono::NaiveTime::MIN
        };
        return Ok(Some(d.and_time(time).and_utc().timestamp_millis()));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(Some(d.and_utc().timestamp_millis()));
        }
    }
    Err(format!(
        "{t:?} is not a date such as 2026-11-30 or 2026-11-30T08:00"
    ))
}

impl ActivityQuery {
    fn failed_only(&self) -> bool {
        self.failed.as_deref().is_some_and(|v| !v.is_empty())
    }

    /// The same filters as a query string (for the export links).
    fn filters(&self) -> String {
        let mut out = String::new();
        for (k, v) in [
            ("provider", &self.provider),
            ("since", &self.since),
            ("until", &self.until),
            ("failed", &self.failed),
            ("resource", &self.resource),
            ("action", &self.action),
            ("status", &self.status),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                out.push_str(&format!("&{k}={}", urlencode(v)));
            }
        }
        out
    }

    fn to_query(&self) -> Result<Query, String> {
        let text = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Ok(Query {
            provider: text(&self.provider),
            since: parse_when(self.since.as_deref().unwrap_or(""), false)?,
            until: parse_when(self.until.as_deref().unwrap_or(""), true)?,
            failed: self.failed_only(),
            resource_id: text(&self.resource),
            // A resource's records have no index: they are read a window of the log at a time.
            window: text(&self.resource).map(|_| HISTORY_WINDOW),
            before_seq: self.before,
            after_seq: self.after,
            action: text(&self.action)
                .map(|a| {
                    activity::Action::ALL
                        .iter()
                        .find(|k| k.as_str() == a)
                        .map(|k| k.as_str().to_string())
                        .ok_or_else(|| format!("{a:?} is not an action the log records"))
                })
                .transpose()?,
            status: text(&self.status)
                .map(|s| {
                    s.parse::<i64>()
                        .ok()
                        .filter(|n| (100..600).contains(n) || *n == 49)
                        .ok_or_else(|| {
                            format!("{s:?} is not a status such as 200, 404 or 409 (49: a refused LDAP bind)")
                        })
                })
                .transpose()?,
            limit: ACTIVITY_ROWS,
            ..Query::default()
        })
    }
}

pub(crate) async fn activity(
    state: web::Data<AppState>,
    s: Signed,
    q: web::Query<ActivityQuery>,
) -> Page {
    let (query, message) = match q.to_query() {
        Ok(query) => (Some(query), None),
        Err(m) => (None, Some(m)),
    };
    let windowed = query.as_ref().is_some_and(|q| q.window.is_some());
    let (records, names, newest) = state
        .store
        .run(move |c| -> store::Result<_> {
            let names: Vec<String> = providers::list(c)?.into_iter().map(|p| p.name).collect();
            let records = match &query {
                Some(q) => activity::query(c, q)?,
                None => Vec::new(),
            };
            Ok((records, names, activity::last_seq(c)?))
        })
        .await?;
    // A window's records of the log: its ends, and where the next one back ends (before the
    // oldest shown when the page is full, else before the window).
    let window = windowed.then(|| {
        let top = q.before.unwrap_or(newest).min(newest);
        let low = (top - HISTORY_WINDOW + 1).max(1);
        let older = match records.first() {
            Some(r) if records.len() >= ACTIVITY_ROWS => Some(r.seq - 1),
            _ => (low > 1).then_some(low - 1),
        };
        (low, top, older.filter(|o| *o >= 1))
    });
    let chosen = q.provider.clone().unwrap_or_default();
    let follow = q.until.as_deref().unwrap_or("").trim().is_empty() && q.before.is_none();
    let last = records.last().map_or(0, |r| r.seq);
    let mut rows_url = format!(
        "/activity/rows?failed={}",
        if q.failed_only() { "1" } else { "" }
    );
    for (k, v) in [
        ("provider", &q.provider),
        ("since", &q.since),
        ("resource", &q.resource),
        ("action", &q.action),
        ("status", &q.status),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            rows_url.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    ok(
        "Activity",
        Nav::Activity,
        &s,
        html! {
            form.search method="get" action="/activity" {
                div.field {
                    label for="provider" { "Provider" }
                    select #provider name="provider" {
                        option value="" { "all" }
                        @for n in &names { option value=(n) selected[*n == chosen] { (n) } }
                    }
                }
                div.field {
                    label for="since" { "From (UTC)" }
                    input #since name="since" type="text" placeholder="2026-11-30" value=(q.since.clone().unwrap_or_default());
                }
                div.field {
                    label for="until" { "To (UTC)" }
                    input #until name="until" type="text" placeholder="2026-11-30T18:00" value=(q.until.clone().unwrap_or_default());
                }
                div.field {
                    label for="resource" { "Resource id" }
                    input #resource name="resource" type="text" value=(q.resource.clone().unwrap_or_default());
                }
                div.field {
                    label for="action" { "Action" }
                    @let chosen_action = q.action.clone().unwrap_or_default();
                    select #action name="action" {
                        option value="" { "any" }
                        @for a in activity::Action::ALL {
                            option value=(a.as_str()) selected[a.as_str() == chosen_action] { (a.as_str()) }
                        }
                    }
                }
                div.field {
                    label for="status" { "Status" }
                    input #status name="status" type="text" inputmode="numeric" size="4" placeholder="409" value=(q.status.clone().unwrap_or_default());
                }
                label.check { input type="checkbox" name="failed" value="1" checked[q.failed_only()]; " failed only" }
                button type="submit" { "Show" }
            }
            (view::error_box(message.as_deref()))
            p.hint {
                "Newest first; at most " (ACTIVITY_ROWS) " records. "
                @if follow { "New records appear here as they arrive. " }
                "Each record's time opens all it holds (request, token, request id). Export these filters: "
                a href={"/activity/export?format=csv" (q.filters())} { "CSV" } ", "
                a href={"/activity/export?format=jsonl" (q.filters())} { "JSON lines" }
                " (at most " (super::activity_export::EXPORT_ROWS) " records)."
            }
            @if let Some((low, top, older)) = window {
                p.hint {
                    "A resource's records are looked for " (HISTORY_WINDOW) " records of the log at a time: these are among records " (low) "–" (top) ". "
                    @if let Some(o) = older {
                        a href={"/activity?before=" (o) (q.filters())} { "Older records" }
                    } @else { "There are none older." }
                }
            }
            // Focusable, so a keyboard can scroll it sideways (axe: scrollable-region-focusable).
            div.scroll tabindex="0" role="region" aria-label="Activity records" {
                table #activity data-follow=[follow.then_some(rows_url.as_str())] data-last=(last) {
                    thead { tr { @for h in view::ACTIVITY_HEADERS { th scope="col" { (h) } } } }
                    tbody {
                        @for r in records.iter().rev() { (view::activity_row(r, true)) }
                    }
                }
            }
        },
    )
}

/// `GET /activity/export?format=csv|jsonl&<filters>`: the records the filters select, newest
/// last, as a file.
pub(crate) async fn activity_export(
    state: web::Data<AppState>,
    _s: Signed,
    q: web::Query<ActivityQuery>,
    format: web::Query<super::activity_export::Format>,
) -> Result<HttpResponse, Failure> {
    let mut query = q.to_query().map_err(Failure::Invalid)?;
    query.limit = super::activity_export::EXPORT_ROWS;
    let records = state.store.run(move |c| activity::query(c, &query)).await?;
    Ok(super::activity_export::file(&format, &records))
}

/// `GET /activity/{seq}`: everything one record holds.
pub(crate) async fn activity_record(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<i64>,
) -> Page {
    let seq = path.into_inner();
    let found = state
        .store
        .run(move |c| {
            activity::query(
                c,
                &Query {
                    seq: Some(seq),
                    limit: 1,
                    ..Query::default()
                },
            )
        })
        .await?;
    let Some(r) = found.into_iter().next() else {
        return Err(Failure::NotFound(format!(
            "There is no activity record {seq}."
        )));
    };
    ok(
        &format!("Activity record {seq}"),
        Nav::Activity,
        &s,
        super::activity_export::detail(&r),
    )
}

/// Rows newer than `after`, newest first, for the activity page's script to put on top.
pub(crate) async fn activity_rows(
    state: web::Data<AppState>,
    _s: Signed,
    q: web::Query<ActivityQuery>,
) -> Page {
    let query = q.to_query().map_err(Failure::Invalid)?;
    let records = state.store.run(move |c| activity::query(c, &query)).await?;
    let body = html! { @for r in records.iter().rev() { (view::activity_row(r, true)) } };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body.into_string()))
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    provider: Option<String>,
    /// Records older than this one (a `seq`): the next page.
    before: Option<i64>,
}

/// Audit records shown per page.
const AUDIT_ROWS: usize = 100;

/// What admins did: newest first, a page at a time, optionally about one provider.
pub(crate) async fn audit(
    state: web::Data<AppState>,
    s: Signed,
    q: web::Query<AuditQuery>,
) -> Page {
    let chosen = q.provider.clone().filter(|p| !p.trim().is_empty());
    let (provider, before) = (chosen.clone(), q.before);
    let (records, names) = state
        .store
        .run(move |c| -> store::Result<_> {
            let names: Vec<String> = providers::list(c)?.into_iter().map(|p| p.name).collect();
            let records =
                crate::store::audit::list(c, provider.as_deref(), before, AUDIT_ROWS + 1)?;
            Ok((records, names))
        })
        .await?;
    let more = records.len() > AUDIT_ROWS;
    let shown = &records[..records.len().min(AUDIT_ROWS)];
    let chosen = chosen.unwrap_or_default();
    let older = shown.last().map(|r| {
        let mut url = format!("/audit?before={}", r.seq);
        if !chosen.is_empty() {
            url.push_str(&format!("&provider={}", urlencode(&chosen)));
        }
        url
    });
    ok(
        "Audit log",
        Nav::Audit,
        &s,
        html! {
            form.search method="get" action="/audit" {
                div.field {
                    label for="provider" { "Provider" }
                    select #provider name="provider" {
                        option value="" { "all" }
                        @for n in &names { option value=(n) selected[*n == chosen] { (n) } }
                    }
                }
                button type="submit" { "Show" }
            }
            p.hint {
                "What admins did, from the command line (" code { "scimd audit" } ") or this "
                "console, newest first. Each record was written with the change it describes; "
                "records of a removed provider stay."
            }
            @if shown.is_empty() {
                p { "No admin actions recorded that match." }
            } @else {
                div.scroll tabindex="0" role="region" aria-label="Audit records" {
                    table #audit {
                        thead { tr {
                            th scope="col" { "Time" } th scope="col" { "Who" }
                            th scope="col" { "Provider" } th scope="col" { "What" }
                        } }
                        tbody {
                            @for r in shown {
                                tr {
                                    td.nowrap { (view::time_ms(Some(r.at))) }
                                    td {
                                        (r.actor)
                                        @if let Some(from) = &r.client { br; small { "from " (from) } }
                                    }
                                    td { (r.provider.as_deref().unwrap_or("")) }
                                    td.what {
                                        strong { (r.action) }
                                        @if !r.target.is_empty() { " " code { (r.target) } }
                                        @if !r.detail.is_empty() { br; small { (r.detail) } }
                                    }
                                }
                            }
                        }
                    }
                }
                @if more {
                    @if let Some(url) = &older { p { a href=(url) { "Older records" } } }
                }
            }
        },
    )
}

pub(crate) async fn settings(
    state: web::Data<AppState>,
    s: Signed,
    q: web::Query<view::Done>,
) -> Page {
    let admins = state.store.run(|c| admins::list(c)).await?;
    let config = state.config.to_redacted_toml();
    ok(
        "Settings",
        Nav::Settings,
        &s,
        html! {
            (q.notice())
            h2 { "Effective configuration" }
            p.hint { "Secrets are shown as ***. Change settings in the configuration file or SCIMD_* variables and restart." }
            pre.config { (config) }
            (super::admins::section(&admins, &s, None))
            p.hint { "On the server: " code { "scimd admin add|passwd|remove NAME" } "." }
            p.hint { "Times are shown in UTC." }
        },
    )
}
