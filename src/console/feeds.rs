//! The provider page's "Change feeds" section and each feed's page: add a feed (a webhook
//! secret is shown once, on a page a reload cannot make again), pause, resume, replay from an
//! event, rotate the secret or key, remove. The use cases are `app::feeds`, as on the command
//! line.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::app_passwords::page;
use super::session::{Console, CsrfForm, Signed};
use super::view;
use super::{Failure, redirect, urlencode};
use crate::app::AppState;
use crate::app::feeds::{self as use_cases, FeedSpec, Format, State};
use crate::app::providers::Overview;
use crate::scim::events::Op;
use crate::store::feeds::{self, Feed};

type Page = Result<HttpResponse, Failure>;

fn feed_path(f: &Feed) -> String {
    format!(
        "/providers/{}/feeds/{}",
        urlencode(&f.provider),
        urlencode(&f.name)
    )
}

fn format_label(f: &Feed) -> &'static str {
    match f.format.as_str() {
        "set" => "Security Event Tokens (RFC 9967)",
        _ => "Standard Webhooks",
    }
}

/// The provider's feeds and the form that adds one.
pub(crate) fn section(o: &Overview, csrf: &str) -> Markup {
    let name = &o.summary.provider.name;
    let base = format!("/providers/{}", urlencode(name));
    html! {
        section aria-labelledby="feeds" {
            h2 #feeds { "Change feeds" }
            p.hint {
                "Each committed change of " (name) "'s users and groups, posted to a system of "
                "yours (or kept for it to pull) in order, at least once."
            }
            @if o.feeds.is_empty() {
                p { "No feeds." }
            } @else {
                (view::table(&["Feed", "Format", "Receiver", "Behind", "State", "Actions"], html! {
                    @for f in &o.feeds {
                        tr {
                            td { a href=(feed_path(f)) { (f.name) } }
                            td { (format_label(f)) }
                            td { code { (use_cases::receiver(f)) } }
                            td { (o.feed_last - f.position) " events" }
                            td { (State::of(f).text(view::time)) }
                            td { a href=(feed_path(f)) aria-label={"Manage feed " (f.name)} { "Manage" } }
                        }
                    }
                }))
            }
            h3 { "Add a feed" }
            (add_form(&base, csrf, &Draft::default()))
        }
    }
}

/// What the add form holds: empty at first, what was sent after a refusal.
struct Draft {
    name: String,
    format: Format,
    url: String,
    audience: String,
    ops: Vec<String>,
    full: bool,
}

impl Default for Draft {
    fn default() -> Draft {
        Draft {
            name: String::new(),
            format: Format::Webhook,
            url: String::new(),
            audience: String::new(),
            ops: Op::ALL.iter().map(|o| o.as_str().to_string()).collect(),
            full: false,
        }
    }
}

