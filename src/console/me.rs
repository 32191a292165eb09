//! Sign-in with an identity provider (`/oidc/{provider}/start`, `/oidc/callback`) and the
//! self-service page everyone who signs in that way lands on (`/me`): a person's own
//! application passwords, made, shown once and revoked there. The protocol is `auth::oidc`'s;
//! who may do what is `app::sign_in`'s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::person::{COOKIE, cookie_named, is_admin};
use super::session::{Console, CsrfForm};
use super::view::{self, Nav};
use super::{Failure, html_response, redirect, urlencode};
use crate::app::AppState;
use crate::app::credentials::Minted;
use crate::app::sign_in::{self, Doing, NEVER};
use crate::auth::oidc::{self, Http, Issuer, Pending};
use crate::auth::token;
use crate::store::{self, credentials::Credential, sign_in::UserSession};

/// The cookie that ties a sign-in's return to the browser that started it.
const FLOW_COOKIE: &str = "scimd_oidc";
/// How long a started sign-in waits for its return.
const FLOW_WITHIN: Duration = Duration::from_secs(600);
/// Sign-ins waiting at once, at most (older ones are dropped first).
const FLOWS: usize = 10_000;

/// A sign-in waiting for its return from the identity provider.
pub(crate) struct Flow {
    provider: String,
    pending: Pending,
    at: Instant,
}

/// Started sign-ins and each issuer's discovery document, kept by the console.
#[derive(Default)]
pub(crate) struct SignIns {
    flows: Mutex<HashMap<String, Flow>>,
    /// By provider id: the settings' `changed` time they were read for, and the issuer.
    issuers: Mutex<HashMap<i64, (i64, Issuer)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SignIns {
    fn keep(&self, flow: Flow) {
        let mut flows = lock(&self.flows);
        if flows.len() >= FLOWS {
            flows.retain(|_, f| f.at.elapsed() < FLOW_WITHIN);
            if flows.len() >= FLOWS {
                flows.clear();
            }
        }
        flows.insert(flow.pending.state.clone(), flow);
    }

    /// The sign-in with this `state`, taken: a second return with it finds nothing.
    fn take(&self, state: &str) -> Option<Flow> {
        let flow = lock(&self.flows).remove(state)?;
        (flow.at.elapsed() < FLOW_WITHIN).then_some(flow)
    }
}

/// Where the identity provider sends people back to.
fn redirect_uri(state: &AppState) -> String {
    format!("{}/oidc/callback", console_url(state))
}

fn console_url(state: &AppState) -> String {
    state.config.console_url()
}

fn secure(state: &AppState) -> &'static str {
    match state.config.tls_cert.is_some() && state.config.tls_key.is_some() {
        true => "; Secure",
        false => "",
    }
}

/// A page for someone who is not (or not yet) signed in.
fn plain(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    html_response(
        status,
        view::page(
            title,
            Nav::None,
            None,
            html! {
                p.error role="alert" { (message) }
                p { a.button href="/login" { "Back to sign-in" } }
            },
        ),
    )
}

/// The issuer of a provider's settings, discovered once per change of the settings.
async fn issuer_of(sign_ins: &SignIns, s: &store::sign_in::OidcSettings) -> Result<Issuer, String> {
    if let Some((changed, issuer)) = lock(&sign_ins.issuers).get(&s.provider_id)
        && *changed == s.changed
    {
        return Ok(issuer.clone());
    }
    let (ca, url) = (s.ca_pem.clone(), s.issuer.clone());
    let found = web::block(move || {
        let http = Http::new(ca.as_deref())?;
        Issuer::discover(&http, &url)
    })
    .await
    .map_err(|e| e.to_string())??;
    lock(&sign_ins.issuers).insert(s.provider_id, (s.changed, found.clone()));
    Ok(found)
}

async fn settings_of(
    state: &AppState,
    provider: &str,
) -> Result<Option<store::sign_in::OidcSettings>, Failure> {
    let name = provider.to_string();
    Ok(state
        .store
        .run(move |c| store::sign_in::settings(c, &name))
        .await?)
}

