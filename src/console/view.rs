//! The console's shared HTML, written with maud, which escapes every interpolated value (a
//! userName of `<script>` is shown as text): the page layout and navigation, and the pieces
//! the pages (`pages.rs`) are made of — tables, copyable fields, times, attribute lists, CSRF
//! fields. No inline script or style: a page loads `/static/console.js` and
//! `/static/console.css` only.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::store::activity::Record;

/// A unix time in seconds, as the console shows every time: with its zone.
pub(crate) fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

pub(crate) fn time_ms(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => time(ms.div_euclid(1000)),
        None => "never".into(),
    }
}

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Dashboard,
    Providers,
    Activity,
    Audit,
    Settings,
    None,
    /// An error page: the navigation, without knowing who is signed in (no logout form).
    Error,
}

/// Who is signed in, for the header and the logout form.
pub(crate) struct Chrome<'a> {
    pub(crate) admin: &'a str,
    pub(crate) csrf: &'a str,
}

pub(crate) fn page(title: &str, nav: Nav, chrome: Option<&Chrome<'_>>, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Nav| {
        html! {
            a href=(href) aria-current=[(nav == this).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · scimd" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "scimd" }
                    @if chrome.is_some() || nav == Nav::Error {
                        nav aria-label="Main" {
                            (link("/", "Dashboard", Nav::Dashboard))
                            (link("/providers", "Identity providers", Nav::Providers))
                            (link("/activity", "Activity", Nav::Activity))
                            (link("/audit", "Audit log", Nav::Audit))
                            (link("/settings", "Settings", Nav::Settings))
                        }
                    }
                    @if let Some(c) = chrome {
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            span.who { (c.admin) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What a page confirms after the change that led to it (`?done=CODE&what=NAME`): a fixed
/// message per code, so a link cannot make the console say anything else; `what` (escaped,
/// shortened) names the thing changed.
#[derive(serde::Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
    what: Option<String>,
}

impl Done {
    /// The query string that makes a page confirm `code` for `what`.
    pub(crate) fn query(code: &str, what: &str) -> String {
        format!("done={code}&what={}", super::urlencode(what))
    }

    pub(crate) fn notice(&self) -> Markup {
        let what: String = self
            .what
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let text = match self.done.as_deref() {
            Some("provider-added") => format!(
                "Identity provider {what} added. Next: create a token below, then give the \
                 identity provider the SCIM base URL and the token."
            ),
            Some("provider-changed") => format!("Changes to {what} saved."),
            Some("provider-removed") => {
                format!("Identity provider {what} removed, with its users, groups and tokens.")
            }
            Some("token-revoked") => {
                format!("Token {what} revoked: requests with it are refused from now on.")
            }
            Some("account-revoked") => {
                format!("LDAP service account {what} revoked: its binds fail from now on.")
            }
            Some("schema-added") => format!("Extension schema {what} added."),
            Some("schema-removed") => format!("Extension schema {what} removed."),
            Some("admin-added") => format!("Admin account {what} added."),
            Some("admin-removed") => format!("Admin account {what} removed; its sessions ended."),
            Some("feed-added") => format!(
                "Feed {what} added: it sends each change committed from now on. Its receiver \
                 verifies the tokens with the public keys below."
            ),
            Some("feed-paused") => format!("Feed {what} paused: events wait until it resumes."),
            Some("feed-resumed") => format!("Feed {what} resumed."),
            Some("feed-replayed") => format!("The feed delivers again from event {what}."),
            Some("feed-key-rotated") => format!(
                "Feed {what} signs with a new key from now on; the old one stays published for \
                 the overlap."
            ),
            Some("feed-removed") => format!("Feed {what} removed."),
            Some("password-revoked") => {
                format!("Application password {what} revoked: binds with it fail from now on.")
            }
            _ => return html! {},
        };
        html! { p.notice role="status" { (text) } }
    }
}

/// The query of a page that shows a secret once: the key it was stashed under
/// (`Console::stash`).
#[derive(serde::Deserialize)]
pub(crate) struct RevealQuery {
    #[serde(default)]
    pub(crate) reveal: String,
}

/// The input type of a field whose value is not shown on screen.
pub(crate) const SECRET_INPUT: &str = "password";

pub(crate) fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
    }
}

pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

pub(crate) fn copyable(id: &str, value: &str, label: &str) -> Markup {
    html! {
        div.copy {
            input #(id) type="text" readonly value=(value) aria-label=(label);
            button type="button" data-copy=(id) { "Copy" }
            span.sr id={(id) "-copied"} role="status" aria-live="polite" {}
        }
    }
}

/// A table that scrolls sideways on a narrow screen instead of the page.
pub(crate) fn table(headers: &[&str], rows: Markup) -> Markup {
    html! {
        // Focusable, so a keyboard can scroll it sideways (axe: scrollable-region-focusable).
        div.scroll tabindex="0" role="region" aria-label={"Table: " (headers.join(", "))} {
            table {
                thead { tr { @for h in headers { th scope="col" { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// A column heading: its label and, for a column the list can be sorted by, where a click
/// sorts it and how it is sorted now (`ascending` or `descending`, for `aria-sort`).
pub(crate) struct Heading<'a> {
    pub(crate) label: &'a str,
    pub(crate) sort: Option<(String, Option<&'static str>)>,
}

/// `table` with headings that sort: a sortable heading is a link, the sorted one says how
/// (`aria-sort`, and an arrow that screen readers skip).
pub(crate) fn sortable_table(headings: &[Heading<'_>], rows: Markup) -> Markup {
    let labels: Vec<&str> = headings.iter().map(|h| h.label).collect();
    html! {
        div.scroll tabindex="0" role="region" aria-label={"Table: " (labels.join(", "))} {
            table {
                thead { tr { @for h in headings {
                    @match &h.sort {
                        None => th scope="col" { (h.label) },
                        Some((href, state)) => th scope="col" aria-sort=[state] {
                            a href=(href) {
                                (h.label)
                                @match state {
                                    Some("ascending") => span aria-hidden="true" { " ▲" },
                                    Some(_) => span aria-hidden="true" { " ▼" },
                                    None => {},
                                }
                            }
                        },
                    }
                } } }
                tbody { (rows) }
            }
        }
    }
}

/// The login page: a sign-in link per identity provider with OpenID Connect (`sign_ins`),
/// then the admin accounts' form.
pub(crate) fn login(next: &str, name: &str, message: Option<&str>, sign_ins: &[String]) -> Markup {
    page(
        "Log in",
        Nav::None,
        None,
        html! {
            (error_box(message))
            @if !sign_ins.is_empty() {
                ul.sign-ins {
                    @for p in sign_ins {
                        li { a.button href={"/oidc/" (super::urlencode(p)) "/start"} { "Sign in with " (p) } }
                    }
                }
                p.hint { "Or, with an admin account of this server:" }
            }
            form.stack method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="name" { "Admin account" }
                input #name name="name" type="text" autocomplete="username" required value=(name) autofocus;
                label for="password" { "Password" }
                input #password name="password" type=(SECRET_INPUT) autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
            p.hint { "No account yet? On the server: " code { "scimd admin add NAME" } }
        },
    )
}

/// One line of the activity page or of a resource's history.
pub(crate) fn activity_row(r: &Record, with_provider: bool) -> Markup {
    let failed = r.status >= 400;
    let what = match (&r.resource_type, &r.name, &r.resource_id) {
        (Some(t), Some(n), _) => format!("{t} {n}"),
        (Some(t), None, Some(id)) => format!("{t} {id}"),
        (Some(t), None, None) => t.clone(),
        _ => r.path.clone().unwrap_or_default(),
    };
    html! {
        tr.failed[failed] data-seq=(r.seq) {
            td.nowrap { a href={"/activity/" (r.seq)} { (time_ms(Some(r.at))) } }
            @if with_provider { td { (r.provider) } }
            td { (r.action) @if r.count > 1 { " ×" (r.count) } }
            td { (what) }
            td { (r.status) }
            td { (changed_and_detail(r)) }
        }
    }
}

/// What a record says changed, and its detail: one text. A membership record's detail names
/// what changed already ("members: 20 added"), so it stands alone.
fn changed_and_detail(r: &Record) -> String {
    let changed = r.changed.join(", ");
    match r.detail.as_deref().filter(|d| !d.is_empty()) {
        None => changed,
        Some(d) if changed.is_empty() || d.starts_with(changed.as_str()) => d.to_string(),
        Some(d) => format!("{changed} — {d}"),
    }
}

pub(crate) const ACTIVITY_HEADERS: &[&str] = &[
    "Time",
    "Provider",
    "Action",
    "Resource",
    "Status",
    "Changed / detail",
];
pub(crate) const HISTORY_HEADERS: &[&str] =
    &["Time", "Action", "Resource", "Status", "Changed / detail"];

/// A resource's attributes as rows of path and value, sub-attributes and list items flattened.
pub(crate) fn attributes(doc: &Value) -> Markup {
    let mut rows = Vec::new();
    flatten("", doc, &mut rows);
    html! {
        div.attributes {
            (table(&["Attribute", "Value"], html! {
                @for (k, v) in &rows { tr { th scope="row" { (k) } td { (v) } } }
            }))
        }
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Array(items) => out.push((
            prefix.to_string(),
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        )),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html =
            attributes(&serde_json::json!({"userName": "<script>alert(1)</script>"})).into_string();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn nested_values_are_flattened() {
        let mut rows = Vec::new();
        flatten(
            "",
            &serde_json::json!({"name": {"givenName": "A"}, "emails": [{"value": "a@x"}], "schemas": ["x", "y"]}),
            &mut rows,
        );
        assert_eq!(
            rows,
            vec![
                ("name.givenName".into(), "A".into()),
                ("emails[0].value".into(), "a@x".into()),
                ("schemas".into(), "x, y".into())
            ]
        );
    }

    #[test]
    fn times_carry_their_zone() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time_ms(None), "never");
    }
}
