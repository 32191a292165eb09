//! The admin console's accounts (`admins`) and server-side sessions (`admin_sessions`).
//!
//! A session cookie is 32 random bytes; the table keeps only its BLAKE2b hash, so a copy of
//! the database opens no console. Time is a parameter: every check takes `now` (unix seconds).

use blake2::{Blake2b512, Digest};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Error, Result};

/// An admin account as listed (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) created: i64,
    pub(crate) changed: i64,
    pub(crate) last_login: Option<i64>,
    /// Sessions not yet ended (they may have timed out; the cleanup job removes those).
    pub(crate) sessions: i64,
}

/// A session that is still valid, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) admin_id: i64,
    pub(crate) admin: String,
    pub(crate) csrf: String,
    pub(crate) created: i64,
}

/// How long sessions last: since their last request, and at most since login (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    pub(crate) idle: i64,
    pub(crate) absolute: i64,
}

/// Admin names: 1–64 letters, digits, `-`, `_`, `.` or `@`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid admin name {}: use 1 to 64 letters, digits, '-', '_', '.' or '@'",
            super::quoted_name(name)
        ))
    }
}

/// Passwords of at least 12 characters; anything longer than 1024 is refused (argon2 would
/// take it, but nobody types that).
pub(crate) fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 12 {
        return Err("the password needs at least 12 characters".into());
    }
    if n > 1024 {
        return Err("the password is longer than 1024 characters".into());
    }
    Ok(())
}

pub(crate) fn add(c: &Connection, name: &str, password_hash: &str, now: i64) -> Result<Admin> {
    check_name(name).map_err(Error::Invalid)?;
    let done = c.execute(
        "INSERT INTO admins (name, password_hash, created, changed) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![name, password_hash, now],
    )?;
    if done == 0 {
        return Err(Error::Conflict(format!(
            "admin {name} exists; change its password with `scimd admin passwd {name}`"
        )));
    }
    require(c, name)
}

