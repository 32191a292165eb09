//! Console sign-in: the session cookie, the extractor every page but login uses, CSRF checks,
//! and the login attempt budget (per account and per client address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::Failure;
use crate::app::AppState;
use crate::app::admin::Actor;
use crate::store::{
    self,
    admins::{self, Lifetimes, Session},
};

pub(crate) const COOKIE: &str = "scimd_console";

/// Failed logins allowed per account from one client address, and per client address over
/// all accounts, within `WINDOW`. Per account *and* address, as a token's budget is: guesses
/// from elsewhere do not lock the admin out.
const PER_ACCOUNT: usize = 5;
const PER_CLIENT: usize = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts and addresses tracked at once; beyond that the oldest failures are forgotten.
const TRACKED: usize = 10_000;

/// `last_seen` is written at most this often per session (seconds), not on every page.
const TOUCH_EVERY: i64 = 60;

/// Sessions kept in memory at most (only while the database cannot be written).
const MEMORY_SESSIONS: usize = 1000;

/// The console's own state beside `AppState`.
#[derive(Default)]
pub(crate) struct Console {
    failures: Mutex<Failures>,
    /// Sessions started while the database could not be written (a read-only file or mount),
    /// by the hash of their cookie, with their last request: the admin can still read, and
    /// they end with the process.
    memory: Mutex<HashMap<String, (Session, i64)>>,
    /// New secrets waiting for the page after their form's redirect, which shows each once.
    reveals: Mutex<HashMap<String, Reveal>>,
}

/// A secret a form made (a token), kept for the page its redirect leads to: that page shows
/// it once, to the session that made it, within `REVEAL_WITHIN`; a reload shows it no more.
struct Reveal {
    /// The session's CSRF token: only that session may see it.
    csrf: String,
    secret: String,
    note: Option<String>,
    at: Instant,
}

/// How long a new secret waits for its page.
const REVEAL_WITHIN: Duration = Duration::from_secs(300);
/// Secrets waiting at most.
const REVEALS: usize = 1000;

#[derive(Default)]
struct Failures {
    by_account: HashMap<(String, Option<IpAddr>), Vec<Instant>>,
    by_client: HashMap<IpAddr, Vec<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn recent(list: &mut Vec<Instant>, now: Instant) -> usize {
    list.retain(|t| now.duration_since(*t) < WINDOW);
    list.len()
}

impl Console {
    /// Seconds until `account` from `client` may try again, if it has spent its budget.
    pub(crate) fn wait(&self, account: &str, client: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut f = lock(&self.failures);
        let mut wait = None;
        let until = |list: &Vec<Instant>| {
            list.first()
                .map(|first| (WINDOW - now.duration_since(*first)).as_secs() + 1)
        };
        if let Some(list) = f.by_account.get_mut(&(account.to_string(), client))
            && recent(list, now) >= PER_ACCOUNT
        {
            wait = until(list);
        }
        if let Some(ip) = client
            && let Some(list) = f.by_client.get_mut(&ip)
            && recent(list, now) >= PER_CLIENT
        {
            wait = wait.max(until(list));
        }
        wait
    }

    pub(crate) fn failed(&self, account: &str, client: Option<IpAddr>) {
        let now = Instant::now();
        let mut f = lock(&self.failures);
        if f.by_account.len() >= TRACKED {
            f.by_account.clear();
        }
        if f.by_client.len() >= TRACKED {
            f.by_client.clear();
        }
        f.by_account
            .entry((account.to_string(), client))
            .or_default()
            .push(now);
        if let Some(ip) = client {
            f.by_client.entry(ip).or_default().push(now);
        }
    }

    /// Keeps a session in memory (see `memory`).
    pub(crate) fn remember(&self, cookie: &str, session: Session, now: i64) {
        let mut memory = lock(&self.memory);
        if memory.len() >= MEMORY_SESSIONS {
            memory.clear();
        }
        memory.insert(admins::hash_session(cookie), (session, now));
    }

