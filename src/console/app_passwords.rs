//! The provider page's "Sign-in and application passwords" section, and revoking a user's
//! application password from the console (admins see each password's owner, name and dates,
//! never a secret).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::session::{CsrfForm, Signed};
use super::view::{self, Chrome, Nav};
use super::{Failure, html_response, redirect, urlencode};
use crate::app::AppState;
use crate::app::admin;
use crate::app::providers::Overview;
use crate::app::sign_in::NEVER;
use crate::store::{self, credentials::CredentialKind};

fn expires(at: i64) -> String {
    match at >= NEVER {
        true => "never".into(),
        false => view::time(at),
    }
}

/// Sign-in with the provider (or how to set it) and its users' application passwords.
pub(crate) fn section(o: &Overview, redirect_uri: &str, now_s: i64) -> Markup {
    let name = &o.summary.provider.name;
    let base = format!("/providers/{}", urlencode(name));
    let passwords: Vec<_> = o.of_kind(CredentialKind::AppPassword).collect();
    html! {
        section aria-labelledby="sign-in" {
            h2 #sign-in { "Sign-in and application passwords" }
            @match &o.sign_in {
                None => p {
                    "Sign-in with " (name) " is off: its users cannot make application passwords. "
                    "On the server: " code { "scimd provider oidc set " (name) " --issuer URL --client-id ID --client-secret-file PATH" }
                    ", with the redirect URI " code { (redirect_uri) } " registered at the identity provider."
                },
                Some(s) => dl.facts {
                    dt { "Issuer" } dd { code { (s.issuer) } }
                    dt { "Client id" } dd { code { (s.client_id) } }
                    dt { "Redirect URI" } dd { code { (redirect_uri) } }
                    dt { "Who signs in" } dd { "the user whose " code { (s.match_attribute) } " is the " code { (s.match_claim) } " claim" }
                    dt { "Admin pages for" }
                    dd { @match &s.admin_group { Some(g) => { "members of " (g) }, None => { "nobody (local admin accounts only)" } } }
                },
            }
            @if passwords.is_empty() {
                p { "No application passwords." }
            } @else {
                (view::table(&["User", "Name", "Id", "Created", "Expires", "Last used", "State", "Actions"], html! {
                    @for k in &passwords {
                        @let owner = k.owner.as_deref().unwrap_or_default();
                        @let state = k.state(now_s);
                        tr {
                            td { (o.owners.get(owner).map_or(owner, String::as_str)) }
                            td { (k.description) }
                            td { code { (k.id) } }
                            td { (view::time(k.created)) }
                            td { (expires(k.expires)) }
                            td { (k.last_used.map_or("never".to_string(), view::time)) }
                            td { (state.as_str()) }
                            td {
                                @if state == crate::auth::TokenState::Active {
                                    a href={(base) "/app-passwords/" (k.id) "/revoke"} aria-label={"Revoke " (k.description)} { "Revoke" }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// A page of the provider section, in the console's layout.
pub(super) fn page(s: &Signed, title: &str, body: Markup) -> HttpResponse {
    let chrome = Chrome {
        admin: &s.session.admin,
        csrf: &s.session.csrf,
    };
    html_response(
        StatusCode::OK,
        view::page(title, Nav::Providers, Some(&chrome), body),
    )
}

/// The provider's application password `id`, or `NotFound`.
async fn of(
    state: &AppState,
    provider: &str,
    id: &str,
) -> Result<(String, store::credentials::Credential, String), Failure> {
    let (name, wanted) = (provider.to_string(), id.to_string());
    let (p, k, owner) = state
        .store
        .run(move |c| -> store::Result<_> {
            let p = store::providers::require(c, &name)?;
            let k = store::credentials::require(c, CredentialKind::AppPassword, &wanted)?;
            let owner = k.owner.clone().unwrap_or_default();
            let named = store::resources::names_by_id(
                c,
                k.provider_id,
                crate::scim::ResourceKind::User,
                &[owner.as_str()],
            )?;
            Ok((p, k, named.get(&owner).cloned().unwrap_or(owner)))
        })
        .await?;
    if k.provider_id != p.id {
        return Err(Failure::NotFound(format!(
            "identity provider {} has no application password {id}",
            p.name
        )));
    }
    Ok((p.name, k, owner))
}

/// `GET /providers/{p}/app-passwords/{id}/revoke`: what revoking does, and a button.
pub(crate) async fn revoke_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Failure> {
    let (p, k, owner) = of(&state, &path.0, &path.1).await?;
    let base = format!("/providers/{}", urlencode(&p));
    Ok(page(
        &s,
        &format!("Revoke {owner}'s application password?"),
        html! {
            p.warning role="alert" {
                "The application password " code { (k.id) } " (" (k.description) ") of " (owner)
                " stops working at once: its next bind fails, and connections bound with it read "
                "nothing more. " (owner) " can make another on their /me page."
            }
            form method="post" action={(base) "/app-passwords/" (k.id) "/revoke"} {
                (view::csrf(&s.session.csrf))
                button.danger type="submit" { "Revoke application password" }
                " "
                a href={(base) "#sign-in"} { "Cancel" }
            }
        },
    ))
}

/// `POST /providers/{p}/app-passwords/{id}/revoke`.
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, Failure> {
    s.check(&form.csrf)?;
    let (p, k, owner) = of(&state, &path.0, &path.1).await?;
    let (id, at, by) = (
        k.id.clone(),
        chrono::Utc::now().timestamp(),
        s.actor.clone(),
    );
    state
        .store
        .write(move |c| admin::revoke(c, &by, CredentialKind::AppPassword, &id, at))
        .await?;
    tracing::info!(provider = %p, user = %owner, id = %k.id, admin = %s.session.admin, "application password revoked in the admin console");
    Ok(redirect(&format!(
        "/providers/{}?{}#sign-in",
        urlencode(&p),
        view::Done::query("password-revoked", &k.id)
    )))
}