/// `GET /oidc/{provider}/start`: off to the identity provider.
pub(crate) async fn start(
    state: web::Data<AppState>,
    sign_ins: web::Data<SignIns>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let Some(s) = settings_of(&state, &path).await? else {
        return Err(Failure::NotFound(format!(
            "There is no sign-in with {}.",
            path.as_str()
        )));
    };
    let issuer = match issuer_of(&sign_ins, &s).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(provider = %s.provider, error = %e, "OpenID Connect discovery failed");
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                &format!(
                    "{} cannot be reached for sign-in right now; try again shortly, or ask an \
                     admin to look at the server log.",
                    s.provider
                ),
            ));
        }
    };
    let (url, pending) =
        oidc::start(&issuer, &s, &redirect_uri(&state)).map_err(Failure::Internal)?;
    let cookie = format!(
        "{FLOW_COOKIE}={}; Path=/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        pending.state,
        FLOW_WITHIN.as_secs(),
        secure(&state)
    );
    sign_ins.keep(Flow {
        provider: s.provider.clone(),
        pending,
        at: Instant::now(),
    });
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

#[derive(Deserialize)]
pub(crate) struct Return {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oidc/callback`: the identity provider's answer, checked, and the person it names
/// signed in (or told why not).
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    sign_ins: web::Data<SignIns>,
    q: web::Query<Return>,
) -> Result<HttpResponse, Failure> {
    let q = q.into_inner();
    let again = |why: &str| Ok(plain(StatusCode::BAD_REQUEST, "Sign-in failed", why));
    let Some(flow) = q.state.as_deref().and_then(|s| sign_ins.take(s)) else {
        return again(
            "This sign-in link was already used or has expired. Sign in again from the start.",
        );
    };
    if cookie_named(&req, FLOW_COOKIE).as_deref() != Some(flow.pending.state.as_str()) {
        return again("This sign-in did not start in this browser. Sign in again from the start.");
    }
    if let Some(error) = &q.error {
        tracing::info!(provider = %flow.provider, error = %error, description = ?q.error_description, "the identity provider refused a sign-in");
        return Ok(plain(
            StatusCode::UNAUTHORIZED,
            "Sign-in failed",
            &format!(
                "{} did not sign you in ({error}{}).",
                flow.provider,
                q.error_description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let Some(code) = q.code else {
        return again("The identity provider's answer carries no code.");
    };
    let Some(s) = settings_of(&state, &flow.provider).await? else {
        return again("Sign-in with this identity provider has been turned off.");
    };
    let mut issuer = match issuer_of(&sign_ins, &s).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(provider = %s.provider, error = %e, "OpenID Connect discovery failed");
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                "The identity provider cannot be reached right now; try again shortly.",
            ));
        }
    };
    let (settings, redirect) = (s.clone(), redirect_uri(&state));
    let finished = web::block(move || {
        let http = Http::new(settings.ca_pem.as_deref()).map_err(|e| oidc::Failed {
            shown: "The identity provider's TLS settings are broken; the log says why.",
            logged: e,
        })?;
        let claims = oidc::finish(
            &http,
            &mut issuer,
            &settings,
            &redirect,
            (flow.pending, &code),
            &settings.match_claim,
        )?;
        Ok::<_, oidc::Failed>((claims, issuer))
    })
    .await
    .map_err(|e| Failure::Internal(e.to_string()))?;
    let claims = match finished {
        Ok((claims, issuer)) => {
            lock(&sign_ins.issuers).insert(s.provider_id, (s.changed, issuer));
            claims
        }
        Err(f) => {
            tracing::warn!(provider = %s.provider, error = %f.logged, "an OpenID Connect sign-in failed");
            return Ok(plain(StatusCode::BAD_GATEWAY, "Sign-in failed", f.shown));
        }
    };
    let client = crate::web::client_ip(&req, &state.config);
    let Some(value) = oidc::claim_text(&claims, &s.match_claim) else {
        tracing::warn!(provider = %s.provider, claim = %s.match_claim, "a sign-in's claims lack the matching claim");
        return Ok(plain(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            &format!(
                "{} did not say who you are (no {} claim). Ask an admin to check the \
                 sign-in settings.",
                s.provider, s.match_claim
            ),
        ));
    };
    let (pid, attr, wanted, group) = (
        s.provider_id,
        s.match_attribute.clone(),
        value.clone(),
        s.admin_group.clone(),
    );
    let found = state
        .store
        .run(move |c| -> store::Result<_> {
            let model = store::schemas::model(c, pid)?;
            let people = sign_in::people(c, &model, pid, (&attr, &wanted))?;
            let admin = match (people.as_slice(), &group) {
                ([one], Some(g)) if one.active => sign_in::in_group(c, one.seq, g)?,
                _ => false,
            };
            Ok((people, admin))
        })
        .await?;
    let refuse = |why: &'static str, message: String| {
        let (state, value) = (state.clone(), value.clone());
        async move {
            let recorded = state
                .store
                .write(move |c| {
                    let d = Doing {
                        provider_id: pid,
                        user: ("", &value),
                        client,
                    };
                    sign_in::sign_in_refused(c, &d, why)
                })
                .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "a refused sign-in was not recorded");
            }
            Ok(plain(StatusCode::FORBIDDEN, "Sign-in refused", &message))
        }
    };
    let person = match found.0.as_slice() {
        [] => {
            return refuse(
                "not provisioned",
                format!(
                    "You signed in to {} as {value}, but no such user is provisioned here (not \
                     provisioned). Ask an admin to assign you to the scimd application.",
                    s.provider
                ),
            )
            .await;
        }
        [one] if !one.active => {
            return refuse(
                "deactivated",
                format!(
                    "Your user {} is deactivated here: sign-in is refused.",
                    one.user_name
                ),
            )
            .await;
        }
        [one] => one.clone(),
        _ => {
            return refuse(
                "ambiguous",
                format!(
                    "More than one provisioned user has {} = {value}: sign-in cannot tell which \
                     is you. Ask an admin to match on a unique attribute.",
                    s.match_attribute
                ),
            )
            .await;
        }
    };
    let admin = found.1;
    let cookie = token::random_hex(32);
    let csrf = token::random_hex(32);
    let now = chrono::Utc::now().timestamp();
    let (kept, user) = (cookie.clone(), person.clone());
    state
        .store
        .write(move |c| {
            let d = Doing {
                provider_id: pid,
                user: (&user.id, &user.user_name),
                client,
            };
            sign_in::signed_in(c, &d, (&kept, &csrf, now), admin)
        })
        .await?;
    tracing::info!(provider = %s.provider, user = %person.user_name, admin, "signed in with the identity provider");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/me"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax{}",
                secure(&state)
            ),
        ))
        .append_header((
            header::SET_COOKIE,
            format!(
                "{FLOW_COOKIE}=; Path=/oidc; HttpOnly; SameSite=Lax; Max-Age=0{}",
                secure(&state)
            ),
        ))
        .finish())
}

/// A request from a person signed in with their identity provider.
pub(crate) struct Me {
    pub(crate) session: UserSession,
    pub(crate) client: Option<std::net::IpAddr>,
}

impl Me {
    fn check(&self, csrf: &str) -> Result<(), Failure> {
        if super::session::same(csrf, &self.session.csrf) {
            Ok(())
        } else {
            Err(Failure::Forbidden(
                "this form has expired or did not come from this page: reload it and try again"
                    .into(),
            ))
        }
    }
}

impl FromRequest for Me {
    type Error = Failure;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Me, Failure>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(Failure::Internal("console state missing".into()));
            };
            let client = crate::web::client_ip(&req, &state.config);
            let limits = super::session::lifetimes(&state);
            match super::person::person(&state, &req, limits).await? {
                Some(session) => Ok(Me { session, client }),
                None if req.method() == actix_web::http::Method::GET => {
                    Err(Failure::Login("/me".into()))
                }
                None => Err(Failure::Forbidden(
                    "your session has ended: sign in again and repeat the change".into(),
                )),
            }
        })
    }
}

fn expiry_text(expires: i64) -> String {
    match expires >= NEVER {
        true => "never".into(),
        false => view::time(expires),
    }
}

/// `GET /me`.
pub(crate) async fn page(
    state: web::Data<AppState>,
    me: Me,
    q: web::Query<view::Done>,
) -> Result<HttpResponse, Failure> {
    render(&state, &me, Err(q.notice()), StatusCode::OK, None).await
}

/// The page, with an error (`Ok`) or a confirmation (`Err`) above it.
async fn render(
    state: &AppState,
    me: &Me,
    said: Result<Option<&str>, maud::Markup>,
    status: StatusCode,
    revealed: Option<(&Credential, &str)>,
) -> Result<HttpResponse, Failure> {
    let s = me.session.clone();
    let (passwords, admin, base) = state
        .store
        .run(move |c| -> store::Result<_> {
            let list = store::sign_in::app_passwords(c, Some(s.provider_id), Some(&s.user_id))?;
            let base = store::ldap_accounts::base_of(c, s.provider_id)?
                .unwrap_or_else(|| crate::scim::directory::base_dn(&s.provider));
            Ok((list, is_admin(c, &s)?, base))
        })
        .await?;
    let bind_dn = crate::scim::directory::user_dn(&base, &me.session.user_name);
    let (message, notice) = match said {
        Ok(m) => (m, html! {}),
        Err(n) => (None, n),
    };
    let now = chrono::Utc::now().timestamp();
    let s = &me.session;
    let live = passwords
        .iter()
        .filter(|k| k.state(now) == crate::auth::TokenState::Active)
        .count();
    let body = html! {
        div.me-bar {
            span { "Signed in as " strong { (s.user_name) } " (" (s.provider) ")" }
            @if admin { " · " a href="/" { "Admin pages" } }
            form.inline method="post" action="/me/logout" {
                (view::csrf(&s.csrf))
                button type="submit" { "Sign out" }
            }
        }
        (view::error_box(message))
        (notice)
        @if let Some((k, secret)) = revealed {
            div.dialog role="dialog" aria-labelledby="new-password" {
                h2 #new-password { "Application password created" }
                p.warning role="alert" {
                    "Copy it now: it will not be shown again. Only a hash of it is stored."
                }
                label for="app-password" { "Application password for " (k.description) }
                (view::copyable("app-password", secret, "Application password"))
                p { "Valid until " (expiry_text(k.expires)) ". The application binds as "
                    code { (bind_dn) } " (or logs you in with your user name) and this password." }
                p { a.button href="/me" { "Done" } }
            }
        }
        h2 { "Application passwords" }
        p {
            "An application that logs you in over LDAP (a NAS, a VPN, Grafana) takes one of "
            "these instead of your " (s.provider) " password. Make one per application, so "
            "you can revoke it alone. Your LDAP login (bind DN) is " code { (bind_dn) } "."
        }
        @if passwords.is_empty() {
            p { "You have none yet." }
        } @else {
            (view::table(&["Name", "Id", "Created", "Expires", "Last used", "State", "Actions"], html! {
                @for k in &passwords {
                    @let st = k.state(now);
                    tr {
                        td { (k.description) }
                        td { code { (k.id) } }
                        td { (view::time(k.created)) }
                        td { (expiry_text(k.expires)) }
                        td { @match k.last_used { Some(t) => (view::time(t)), None => "never" } }
                        td { (st.as_str()) }
                        td {
                            @if st == crate::auth::TokenState::Active {
                                form.inline method="post" action={"/me/passwords/" (urlencode(&k.id)) "/revoke"} {
                                    (view::csrf(&s.csrf))
                                    button.danger type="submit" aria-label={"Revoke " (k.description)} { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }))
        }
        @if live < sign_in::MAX_APP_PASSWORDS {
            h2 { "New application password" }
            form.stack method="post" action="/me/passwords" {
                (view::csrf(&s.csrf))
                label for="description" { "Name (what it is for)" }
                input #description name="description" type="text" required maxlength="200"
                    placeholder="grafana on laptop";
                label for="validity" { "Valid for" }
                select #validity name="validity" {
                    option value="never" { "no expiry" }
                    option value="30d" { "30 days" }
                    option value="90d" { "90 days" }
                    option value="365d" selected { "a year" }
                }
                button type="submit" { "Create" }
            }
        } @else {
            p.warning { "You have " (live) " application passwords, the most one person may have: revoke one first." }
        }
    };
    let mut res = html_response(status, view::page("Your account", Nav::None, None, body));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

#[derive(Deserialize)]
pub(crate) struct NewPassword {
    csrf: String,
    description: String,
    validity: String,
}

/// `POST /me/passwords`: makes one, then redirects to the page that shows it once.
pub(crate) async fn create(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    me: Me,
    form: web::Form<NewPassword>,
) -> Result<HttpResponse, Failure> {
    me.check(&form.csrf)?;
    let description = form.description.trim().to_string();
    if description.is_empty() || description.chars().count() > 200 {
        return render(
            &state,
            &me,
            Ok(Some(
                "Give the password a name of 1 to 200 characters, such as \"grafana on laptop\".",
            )),
            StatusCode::BAD_REQUEST,
            None,
        )
        .await;
    }
    let now = chrono::Utc::now().timestamp();
    let expires = match form.validity.as_str() {
        "never" => NEVER,
        v => match crate::config::parse_duration(v) {
            Ok(d) if !d.is_zero() => now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(0)),
            _ => {
                return render(
                    &state,
                    &me,
                    Ok(Some("Choose how long the password is valid.")),
                    StatusCode::BAD_REQUEST,
                    None,
                )
                .await;
            }
        },
    };
    let (minted, new) = Minted::bare_on(&state.verifier)
        .await
        .map_err(Failure::Internal)?;
    let (session, client, d2) = (me.session.clone(), me.client, description.clone());
    let made = state
        .store
        .write(move |c| {
            let d = Doing {
                provider_id: session.provider_id,
                user: (&session.user_id, &session.user_name),
                client,
            };
            sign_in::create_app_password(c, &d, &minted, (&d2, now, expires))
        })
        .await;
    let made = match made {
        Ok(k) => k,
        Err(store::Error::Conflict(m) | store::Error::Invalid(m)) => {
            return render(&state, &me, Ok(Some(&m)), StatusCode::BAD_REQUEST, None).await;
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(provider = %me.session.provider, user = %me.session.user_name, id = %made.id, "application password created");
    let key = console.stash(&me.session.csrf, new.full.expose().to_string(), None);
    Ok(redirect(&format!(
        "/me/passwords/{}/created?reveal={key}",
        urlencode(&made.id)
    )))
}

/// `GET /me/passwords/{id}/created`: the new password, once.
pub(crate) async fn created(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    me: Me,
    path: web::Path<String>,
    q: web::Query<super::view::RevealQuery>,
) -> Result<HttpResponse, Failure> {
    let mine = {
        let (s, id) = (me.session.clone(), path.into_inner());
        state
            .store
            .run(move |c| -> store::Result<_> {
                let all = store::sign_in::app_passwords(c, Some(s.provider_id), Some(&s.user_id))?;
                Ok(all.into_iter().find(|k| k.id == id))
            })
            .await?
    };
    let Some(k) = mine else {
        return Err(Failure::NotFound(
            "You have no such application password.".into(),
        ));
    };
    match console.reveal(&q.reveal, &me.session.csrf) {
        Some((secret, _)) => {
            render(&state, &me, Ok(None), StatusCode::OK, Some((&k, &secret))).await
        }
        None => {
            render(
                &state,
                &me,
                Ok(Some(&format!(
                    "The application password {} was shown once, when it was made, and is not \
                     kept. If it was not copied, revoke it and make another.",
                    k.id
                ))),
                StatusCode::OK,
                None,
            )
            .await
        }
    }
}

/// `POST /me/passwords/{id}/revoke`.
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    me: Me,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, Failure> {
    me.check(&form.csrf)?;
    let (session, client, id) = (me.session.clone(), me.client, path.into_inner());
    let now = chrono::Utc::now().timestamp();
    let done = state
        .store
        .write(move |c| {
            let d = Doing {
                provider_id: session.provider_id,
                user: (&session.user_id, &session.user_name),
                client,
            };
            sign_in::revoke_own(c, &d, &id, now)
        })
        .await;
    match done {
        Ok(k) => {
            tracing::info!(provider = %me.session.provider, user = %me.session.user_name, id = %k.id, "application password revoked");
            Ok(redirect(&format!(
                "/me?{}",
                view::Done::query("password-revoked", &k.id)
            )))
        }
        Err(store::Error::Conflict(m) | store::Error::NotFound(m)) => {
            render(&state, &me, Ok(Some(&m)), StatusCode::BAD_REQUEST, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /me/logout`.
pub(crate) async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Me,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, Failure> {
    me.check(&form.csrf)?;
    end(&state, &req).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
                secure(&state)
            ),
        ))
        .finish())
}

/// Ends the person's session a request's cookie names, if any.
pub(crate) async fn end(state: &AppState, req: &HttpRequest) -> Result<(), Failure> {
    if let Some(cookie) = cookie_named(req, COOKIE) {
        let ended = state
            .store
            .write(move |c| store::sign_in::end_session(c, &cookie))
            .await;
        match ended {
            Ok(()) | Err(store::Error::Unavailable(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The login page's sign-in links: one per provider with OpenID Connect.
pub(crate) async fn providers_with_sign_in(state: &AppState) -> Vec<String> {
    state
        .store
        .run(|c| store::sign_in::all_settings(c))
        .await
        .map(|all| all.into_iter().map(|s| s.provider).collect())
        .unwrap_or_default()
}
