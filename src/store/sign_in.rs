//! Sign-in with an identity provider: its OpenID Connect client settings, the sessions of the
//! people who signed in (`/me`), and their application passwords (credentials of kind
//! `AppPassword`, owned by one user).

use rusqlite::{Connection, OptionalExtension, params};

use super::admins::{Lifetimes, hash_session};
use super::credentials::{self, COLUMNS, Credential, CredentialKind, FROM, NewCredential};
use super::{Error, Result};
use crate::scim::schema::active_json_path;

/// A provider's OpenID Connect client, as `provider oidc set` stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OidcSettings {
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// PEM certificates trusted for the issuer instead of the system's roots.
    pub(crate) ca_pem: Option<String>,
    pub(crate) match_claim: String,
    pub(crate) match_attribute: String,
    /// Members of the provisioned group of this displayName get the admin pages.
    pub(crate) admin_group: Option<String>,
    pub(crate) changed: i64,
}

const SETTINGS: &str = "SELECT o.provider_id, p.name, o.issuer, o.client_id, o.client_secret, \
     o.ca_pem, o.match_claim, o.match_attribute, o.admin_group, o.changed \
     FROM oidc_settings o JOIN providers p ON p.id = o.provider_id";

fn settings_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OidcSettings> {
    Ok(OidcSettings {
        provider_id: r.get(0)?,
        provider: r.get(1)?,
        issuer: r.get(2)?,
        client_id: r.get(3)?,
        client_secret: r.get(4)?,
        ca_pem: r.get(5)?,
        match_claim: r.get(6)?,
        match_attribute: r.get(7)?,
        admin_group: r.get(8)?,
        changed: r.get(9)?,
    })
}

/// The OpenID Connect client of the provider named `provider`, if it has one.
pub(crate) fn settings(c: &Connection, provider: &str) -> Result<Option<OidcSettings>> {
    Ok(c.query_row(
        &format!("{SETTINGS} WHERE p.name = ?1 COLLATE NOCASE"),
        [provider],
        settings_row,
    )
    .optional()?)
}

/// Every provider's OpenID Connect client, by provider name (the login page's buttons).
pub(crate) fn all_settings(c: &Connection) -> Result<Vec<OidcSettings>> {
    let mut st = c.prepare(&format!("{SETTINGS} ORDER BY p.name"))?;
    let rows = st.query_map([], settings_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores (or replaces) a provider's OpenID Connect client.
pub(crate) fn set_settings(c: &Connection, s: &OidcSettings) -> Result<()> {
    c.execute(
        "INSERT INTO oidc_settings (provider_id, issuer, client_id, client_secret, ca_pem,
                                    match_claim, match_attribute, admin_group, changed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (provider_id) DO UPDATE SET issuer = ?2, client_id = ?3,
             client_secret = ?4, ca_pem = ?5, match_claim = ?6, match_attribute = ?7,
             admin_group = ?8, changed = ?9",
        params![
            s.provider_id,
            s.issuer,
            s.client_id,
            s.client_secret,
            s.ca_pem,
            s.match_claim,
            s.match_attribute,
            s.admin_group,
            s.changed
        ],
    )?;
    Ok(())
}

/// Removes a provider's OpenID Connect client and ends the sessions it started; `false` if it
/// had none.
pub(crate) fn unset_settings(c: &Connection, provider_id: i64) -> Result<bool> {
    let n = c.execute(
        "DELETE FROM oidc_settings WHERE provider_id = ?1",
        [provider_id],
    )?;
    c.execute(
        "DELETE FROM user_sessions WHERE provider_id = ?1",
        [provider_id],
    )?;
    Ok(n > 0)
}

/// A signed-in person: a provisioned user of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSession {
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    pub(crate) user_id: String,
    /// The user's row key (for group membership).
    pub(crate) user_seq: i64,
    pub(crate) user_name: String,
    pub(crate) csrf: String,
    pub(crate) created: i64,
    pub(crate) last_seen: i64,
}

/// Starts a session for a person who signed in as user `user_id` of the provider.
pub(crate) fn start_session(
    c: &Connection,
    (provider_id, user_id): (i64, &str),
    cookie: &str,
    csrf: &str,
    client: &str,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO user_sessions (id_hash, provider_id, user_id, csrf, created, last_seen,
                                    client)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        params![
            hash_session(cookie),
            provider_id,
            user_id,
            csrf,
            now,
            client
        ],
    )?;
    Ok(())
}