pub(crate) fn list(c: &Connection) -> Result<Vec<Admin>> {
    let mut st = c.prepare(
        "SELECT a.id, a.name, a.created, a.changed, a.last_login,
                (SELECT count(*) FROM admin_sessions s WHERE s.admin_id = a.id)
         FROM admins a ORDER BY a.name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Admin {
            id: r.get(0)?,
            name: r.get(1)?,
            created: r.get(2)?,
            changed: r.get(3)?,
            last_login: r.get(4)?,
            sessions: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn count(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM admins", [], |r| r.get(0))?)
}

pub(crate) fn require(c: &Connection, name: &str) -> Result<Admin> {
    list(c)?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::NotFound(format!("no admin named {name}: see `scimd admin list`")))
}

/// The stored hash of an admin's password, to verify a login against (outside a transaction:
/// argon2 is slow).
pub(crate) fn password_hash(c: &Connection, name: &str) -> Result<Option<(i64, String)>> {
    Ok(c.query_row(
        "SELECT id, password_hash FROM admins WHERE name = ?1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// Sets a new password and ends every session of the account.
pub(crate) fn set_password(
    c: &Connection,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<Admin> {
    let a = require(c, name)?;
    c.execute(
        "UPDATE admins SET password_hash = ?2, changed = ?3 WHERE id = ?1",
        params![a.id, password_hash, now],
    )?;
    c.execute("DELETE FROM admin_sessions WHERE admin_id = ?1", [a.id])?;
    require(c, name)
}

/// Removes an account and its sessions. The last account cannot be removed from the console
/// (`keep_one`), so nobody locks everyone out by a click; the command line may.
pub(crate) fn remove(c: &Connection, name: &str, keep_one: bool) -> Result<Admin> {
    let a = require(c, name)?;
    if keep_one && count(c)? <= 1 {
        return Err(Error::Invalid(format!(
            "{name} is the only admin account; add another before removing it"
        )));
    }
    c.execute("DELETE FROM admins WHERE id = ?1", [a.id])?;
    Ok(a)
}

pub(crate) fn hash_session(cookie: &str) -> String {
    let digest = Blake2b512::digest(cookie.as_bytes());
    digest[..32].iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a session for a verified login; `cookie` and `csrf` are fresh random values.
pub(crate) fn start_session(
    c: &Connection,
    admin_id: i64,
    cookie: &str,
    csrf: &str,
    client: &str,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO admin_sessions (id_hash, admin_id, csrf, created, last_seen, client)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![hash_session(cookie), admin_id, csrf, now, client],
    )?;
    c.execute(
        "UPDATE admins SET last_login = ?2 WHERE id = ?1",
        params![admin_id, now],
    )?;
    Ok(())
}

/// The session a cookie names, if it has neither idled out nor outlived its absolute
/// lifetime at `now`. A session found expired is deleted.
pub(crate) fn find_session(
    c: &Connection,
    cookie: &str,
    now: i64,
    limits: Lifetimes,
) -> Result<Option<(Session, i64)>> {
    let hash = hash_session(cookie);
    let found = c
        .query_row(
            "SELECT s.admin_id, a.name, s.csrf, s.created, s.last_seen
             FROM admin_sessions s JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = ?1",
            [&hash],
            |r| {
                Ok((
                    Session {
                        admin_id: r.get(0)?,
                        admin: r.get(1)?,
                        csrf: r.get(2)?,
                        created: r.get(3)?,
                    },
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    match found {
        Some((s, last_seen))
            if now - last_seen <= limits.idle && now - s.created <= limits.absolute =>
        {
            Ok(Some((s, last_seen)))
        }
        Some(_) => {
            c.execute("DELETE FROM admin_sessions WHERE id_hash = ?1", [&hash])?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Notes a request of the session (called at most once a minute per session).
pub(crate) fn touch_session(c: &Connection, cookie: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE admin_sessions SET last_seen = ?2 WHERE id_hash = ?1",
        params![hash_session(cookie), now],
    )?;
    Ok(())
}

pub(crate) fn end_session(c: &Connection, cookie: &str) -> Result<()> {
    c.execute(
        "DELETE FROM admin_sessions WHERE id_hash = ?1",
        [hash_session(cookie)],
    )?;
    Ok(())
}

/// Deletes the sessions that have expired at `now`; returns how many.
pub(crate) fn delete_expired_sessions(
    c: &Connection,
    now: i64,
    limits: Lifetimes,
) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM admin_sessions WHERE last_seen < ?1 OR created < ?2",
        params![now - limits.idle, now - limits.absolute],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Lifetimes = Lifetimes {
        idle: 1800,
        absolute: 12 * 3600,
    };

    fn with_admin() -> (Connection, Admin) {
        let c = crate::store::test_conn();
        let a = add(&c, "alice", "$argon2id$x", 1000).unwrap();
        (c, a)
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("alice@example.com").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }

    #[test]
    fn an_admin_name_is_taken_once() {
        let (c, _) = with_admin();
        assert!(matches!(add(&c, "alice", "h", 1), Err(Error::Conflict(_))));
    }

    #[test]
    fn a_session_idles_out_and_has_an_absolute_lifetime() {
        let (c, a) = with_admin();
        start_session(&c, a.id, "cookie-1", "csrf", "127.0.0.1", 10_000).unwrap();
        let (s, _) = find_session(&c, "cookie-1", 10_000 + 1800, LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!((s.admin.as_str(), s.csrf.as_str()), ("alice", "csrf"));
        // One second past the idle timeout: gone, and deleted.
        assert!(
            find_session(&c, "cookie-1", 10_000 + 1801, LIMITS)
                .unwrap()
                .is_none()
        );
        assert!(
            find_session(&c, "cookie-1", 10_000, LIMITS)
                .unwrap()
                .is_none()
        );

        // Kept busy, it still ends at the absolute lifetime.
        start_session(&c, a.id, "cookie-2", "csrf", "127.0.0.1", 10_000).unwrap();
        let mut now = 10_000;
        while now < 10_000 + LIMITS.absolute {
            now += 1000;
            touch_session(&c, "cookie-2", now).unwrap();
        }
        assert!(find_session(&c, "cookie-2", now, LIMITS).unwrap().is_none());
    }

    #[test]
    fn the_database_holds_no_cookie() {
        let (c, a) = with_admin();
        start_session(&c, a.id, "the-cookie", "csrf", "127.0.0.1", 1).unwrap();
        let stored: String = c
            .query_row("SELECT id_hash FROM admin_sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, "the-cookie");
        assert_eq!(stored, hash_session("the-cookie"));
    }

    #[test]
    fn a_new_password_or_removal_ends_the_sessions() {
        let (c, a) = with_admin();
        start_session(&c, a.id, "k", "csrf", "127.0.0.1", 1).unwrap();
        set_password(&c, "alice", "h2", 2).unwrap();
        assert!(find_session(&c, "k", 3, LIMITS).unwrap().is_none());
        start_session(&c, a.id, "k2", "csrf", "127.0.0.1", 3).unwrap();
        add(&c, "bob", "h", 3).unwrap();
        remove(&c, "alice", true).unwrap();
        assert!(find_session(&c, "k2", 4, LIMITS).unwrap().is_none());
        assert!(matches!(remove(&c, "bob", true), Err(Error::Invalid(_))));
        remove(&c, "bob", false).unwrap();
    }

    #[test]
    fn expired_sessions_are_cleaned_up() {
        let (c, a) = with_admin();
        start_session(&c, a.id, "old", "x", "-", 0).unwrap();
        start_session(&c, a.id, "new", "x", "-", 5000).unwrap();
        assert_eq!(delete_expired_sessions(&c, 5000, LIMITS).unwrap(), 1);
        assert!(find_session(&c, "new", 5001, LIMITS).unwrap().is_some());
    }
}