    /// The in-memory session a cookie names, if still valid at `now` (its last request noted).
    fn recall(&self, cookie: &str, now: i64, limits: Lifetimes) -> Option<Session> {
        let mut memory = lock(&self.memory);
        let hash = admins::hash_session(cookie);
        let (session, last_seen) = memory.get_mut(&hash)?;
        if now - *last_seen > limits.idle || now - session.created > limits.absolute {
            memory.remove(&hash);
            return None;
        }
        *last_seen = now;
        Some(session.clone())
    }

    pub(crate) fn forget(&self, cookie: &str) {
        lock(&self.memory).remove(&admins::hash_session(cookie));
    }

    /// Keeps a new secret (and a note to show beside it) for the session with CSRF token
    /// `csrf`; returns the one-time key its page is asked with.
    pub(crate) fn stash(&self, csrf: &str, secret: String, note: Option<String>) -> String {
        let now = Instant::now();
        let mut reveals = lock(&self.reveals);
        if reveals.len() >= REVEALS {
            reveals.retain(|_, r| now.duration_since(r.at) < REVEAL_WITHIN);
            if reveals.len() >= REVEALS {
                reveals.clear();
            }
        }
        let key = crate::auth::token::random_hex(16);
        reveals.insert(
            key.clone(),
            Reveal {
                csrf: csrf.to_string(),
                secret,
                note,
                at: now,
            },
        );
        key
    }

    /// The secret kept under `key` for the session with CSRF token `csrf`, taken: a second
    /// ask, another session's, or one too late gets nothing.
    pub(crate) fn reveal(&self, key: &str, csrf: &str) -> Option<(String, Option<String>)> {
        let mut reveals = lock(&self.reveals);
        let r = reveals.get(key)?;
        if !same(&r.csrf, csrf) {
            return None;
        }
        let r = reveals.remove(key)?;
        (r.at.elapsed() < REVEAL_WITHIN).then_some((r.secret, r.note))
    }

    pub(crate) fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        lock(&self.failures)
            .by_account
            .remove(&(account.to_string(), client));
    }
}

/// The session's lifetimes from the configuration.
pub(crate) fn lifetimes(state: &AppState) -> Lifetimes {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
    Lifetimes {
        idle: secs(state.config.admin_session_idle),
        absolute: secs(state.config.admin_session_lifetime),
    }
}

/// The value of the console's cookie in a request, if any.
pub(crate) fn cookie_of(req: &HttpRequest) -> Option<String> {
    super::person::cookie_named(req, COOKIE)
}

/// The `Set-Cookie` value that starts a session (`Secure` when the console speaks HTTPS).
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Equal strings, compared in time that depends only on their lengths.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A form that carries only the session's CSRF token (confirmations, revocations, logout).
#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}

/// A request from a signed-in admin. Extracting it from a request without a valid session
/// sends a page request to the login page (and back afterwards) and refuses anything else.
pub(crate) struct Signed {
    pub(crate) session: Session,
    /// The admin as the audit log names them, with the address they came from.
    pub(crate) actor: Actor,
}

impl Signed {
    fn new(session: Session, client: Option<IpAddr>) -> Signed {
        let actor = Actor::console(&session.admin, client);
        Signed { session, actor }
    }

    /// Refuses a state-changing request whose form does not carry the session's CSRF token.
    pub(crate) fn check(&self, csrf: &str) -> Result<(), Failure> {
        if same(csrf, &self.session.csrf) {
            Ok(())
        } else {
            Err(Failure::Forbidden(
                "this form has expired or did not come from the console: reload the page and \
                 try again"
                    .into(),
            ))
        }
    }
}