fn add_form(base: &str, csrf: &str, d: &Draft) -> Markup {
    html! {
        form.stack method="post" action={(base) "/feeds"} {
            (view::csrf(csrf))
            label for="feed-name" { "Feed name: letters, digits, -, _ or ." }
            input #feed-name name="name" type="text" required maxlength="64" value=(d.name);
            label for="feed-format" { "Format" }
            select #feed-format name="format" {
                option value="webhook" selected[d.format == Format::Webhook] { "Standard Webhooks (JSON, HMAC-SHA256)" }
                option value="set" selected[d.format == Format::Set] { "Security Event Tokens (RFC 9967, ES256)" }
            }
            label for="feed-url" { "Receiver URL (https://…; empty: the receiver pulls, Security Event Tokens only)" }
            input #feed-url name="url" type="url" value=(d.url);
            label for="feed-audience" { "Audience of the tokens (optional aud claim; by default the URL above, or the feed's name)" }
            input #feed-audience name="audience" type="text" value=(d.audience);
            fieldset {
                legend { "Operations" }
                @for op in Op::ALL {
                    label.check {
                        input type="checkbox" name={"op_" (op.as_str())} value="on" checked[d.ops.iter().any(|o| o == op.as_str())];
                        " " (op.as_str())
                    }
                }
            }
            label.check {
                input #feed-full type="checkbox" name="full" value="on" checked[d.full];
                " Send the resource as it stands with each event"
            }
            button type="submit" { "Add feed" }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    csrf: String,
    name: String,
    format: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    audience: String,
    full: Option<String>,
    op_create: Option<String>,
    op_replace: Option<String>,
    op_patch: Option<String>,
    op_delete: Option<String>,
    op_activate: Option<String>,
    op_deactivate: Option<String>,
    op_members: Option<String>,
}

impl AddForm {
    fn ops(&self) -> Vec<String> {
        let ticked = [
            &self.op_create,
            &self.op_replace,
            &self.op_patch,
            &self.op_delete,
            &self.op_activate,
            &self.op_deactivate,
            &self.op_members,
        ];
        Op::ALL
            .iter()
            .zip(ticked)
            .filter(|(_, on)| on.is_some())
            .map(|(op, _)| op.as_str().to_string())
            .collect()
    }
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST /providers/{p}/feeds`: adds the feed; a webhook's secret is shown once next.
pub(crate) async fn add(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<AddForm>,
) -> Page {
    s.check(&form.csrf)?;
    let format = Format::parse(&form.format).unwrap_or(Format::Webhook);
    let draft = Draft {
        name: form.name.trim().to_string(),
        format,
        url: form.url.trim().to_string(),
        audience: form.audience.trim().to_string(),
        ops: form.ops(),
        full: form.full.is_some(),
    };
    // The form again, as it was sent, under what was wrong with it.
    let refuse = |message: String| {
        let base = format!("/providers/{}", urlencode(&path));
        let mut res = page(
            &s,
            &format!("Add a feed to {}", path.as_str()),
            html! {
                (view::error_box(Some(&message)))
                (add_form(&base, &s.session.csrf, &draft))
                p { a href={(base) "#feeds"} { "Cancel" } }
            },
        );
        *res.status_mut() = StatusCode::BAD_REQUEST;
        Ok(res)
    };
    if draft.ops.is_empty() {
        return refuse("Tick at least one operation for the feed to send.".into());
    }
    let spec = FeedSpec {
        name: draft.name.clone(),
        provider: path.to_string(),
        url: non_empty(&draft.url),
        format,
        audience: non_empty(&draft.audience),
        ops: draft.ops.clone(),
        full: draft.full,
        ca_file: None,
        allow_http: state.config.feed_allow_http,
    };
    let (by, now) = (s.actor.clone(), chrono::Utc::now().timestamp());
    let added = state
        .store
        .write(move |c| use_cases::add(c, &by, &spec, now))
        .await;
    let (f, secret) = match added {
        Ok(a) => a,
        Err(e @ (crate::store::Error::Invalid(_) | crate::store::Error::Conflict(_))) => {
            return refuse(e.to_string());
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(provider = %f.provider, feed = %f.name, admin = %s.session.admin, "feed added in the admin console");
    Ok(match format {
        Format::Webhook => {
            let key = console.stash(&s.session.csrf, secret, None);
            redirect(&format!("{}/secret?reveal={key}", feed_path(&f)))
        }
        Format::Set => redirect(&format!(
            "{}?{}",
            feed_path(&f),
            view::Done::query("feed-added", &f.name)
        )),
    })
}

/// The provider's feed `name`, or `NotFound`.
async fn of(
    state: &AppState,
    provider: &str,
    name: &str,
) -> Result<(Feed, i64, Option<i64>), Failure> {
    let (p, n) = (provider.to_string(), name.to_string());
    let (f, last, first) = state
        .store
        .run(move |c| -> crate::store::Result<_> {
            let p = crate::store::providers::require(c, &p)?;
            let f = feeds::get(c, &n)?.filter(|f| f.provider_id == p.id);
            let f = f.ok_or_else(|| {
                crate::store::Error::NotFound(format!(
                    "identity provider {} has no feed {n}",
                    p.name
                ))
            })?;
            let last = feeds::last_seq(c, p.id)?;
            let first = feeds::first_seq(c, p.id)?;
            Ok((f, last, first))
        })
        .await?;
    Ok((f, last, first))
}

/// `GET /providers/{p}/feeds/{name}`: the feed in full, and what can be done to it.
pub(crate) async fn show(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    q: web::Query<view::Done>,
) -> Page {
    let (f, last, first) = of(&state, &path.0, &path.1).await?;
    let here = feed_path(&f);
    let provider = format!("/providers/{}", urlencode(&f.provider));
    let csrf = &s.session.csrf;
    let now = chrono::Utc::now().timestamp();
    let body = html! {
        (q.notice())
        p { a href={(provider) "#feeds"} { "← " (f.provider) } }
        dl.facts {
            dt { "Format" } dd { (format_label(&f)) }
            dt { "Receiver" } dd { code { (use_cases::receiver(&f)) } }
            @if f.url.is_none() {
                dt { "Poll (RFC 8936)" }
                dd { "POST " code { (use_cases::poll_url(&state.public_base, &f)) } " with a token of " (f.provider) " (read-only is enough)" }
            }
            @if f.format == "set" {
                dt { "Audience" } dd { code { (f.audience.as_deref().unwrap_or_default()) } }
                dt { "Public keys" } dd { code { (use_cases::jwks_url(&state.public_base, &f.name)) } }
            }
            dt { "Operations" } dd { (f.ops.join(", ")) @if f.full { " (with the resource)" } }
            dt { "Created" } dd { (view::time(f.created)) }
            dt { "State" } dd { (State::of(&f).text(view::time)) }
            dt { "Position" } dd { "event " (f.position) " of " (last) " (" (last - f.position) " behind)" }
            dt { "Events kept" }
            dd { @match first { Some(first) => { (first) " to " (last) }, None => { "none yet" } } }
            dt { "Last delivery" } dd { (f.delivered_at.map_or("never".to_string(), |ms| view::time(ms / 1000))) }
            @if let Some(e) = &f.last_error {
                dt { "Last error" } dd { (e) }
            }
            @if let Some(until) = f.old_until.filter(|u| *u > now) {
                dt { @if f.format == "set" { "Old key" } @else { "Old secret" } }
                dd { "still " @if f.format == "set" { "published" } @else { "signing" } " until " (view::time(until)) }
            }
        }
        h2 { "Pause" }
        form method="post" action={(here) "/pause"} {
            (view::csrf(csrf))
            input type="hidden" name="paused" value=(if f.paused { "0" } else { "1" });
            p.hint { @if f.paused { "Events wait and are delivered after a resume." } @else { "Nothing is sent until it resumes; events are kept." } }
            button type="submit" { @if f.paused { "Resume" } @else { "Pause" } }
        }
        h2 { "Replay" }
        form.stack method="post" action={(here) "/replay"} {
            (view::csrf(csrf))
            label for="replay-from" { "Deliver again from event" }
            input #replay-from name="from" type="number" min=(first.unwrap_or(1)) max=(last.max(1)) required;
            button type="submit" { "Replay" }
        }
        h2 { @if f.format == "set" { "Signing key" } @else { "Signing secret" } }
        form.stack method="post" action={(here) "/rotate"} {
            (view::csrf(csrf))
            label for="rotate-overlap" { @if f.format == "set" { "New signing key; keep the old one published for" } @else { "New signing secret; the old one keeps signing for" } }
            select #rotate-overlap name="overlap" {
                option value="1h" { "1 hour" }
                option value="24h" selected { "24 hours" }
                option value="7d" { "7 days" }
            }
            button type="submit" { @if f.format == "set" { "Rotate key" } @else { "Rotate secret" } }
        }
        h2 { "Remove" }
        p { a href={(here) "/remove"} { "Remove this feed…" } }
    };
    Ok(page(&s, &format!("Feed {}", f.name), body))
}

#[derive(Deserialize)]
pub(crate) struct PauseForm {
    csrf: String,
    paused: String,
}

/// `POST /providers/{p}/feeds/{name}/pause` (`paused` 1 or 0).
pub(crate) async fn pause(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<PauseForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let (by, name, paused) = (s.actor.clone(), f.name.clone(), form.paused == "1");
    let f = state
        .store
        .write(move |c| use_cases::set_paused(c, &by, &name, paused))
        .await?;
    let code = if paused {
        "feed-paused"
    } else {
        "feed-resumed"
    };
    Ok(redirect(&format!(
        "{}?{}",
        feed_path(&f),
        view::Done::query(code, &f.name)
    )))
}

#[derive(Deserialize)]
pub(crate) struct ReplayForm {
    csrf: String,
    from: String,
}

/// `POST /providers/{p}/feeds/{name}/replay`.
pub(crate) async fn replay(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<ReplayForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let from: i64 = form
        .from
        .trim()
        .parse()
        .map_err(|_| Failure::Invalid(format!("{:?} is not an event number", form.from)))?;
    let (by, name) = (s.actor.clone(), f.name.clone());
    let f = state
        .store
        .write(move |c| use_cases::replay(c, &by, &name, from))
        .await?;
    Ok(redirect(&format!(
        "{}?{}",
        feed_path(&f),
        view::Done::query("feed-replayed", &(f.position + 1).to_string())
    )))
}

#[derive(Deserialize)]
pub(crate) struct RotateForm {
    csrf: String,
    overlap: String,
}

/// `POST /providers/{p}/feeds/{name}/rotate`: a webhook's new secret is shown once next.
pub(crate) async fn rotate(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<RotateForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let overlap = crate::config::parse_duration(&form.overlap).map_err(Failure::Invalid)?;
    let until =
        chrono::Utc::now().timestamp() + i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX / 2);
    let (by, name) = (s.actor.clone(), f.name.clone());
    let (f, secret) = state
        .store
        .write(move |c| use_cases::rotate(c, &by, &name, until))
        .await?;
    tracing::info!(feed = %f.name, admin = %s.session.admin, "feed secret rotated in the admin console");
    Ok(match f.format.as_str() {
        "set" => redirect(&format!(
            "{}?{}",
            feed_path(&f),
            view::Done::query("feed-key-rotated", &f.name)
        )),
        _ => {
            let key = console.stash(&s.session.csrf, secret, None);
            redirect(&format!("{}/secret?reveal={key}", feed_path(&f)))
        }
    })
}

/// `GET /providers/{p}/feeds/{name}/secret?reveal=KEY`: a webhook secret just made, once.
pub(crate) async fn secret(
    state: web::Data<AppState>,
    console: web::Data<Console>,
    s: Signed,
    path: web::Path<(String, String)>,
    q: web::Query<view::RevealQuery>,
) -> Page {
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let body = match console.reveal(&q.reveal, &s.session.csrf) {
        Some((secret, _)) => html! {
            div.dialog role="dialog" aria-labelledby="new-secret" {
                h2 #new-secret { "Signing secret of feed " (f.name) }
                p.warning role="alert" {
                    "Copy it now: it will not be shown again. The receiver checks each message's "
                    code { "webhook-signature" } " with it (Standard Webhooks)."
                }
                label for="secret" { "Signing secret" }
                (view::copyable("secret", &secret, "Signing secret"))
                p { a.button href=(feed_path(&f)) { "Done" } }
            }
        },
        None => html! {
            p.warning role="alert" {
                "The signing secret of feed " (f.name) " was shown once, when it was made, and "
                "cannot be shown again. If it was not copied, rotate it."
            }
            p { a.button href=(feed_path(&f)) { "Back to the feed" } }
        },
    };
    let mut res = page(&s, &format!("Feed {}", f.name), body);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// `GET /providers/{p}/feeds/{name}/remove`: what removing does, and a button.
pub(crate) async fn remove_form(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
) -> Page {
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let here = feed_path(&f);
    Ok(page(
        &s,
        &format!("Remove feed {}?", f.name),
        html! {
            p.warning role="alert" {
                "Feed " (f.name) " stops at once: its receiver (" (use_cases::receiver(&f)) ") gets nothing "
                "more. The provider's events stay for its other feeds until feed_retention."
            }
            form method="post" action={(here) "/remove"} {
                (view::csrf(&s.session.csrf))
                button.danger type="submit" { "Remove feed" }
                " "
                a href=(here) { "Cancel" }
            }
        },
    ))
}

/// `POST /providers/{p}/feeds/{name}/remove`.
pub(crate) async fn remove(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Page {
    s.check(&form.csrf)?;
    let (f, _, _) = of(&state, &path.0, &path.1).await?;
    let (by, name) = (s.actor.clone(), f.name.clone());
    state
        .store
        .write(move |c| use_cases::remove(c, &by, &name))
        .await?;
    tracing::info!(feed = %f.name, admin = %s.session.admin, "feed removed in the admin console");
    Ok(redirect(&format!(
        "/providers/{}?{}#feeds",
        urlencode(&f.provider),
        view::Done::query("feed-removed", &f.name)
    )))
}