/// The session a cookie names, if it is within its lifetimes at `now` and its user still
/// exists and is active; a session that fails either is deleted.
pub(crate) fn find_session(
    c: &Connection,
    cookie: &str,
    now: i64,
    limits: Lifetimes,
) -> Result<Option<UserSession>> {
    let hash = hash_session(cookie);
    let found = c
        .query_row(
            concat!(
                "SELECT s.provider_id, p.name, s.user_id, r.seq, r.name, s.csrf, s.created,
                        s.last_seen,
                        r.seq IS NOT NULL AND coalesce(json_extract(r.doc, '",
                active_json_path!(),
                "'), 1) != 0
                 FROM user_sessions s JOIN providers p ON p.id = s.provider_id
                 LEFT JOIN resources r ON r.provider_id = s.provider_id AND r.kind = 'User'
                                      AND r.id = s.user_id
                 WHERE s.id_hash = ?1"
            ),
            [&hash],
            |r| {
                Ok((
                    UserSession {
                        provider_id: r.get(0)?,
                        provider: r.get(1)?,
                        user_id: r.get(2)?,
                        user_seq: r.get::<_, Option<i64>>(3)?.unwrap_or_default(),
                        user_name: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        csrf: r.get(5)?,
                        created: r.get(6)?,
                        last_seen: r.get(7)?,
                    },
                    r.get::<_, bool>(8)?,
                ))
            },
        )
        .optional()?;
    match found {
        Some((s, true))
            if now - s.last_seen <= limits.idle && now - s.created <= limits.absolute =>
        {
            Ok(Some(s))
        }
        Some(_) => {
            c.execute("DELETE FROM user_sessions WHERE id_hash = ?1", [&hash])?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Notes a request of the session (at most once a minute per session).
pub(crate) fn touch_session(c: &Connection, cookie: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE user_sessions SET last_seen = ?2 WHERE id_hash = ?1",
        params![hash_session(cookie), now],
    )?;
    Ok(())
}

pub(crate) fn end_session(c: &Connection, cookie: &str) -> Result<()> {
    c.execute(
        "DELETE FROM user_sessions WHERE id_hash = ?1",
        [hash_session(cookie)],
    )?;
    Ok(())
}

/// Deletes the sessions that have expired at `now`, or whose user is gone; returns how many.
pub(crate) fn delete_expired_sessions(
    c: &Connection,
    now: i64,
    limits: Lifetimes,
) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM user_sessions WHERE last_seen < ?1 OR created < ?2
            OR NOT EXISTS (SELECT 1 FROM resources r WHERE r.provider_id = user_sessions.provider_id
                           AND r.kind = 'User' AND r.id = user_sessions.user_id)",
        params![now - limits.idle, now - limits.absolute],
    )?)
}

/// The id of provider `pid`'s user named `user_name` (deactivated or not).
pub(crate) fn user_id_by_name(c: &Connection, pid: i64, user_name: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT id FROM resources WHERE provider_id = ?1 AND kind = 'User' AND name_key = ?2",
        params![pid, crate::scim::fold(user_name)],
        |r| r.get(0),
    )
    .optional()?)
}

