//! Admin accounts on the Settings page: add one, remove another (never yourself, never the
//! last), change your own password. The same use cases and audit records as
//! `scimd admin add|remove|passwd`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::{self, CsrfForm, Signed};
use super::view::{self, Chrome, Nav};
use super::{Failure, html_response, redirect, urlencode};
use crate::app::AppState;
use crate::app::admin;
use crate::store::{self, admins};

/// The accounts table with its Remove links, and the forms to add one and change your own
/// password (for an admin signed in with a local account).
pub(crate) fn section(list: &[admins::Admin], s: &Signed, message: Option<&str>) -> Markup {
    let me = &s.session.admin;
    html! {
        h2 #admins { "Admin accounts" }
        (view::error_box(message))
        (view::table(&["Account", "Created", "Password changed", "Last login", "Sessions", "Actions"], html! {
            @for a in list {
                tr {
                    td { (a.name) @if &a.name == me { " (you)" } }
                    td { (view::time(a.created)) }
                    td { (view::time(a.changed)) }
                    td { (a.last_login.map_or("never".to_string(), view::time)) }
                    td { (a.sessions) }
                    td {
                        @if &a.name != me && list.len() > 1 {
                            a href={"/settings/admins/" (urlencode(&a.name)) "/remove"} aria-label={"Remove " (a.name)} { "Remove…" }
                        }
                    }
                }
            }
        }))
        h3 { "Add an admin account" }
        form.stack method="post" action="/settings/admins" {
            (view::csrf(&s.session.csrf))
            label for="admin-name" { "Account name" }
            input #admin-name name="name" type="text" required maxlength="64" aria-describedby="admin-name-rule";
            p.hint #admin-name-rule { "1 to 64 letters, digits, " code { "-" } ", " code { "_" } ", " code { "." } " or " code { "@" } "." }
            label for="admin-secret" { "Password (at least 12 characters)" }
            input #admin-secret name="secret" type=(view::SECRET_INPUT) required minlength="12" autocomplete="new-password";
            label for="admin-secret-again" { "The same password again" }
            input #admin-secret-again name="again" type=(view::SECRET_INPUT) required minlength="12" autocomplete="new-password";
            button type="submit" { "Add admin account" }
        }
        @if s.session.admin_id != 0 {
            h3 { "Change your password" }
            form.stack method="post" action="/settings/password" {
                (view::csrf(&s.session.csrf))
                label for="current-secret" { "Your current password" }
                input #current-secret name="current" type=(view::SECRET_INPUT) required autocomplete="current-password";
                label for="new-secret" { "New password (at least 12 characters)" }
                input #new-secret name="secret" type=(view::SECRET_INPUT) required minlength="12" autocomplete="new-password";
                label for="new-secret-again" { "The new password again" }
                input #new-secret-again name="again" type=(view::SECRET_INPUT) required minlength="12" autocomplete="new-password";
                button type="submit" { "Change password" }
                p.hint { "Every session of your account ends; you log in again with the new password." }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    csrf: String,
    name: String,
    secret: String,
    again: String,
}

/// The Settings page again, with `message` above the accounts (a refused form).
async fn refused(state: &AppState, s: &Signed, message: &str) -> Result<HttpResponse, Failure> {
    let list = state.store.run(|c| admins::list(c)).await?;
    let chrome = Chrome {
        admin: &s.session.admin,
        csrf: &s.session.csrf,
    };
    Ok(html_response(
        StatusCode::BAD_REQUEST,
        view::page(
            "Settings",
            Nav::Settings,
            Some(&chrome),
            section(&list, s, Some(message)),
        ),
    ))
}

/// `POST /settings/admins`.
pub(crate) async fn add(
    state: web::Data<AppState>,
    s: Signed,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, Failure> {
    s.check(&form.csrf)?;
    let name = form.name.trim().to_string();
    let checked = admins::check_name(&name)
        .and_then(|()| admins::check_password(&form.secret))
        .and_then(|()| match form.secret == form.again {
            true => Ok(()),
            false => Err("the two passwords differ".to_string()),
        });
    if let Err(m) = checked {
        return refused(&state, &s, &m).await;
    }
    let hash = state
        .verifier
        .hash(form.secret.clone())
        .await
        .map_err(Failure::Internal)?;
    let (n, by, at) = (
        name.clone(),
        s.actor.clone(),
        chrono::Utc::now().timestamp(),
    );
    match state
        .store
        .write(move |c| admin::add_admin(c, &by, &n, &hash, at))
        .await
    {
        Ok(a) => {
            tracing::info!(account = %a.name, admin = %s.session.admin, "admin account added in the console");
            Ok(redirect(&format!(
                "/settings?{}#admins",
                view::Done::query("admin-added", &a.name)
            )))
        }
        Err(store::Error::Conflict(m) | store::Error::Invalid(m)) => refused(&state, &s, &m).await,
        Err(e) => Err(e.into()),
    }
}

/// `GET /settings/admins/{name}/remove`: what removing does, and a button.
pub(crate) async fn remove_form(
    s: Signed,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let name = path.into_inner();
    let chrome = Chrome {
        admin: &s.session.admin,
        csrf: &s.session.csrf,
    };
    Ok(html_response(
        StatusCode::OK,
        view::page(
            &format!("Remove admin account {name}?"),
            Nav::Settings,
            Some(&chrome),
            html! {
                p.warning role="alert" {
                    "Admin account " strong { (name) } " can no longer log in, and its sessions end at once."
                }
                form method="post" action={"/settings/admins/" (urlencode(&name)) "/remove"} {
                    (view::csrf(&s.session.csrf))
                    button.danger type="submit" { "Remove admin account" }
                    " "
                    a href="/settings#admins" { "Cancel" }
                }
            },
        ),
    ))
}

/// `POST /settings/admins/{name}/remove`: never your own account, never the last one.
pub(crate) async fn remove(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, Failure> {
    s.check(&form.csrf)?;
    let name = path.into_inner();
    if name == s.session.admin {
        return refused(
            &state,
            &s,
            "You cannot remove your own account while signed in with it; another admin can.",
        )
        .await;
    }
    let (n, by) = (name.clone(), s.actor.clone());
    match state
        .store
        .write(move |c| admin::remove_admin(c, &by, &n, true))
        .await
    {
        Ok(a) => {
            tracing::info!(account = %a.name, admin = %s.session.admin, "admin account removed in the console");
            Ok(redirect(&format!(
                "/settings?{}#admins",
                view::Done::query("admin-removed", &a.name)
            )))
        }
        Err(store::Error::Invalid(m)) => refused(&state, &s, &m).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    current: String,
    secret: String,
    again: String,
}

/// `POST /settings/password`: the signed-in admin's own password, after the current one.
pub(crate) async fn password(
    req: HttpRequest,
    state: web::Data<AppState>,
    s: Signed,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, Failure> {
    s.check(&form.csrf)?;
    if s.session.admin_id == 0 {
        return refused(
            &state,
            &s,
            "You signed in with your identity provider: your password is changed there.",
        )
        .await;
    }
    let checked =
        admins::check_password(&form.secret).and_then(|()| match form.secret == form.again {
            true => Ok(()),
            false => Err("the two new passwords differ".to_string()),
        });
    if let Err(m) = checked {
        return refused(&state, &s, &m).await;
    }
    let name = s.session.admin.clone();
    let stored = state
        .store
        .run(move |c| admins::password_hash(c, &name))
        .await?
        .map(|(_, phc)| phc)
        .unwrap_or_default();
    let right = state
        .verifier
        .check_password(form.current.clone(), stored)
        .await
        .unwrap_or(false);
    if !right {
        return refused(&state, &s, "Your current password is not right.").await;
    }
    let hash = state
        .verifier
        .hash(form.secret.clone())
        .await
        .map_err(Failure::Internal)?;
    let (n, by, at) = (
        s.session.admin.clone(),
        s.actor.clone(),
        chrono::Utc::now().timestamp(),
    );
    state
        .store
        .write(move |c| admin::set_admin_password(c, &by, &n, &hash, at))
        .await?;
    if let Some(cookie) = session::cookie_of(&req)
        && let Some(console) = req.app_data::<web::Data<super::Console>>()
    {
        console.forget(&cookie);
    }
    tracing::info!(account = %s.session.admin, "admin password changed in the console");
    let secure = state.config.tls_cert.is_some() && state.config.tls_key.is_some();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login?changed=1"))
        .insert_header((header::SET_COOKIE, session::clear_cookie(secure)))
        .finish())
}