impl FromRequest for Signed {
    type Error = Failure;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Signed, Failure>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let console = req.app_data::<web::Data<Console>>().cloned();
        let cookie = cookie_of(req);
        let request = req.clone();
        let next = req
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let is_page = req.method() == actix_web::http::Method::GET;
        let client = state
            .as_ref()
            .and_then(|s| crate::web::client_ip(req, &s.config));
        Box::pin(async move {
            let Some(state) = state else {
                return Err(Failure::Internal("console state missing".into()));
            };
            let to_login = || {
                if is_page {
                    Failure::Login(next.clone())
                } else {
                    Failure::Forbidden(
                        "your session has ended: log in again and repeat the change".into(),
                    )
                }
            };
            let Some(cookie) = cookie else {
                return signed_in_with_the_provider(&state, &request, client)
                    .await?
                    .ok_or_else(to_login);
            };
            let limits = lifetimes(&state);
            let now = chrono::Utc::now().timestamp();
            let looked_up = cookie.clone();
            let found = state
                .store
                .run(move |c| admins::find_session(c, &looked_up, now, limits))
                .await
                .map_err(Failure::Store)?;
            let Some((session, last_seen)) = found else {
                if let Some(session) = console.and_then(|m| m.recall(&cookie, now, limits)) {
                    return Ok(Signed::new(session, client));
                }
                // The browser had a session: the login page says it ended.
                return signed_in_with_the_provider(&state, &request, client)
                    .await?
                    .ok_or_else(|| match to_login() {
                        Failure::Login(next) => Failure::Ended(next),
                        other => other,
                    });
            };
            if now - last_seen >= TOUCH_EVERY {
                let touched = cookie.clone();
                let noted = state
                    .store
                    .write(move |c| admins::touch_session(c, &touched, now))
                    .await;
                match noted {
                    // A database that cannot be written still serves the pages that read.
                    Ok(()) | Err(store::Error::Unavailable(_)) => {}
                    Err(e) => return Err(Failure::Store(e)),
                }
            }
            Ok(Signed::new(session, client))
        })
    }
}

/// A person signed in with their identity provider who is, now, a member of its admin group:
/// an admin for this request (named `userName (provider)`, with no admin account). A person who
/// is not gets a page saying where to go.
async fn signed_in_with_the_provider(
    state: &AppState,
    req: &HttpRequest,
    client: Option<IpAddr>,
) -> Result<Option<Signed>, Failure> {
    let Some(person) = super::person::person(state, req, lifetimes(state)).await? else {
        return Ok(None);
    };
    let checked = person.clone();
    let admin = state
        .store
        .run(move |c| super::person::is_admin(c, &checked))
        .await?;
    if !admin {
        return Err(Failure::Forbidden(format!(
            "{} is signed in with {}, but the admin pages are for its admin group only: your \
             page is /me.",
            person.user_name, person.provider
        )));
    }
    let session = Session {
        admin_id: 0,
        admin: format!("{} ({})", person.user_name, person.provider),
        csrf: person.csrf,
        created: person.created,
    };
    Ok(Some(Signed::new(session, client)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_paused_after_five_failures() {
        let c = Console::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..PER_ACCOUNT {
            assert_eq!(c.wait("alice", Some(ip)), None);
            c.failed("alice", Some(ip));
        }
        assert!(c.wait("alice", Some(ip)).is_some_and(|s| s > 0 && s <= 901));
        // Another account from the same address still may.
        assert_eq!(c.wait("bob", Some(ip)), None);
        // And the same account from another address.
        let elsewhere: IpAddr = "192.0.2.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.wait("alice", Some(elsewhere)), None);
    }

    #[test]
    fn an_address_is_paused_after_twenty_failures_over_any_accounts() {
        let c = Console::default();
        let ip: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for i in 0..PER_CLIENT {
            c.failed(&format!("user{i}"), Some(ip));
        }
        assert!(c.wait("someone-else", Some(ip)).is_some());
        assert_eq!(c.wait("someone-else", None), None);
    }

    #[test]
    fn cookies_are_read_among_others() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((
                actix_web::http::header::COOKIE,
                "a=1; scimd_console=abc; b=2",
            ))
            .to_http_request();
        assert_eq!(cookie_of(&req).as_deref(), Some("abc"));
        assert!(set_cookie("x", true).contains("HttpOnly; SameSite=Strict; Secure"));
        assert!(!set_cookie("x", false).contains("Secure"));
    }

    #[test]
    fn a_new_secret_is_revealed_once_and_to_its_session_only() {
        let c = Console::default();
        let key = c.stash("csrf-a", "s3cret".into(), Some("note".into()));
        assert_eq!(c.reveal(&key, "csrf-b"), None, "another session");
        assert_eq!(
            c.reveal(&key, "csrf-a"),
            Some(("s3cret".to_string(), Some("note".to_string())))
        );
        assert_eq!(c.reveal(&key, "csrf-a"), None, "once");
        assert_eq!(c.reveal("made-up", "csrf-a"), None);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
