//! Who a request comes from when a person signed in with their identity provider: the
//! session cookie of `/me`, and whether that person gets the admin pages now.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::Failure;
use crate::app::AppState;
use crate::app::sign_in;
use crate::store::{self, admins::Lifetimes, sign_in::UserSession};

/// The cookie of a person's session. `SameSite=Lax`: it is set on the return from the
/// identity provider, a navigation that starts on another site.
pub(crate) const COOKIE: &str = "scimd_me";
/// `last_seen` is written at most this often per session (seconds).
const TOUCH_EVERY: i64 = 60;

/// The value of the cookie `name` in a request, if any (among others in one header or several).
pub(crate) fn cookie_named(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The person's session a request's cookie names, if valid (its user still active).
pub(crate) async fn person(
    state: &AppState,
    req: &HttpRequest,
    limits: Lifetimes,
) -> Result<Option<UserSession>, Failure> {
    let Some(cookie) = cookie_named(req, COOKIE) else {
        return Ok(None);
    };
    let now = chrono::Utc::now().timestamp();
    let looked_up = cookie.clone();
    let found = state
        .store
        .run(move |c| store::sign_in::find_session(c, &looked_up, now, limits))
        .await?;
    if let Some(s) = &found
        && now - s.last_seen >= TOUCH_EVERY
    {
        let noted = state
            .store
            .write(move |c| store::sign_in::touch_session(c, &cookie, now))
            .await;
        match noted {
            Ok(()) | Err(store::Error::Unavailable(_)) => {}
            Err(e) => return Err(Failure::Store(e)),
        }
    }
    Ok(found)
}

/// Whether the person's session opens the admin pages (member of the admin group now).
pub(crate) fn is_admin(c: &rusqlite::Connection, s: &UserSession) -> store::Result<bool> {
    let Some(settings) = store::sign_in::settings(c, &s.provider)? else {
        return Ok(false);
    };
    match settings.admin_group {
        Some(g) => sign_in::in_group(c, s.user_seq, &g),
        None => Ok(false),
    }
}
