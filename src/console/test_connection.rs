//! "Test connection" on a provider's page: the identity provider's own first calls, sent with a
//! token the admin pastes, over HTTP to the SCIM base URL the provider is given (as Entra's and
//! Okta's Test Connection buttons do), each answer shown. And the warning the page gives when
//! that URL is one an identity provider in the cloud cannot use.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Signed;
use super::view::{self, Chrome, Nav};
use super::{Failure, html_response, urlencode};
use crate::app::AppState;

/// Each call gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read.
const MAX_BODY: u64 = 1 << 20;

/// Why an identity provider in the cloud could not use `url`, if it could not.
pub(crate) fn url_warning(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let private = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback() || a.is_private() || a.is_link_local(),
        Ok(std::net::IpAddr::V6(a)) => a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => host == "localhost" || host.ends_with(".local") || !host.contains('.'),
    };
    match (scheme == "https", private) {
        (true, false) => None,
        (false, false) => Some(
            "This URL is plain http: Entra ID and Okta need https. Put scimd behind a reverse \
             proxy with a certificate, or give it tls_cert and tls_key, and set public_url to \
             the https address."
                .into(),
        ),
        (_, true) => Some(format!(
            "{host} is not reachable from the internet: Entra ID and Okta call this URL from \
             their cloud. Set public_url to the public https address that reaches scimd (a \
             reverse proxy or a published port)."
        )),
    }
}

/// One call of the test and what came back.
struct Outcome {
    call: String,
    status: Option<u16>,
    millis: u128,
    verdict: String,
    ok: bool,
}

/// A SCIM error's `detail`, or the start of the body.
fn detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Sends the identity provider's first calls to `base` with `token`.
fn run(base: &str, token: &str) -> Vec<Outcome> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let probe = uuid::Uuid::now_v7().to_string();
    let encode = |s: &str| urlencode(s);
    let calls = [
        (
            format!("GET /Users?filter=userName eq \"{probe}\""),
            format!(
                "{base}/Users?filter={}",
                encode(&format!("userName eq \"{probe}\""))
            ),
            "totalResults",
        ),
        (
            format!("GET /Groups?filter=displayName eq \"{probe}\"&excludedAttributes=members"),
            format!(
                "{base}/Groups?filter={}&excludedAttributes=members",
                encode(&format!("displayName eq \"{probe}\""))
            ),
            "totalResults",
        ),
        (
            "GET /ServiceProviderConfig".to_string(),
            format!("{base}/ServiceProviderConfig"),
            "patch",
        ),
    ];
    let mut out = Vec::new();
    for (call, url, expected) in calls {
        let started = Instant::now();
        let answer = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Accept", "application/scim+json")
            .call();
        let millis = started.elapsed().as_millis();
        let outcome = match answer {
            Err(e) => Outcome {
                call,
                status: None,
                millis,
                verdict: format!("no answer from {url}: {e}"),
                ok: false,
            },
            Ok(mut r) => {
                let status = r.status().as_u16();
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_string()
                    .unwrap_or_default();
                let (ok, verdict) = match status {
                    200 if body.contains(expected) => {
                        (true, "as an identity provider expects".into())
                    }
                    200 => (
                        false,
                        format!("200, but not a SCIM answer: {}", detail(&body)),
                    ),
                    401 => (false, format!("the token was refused: {}", detail(&body))),
                    403 => (false, format!("forbidden: {}", detail(&body))),
                    s => (false, format!("{s}: {}", detail(&body))),
                };
                Outcome {
                    call,
                    status: Some(status),
                    millis,
                    verdict,
                    ok,
                }
            }
        };
        out.push(outcome);
    }
    out
}

/// The Test connection form, for the provider page.
pub(crate) fn form(provider: &str, csrf: &str) -> Markup {
    html! {
        h3 #test { "Test connection" }
        form.stack method="post" action={"/providers/" (urlencode(provider)) "/test"} {
            (view::csrf(csrf))
            label for="test-token" { "A token of this provider (used for this test only, never kept)" }
            input #test-token name="token" type=(view::SECRET_INPUT) autocomplete="off" required;
            button type="submit" { "Test connection" }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TestForm {
    csrf: String,
    token: String,
}

/// `POST /providers/{p}/test`: runs the calls and shows each answer.
pub(crate) async fn test(
    state: web::Data<AppState>,
    s: Signed,
    path: web::Path<String>,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, Failure> {
    s.check(&form.csrf)?;
    let name = path.into_inner();
    let looked_up = name.clone();
    let p = state
        .store
        .run(move |c| crate::store::providers::require(c, &looked_up))
        .await?;
    let base = state.scim_base(&p.name);
    let (target, token) = (base.clone(), form.token.trim().to_string());
    let outcomes = web::block(move || run(&target, &token))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
    let all_ok = outcomes.iter().all(|o| o.ok);
    tracing::info!(provider = %p.name, admin = %s.session.admin, ok = all_ok, "connection test from the admin console");
    let chrome = Chrome {
        admin: &s.session.admin,
        csrf: &s.session.csrf,
    };
    let back = format!("/providers/{}", urlencode(&p.name));
    let body = html! {
        p { "Sent to " code { (base) } ", as " (p.name) "'s identity provider sends its first calls." }
        @if let Some(w) = url_warning(&base) { p.warning { (w) } }
        @if all_ok {
            p.notice role="status" { "Connection works: every call was answered as an identity provider expects." }
        } @else {
            p.error role="alert" { "Connection failed: see the answers below." }
        }
        (view::table(&["Call", "Status", "Time", "Answer"], html! {
            @for o in &outcomes {
                tr.failed[!o.ok] {
                    td { code { (o.call) } }
                    td { @match o.status { Some(s) => (s), None => "—" } }
                    td.nowrap { (o.millis) " ms" }
                    td { (o.verdict) }
                }
            }
        }))
        p { a.button href=(back) { "Back to " (p.name) } }
    };
    Ok(html_response(
        StatusCode::OK,
        view::page(
            &format!("Test connection: {}", p.name),
            Nav::Providers,
            Some(&chrome),
            body,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_public_https_url_gets_no_warning() {
        assert_eq!(url_warning("https://scim.contoso.com/scim/v2/p"), None);
        assert_eq!(url_warning("https://203.0.113.7:8443/scim/v2/p"), None);
        assert!(
            url_warning("http://scim.contoso.com/scim/v2/p").is_some_and(|w| w.contains("https"))
        );
        for private in [
            "http://127.0.0.1:8080/scim/v2/p",
            "https://10.1.2.3/scim/v2/p",
            "https://192.168.1.5/scim/v2/p",
            "https://localhost:8443/scim/v2/p",
            "https://[::1]:8443/scim/v2/p",
            "https://scimd/scim/v2/p",
        ] {
            assert!(
                url_warning(private).is_some_and(|w| w.contains("not reachable")),
                "{private}"
            );
        }
    }
}