/// The standing of a user bound with application password `id`: the user still exists and is
/// active, and the password is theirs, not revoked and not expired at `now`.
pub(crate) fn app_password_standing(
    c: &Connection,
    seq: i64,
    id: &str,
    now: i64,
) -> Result<super::ldap_accounts::Standing> {
    use super::ldap_accounts::Standing;
    let found = c
        .prepare_cached(concat!(
            "SELECT coalesce(json_extract(r.doc, '",
            active_json_path!(),
            "'), 1), k.expires, k.revoked, p.model_version, p.ldap_version
             FROM resources r JOIN providers p ON p.id = r.provider_id
             LEFT JOIN credentials k ON k.id = ?2 AND k.kind = 'app' AND k.owner = r.id
                                    AND k.provider_id = r.provider_id
             WHERE r.seq = ?1"
        ))?
        .query_row(params![seq, id], |r| {
            Ok((
                r.get::<_, i64>(0)? != 0,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })
        .optional()?;
    Ok(match found {
        None => Standing::Gone("the user no longer exists"),
        Some((false, ..)) => Standing::Gone("the user was deactivated"),
        Some((true, None, ..)) => Standing::Gone("the application password no longer exists"),
        Some((true, Some(expires), revoked, model_version, ldap_version)) => {
            match crate::auth::token::state(expires, revoked, now) {
                crate::auth::TokenState::Active => Standing::Valid {
                    model_version,
                    ldap_version,
                },
                crate::auth::TokenState::Revoked => {
                    Standing::Gone("the application password was revoked")
                }
                crate::auth::TokenState::Expired => {
                    Standing::Gone("the application password has expired")
                }
            }
        }
    })
}

/// A user's userName and whether it is active, by row key.
pub(crate) fn user_state(c: &Connection, seq: i64) -> Result<Option<(String, bool)>> {
    Ok(c.query_row(
        concat!(
            "SELECT name, coalesce(json_extract(doc, '",
            active_json_path!(),
            "'), 1) != 0 FROM resources WHERE seq = ?1 AND kind = 'User'"
        ),
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// A new application password's row; `hash` and `fingerprint` are the secret's.
pub(crate) struct NewAppPassword<'a> {
    pub(crate) id: &'a str,
    pub(crate) provider_id: i64,
    pub(crate) owner: &'a str,
    pub(crate) hash: &'a str,
    pub(crate) fingerprint: &'a str,
    pub(crate) description: &'a str,
    pub(crate) created: i64,
    pub(crate) expires: i64,
}

/// Stores an application password, unless its user already has `limit` that are not revoked
/// or expired (`Conflict`).
pub(crate) fn add_app_password(
    c: &Connection,
    n: &NewAppPassword<'_>,
    limit: usize,
) -> Result<Credential> {
    let live: i64 = c.query_row(
        "SELECT count(*) FROM credentials WHERE provider_id = ?1 AND owner = ?2
           AND kind = 'app' AND revoked IS NULL AND expires > ?3",
        params![n.provider_id, n.owner, n.created],
        |r| r.get(0),
    )?;
    if live >= limit as i64 {
        return Err(Error::Conflict(format!(
            "you have {live} application passwords, the most one person may have: revoke one \
             you no longer use first"
        )));
    }
    credentials::insert(
        c,
        &NewCredential {
            id: n.id,
            kind: CredentialKind::AppPassword,
            provider_id: n.provider_id,
            name: None,
            secret_hash: n.hash,
            fingerprint: Some(n.fingerprint),
            description: n.description,
            read_only: true,
            created: n.created,
            expires: n.expires,
            owner: Some(n.owner),
        },
    )?;
    credentials::require(c, CredentialKind::AppPassword, n.id)
}

/// The application passwords of one user (`owner`), or of every user of a provider, or all:
/// newest first.
pub(crate) fn app_passwords(
    c: &Connection,
    provider_id: Option<i64>,
    owner: Option<&str>,
) -> Result<Vec<Credential>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM {FROM}
         WHERE k.kind = 'app' AND (?1 IS NULL OR k.provider_id = ?1)
           AND (?2 IS NULL OR k.owner = ?2)
         ORDER BY k.created DESC, k.id"
    ))?;
    let rows = st.query_map(params![provider_id, owner], credentials::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An application password a bind presents, with its hash and fingerprint.
pub(crate) fn app_password_for_bind(
    c: &Connection,
    id: &str,
) -> Result<Option<(Credential, String, Option<String>)>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLUMNS}, k.secret_hash, k.fingerprint FROM {FROM}
             WHERE k.id = ?1 AND k.kind = 'app'"
        ),
        [id],
        |r| Ok((credentials::from_row(r)?, r.get(13)?, r.get(14)?)),
    )
    .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::store::{providers, test_conn};

    const LIMITS: Lifetimes = Lifetimes {
        idle: 1800,
        absolute: 12 * 3600,
    };

    fn with_user(c: &Connection) -> i64 {
        let p = providers::insert(c, "p", "", ProviderKind::Entra, 0).unwrap();
        c.execute(
            "INSERT INTO resources (provider_id, kind, id, name, name_key, doc, created,
                                    modified, version)
             VALUES (?1, 'User', 'u1', 'ann', 'ann', '{\"active\":true}', '', '', 1)",
            [p.id],
        )
        .unwrap();
        p.id
    }

    #[test]
    fn a_session_ends_with_its_user_and_its_lifetimes() {
        let c = test_conn();
        let pid = with_user(&c);
        start_session(&c, (pid, "u1"), "cookie", "csrf", "-", 100).unwrap();
        let s = find_session(&c, "cookie", 200, LIMITS).unwrap().unwrap();
        assert_eq!((s.user_name.as_str(), s.provider.as_str()), ("ann", "p"));
        assert!(find_session(&c, "other", 200, LIMITS).unwrap().is_none());
        assert!(
            find_session(&c, "cookie", 100 + 1801, LIMITS)
                .unwrap()
                .is_none()
        );
        // Gone for good once found expired; a deactivated user's session ends too.
        start_session(&c, (pid, "u1"), "again", "csrf", "-", 100).unwrap();
        c.execute(
            "UPDATE resources SET doc = '{\"active\":false}' WHERE id = 'u1'",
            [],
        )
        .unwrap();
        assert!(find_session(&c, "again", 200, LIMITS).unwrap().is_none());
        let left: i64 = c
            .query_row("SELECT count(*) FROM user_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_user_has_a_bounded_number_of_application_passwords() {
        let c = test_conn();
        let pid = with_user(&c);
        let add = |id: &str| {
            add_app_password(
                &c,
                &NewAppPassword {
                    id,
                    provider_id: pid,
                    owner: "u1",
                    hash: "$argon2id$x",
                    fingerprint: "f",
                    description: "grafana",
                    created: 10,
                    expires: 1000,
                },
                2,
            )
        };
        assert_eq!(add("a1").unwrap().owner.as_deref(), Some("u1"));
        add("a2").unwrap();
        assert!(matches!(add("a3"), Err(Error::Conflict(_))));
        credentials::revoke(&c, CredentialKind::AppPassword, "a1", 20).unwrap();
        add("a3").unwrap();
        assert_eq!(app_passwords(&c, Some(pid), Some("u1")).unwrap().len(), 3);
        assert!(app_passwords(&c, None, Some("u2")).unwrap().is_empty());
        let (found, hash, fingerprint) = app_password_for_bind(&c, "a2").unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), hash.as_str(), fingerprint.as_deref()),
            ("a2", "$argon2id$x", Some("f"))
        );
    }
}
