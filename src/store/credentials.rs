//! The `credentials` table: every secret a client presents to scimd (SCIM bearer tokens, LDAP
//! service accounts), one row shape with one life: an argon2id hash only, created, expires,
//! revoked, last used, replaced by. Listing, revocation, expiry warnings and purging are written
//! here once for every kind; `tokens` and `ldap_accounts` hold only what one kind does alone
//! (a token's authentication record and rotation, an account's bind lookup).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Error, Result};
use crate::auth::TokenState;

/// What a credential opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialKind {
    /// A SCIM bearer token (an identity provider writes with it).
    Token,
    /// An LDAP service account (an application binds and reads with it).
    LdapAccount,
    /// A user's application password (an application binds as that user with it).
    AppPassword,
}

impl CredentialKind {
    pub(crate) const ALL: [CredentialKind; 3] = [
        CredentialKind::Token,
        CredentialKind::LdapAccount,
        CredentialKind::AppPassword,
    ];

    /// As stored in the `kind` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Token => "scim",
            CredentialKind::LdapAccount => "ldap",
            CredentialKind::AppPassword => "app",
        }
    }

    fn parse(s: &str) -> Option<CredentialKind> {
        CredentialKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How operators call one: "token", "LDAP service account".
    pub(crate) fn noun(self) -> &'static str {
        match self {
            CredentialKind::Token => "token",
            CredentialKind::LdapAccount => "LDAP service account",
            CredentialKind::AppPassword => "application password",
        }
    }

    /// The plural, for counts.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            CredentialKind::Token => "tokens",
            CredentialKind::LdapAccount => "LDAP service accounts",
            CredentialKind::AppPassword => "application passwords",
        }
    }
}

/// The description of the token `scimd quickstart` makes: a trial's, valid for a day, which
/// expiry warnings leave alone (quickstart says when it expires as it prints it).
pub(crate) const TRIAL_TOKEN: &str = "quickstart";

/// A credential as listed to operators: never the secret, not even its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub kind: CredentialKind,
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    /// A service account's bind name; empty for tokens.
    pub(crate) name: String,
    pub description: String,
    pub read_only: bool,
    pub(crate) created: i64,
    pub expires: i64,
    pub(crate) revoked: Option<i64>,
    pub(crate) last_used: Option<i64>,
    /// The token a rotation made to replace this one.
    pub replaced_by: Option<String>,
    /// An application password's user (its SCIM id).
    pub(crate) owner: Option<String>,
}

impl Credential {
    pub(crate) fn state(&self, now: i64) -> TokenState {
        crate::auth::token::state(self.expires, self.revoked, now)
    }

    pub(crate) fn scope(&self) -> &'static str {
        if self.read_only {
            "read-only"
        } else {
            "read-write"
        }
    }
}

/// Columns `from_row` reads, over `FROM`.
pub(crate) const COLUMNS: &str = "k.id, k.kind, k.provider_id, p.name, coalesce(k.name, ''), \
     k.description, k.read_only, k.created, k.expires, k.revoked, k.last_used, k.replaced_by, k.owner";
/// The credential (`k`) with its provider (`p`).
pub(crate) const FROM: &str = "credentials k JOIN providers p ON p.id = k.provider_id";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Credential> {
    let kind: String = r.get(1)?;
    Ok(Credential {
        id: r.get(0)?,
        kind: CredentialKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown credential kind {kind:?}").into(),
            )
        })?,
        provider_id: r.get(2)?,
        provider: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        read_only: r.get(6)?,
        created: r.get(7)?,
        expires: r.get(8)?,
        revoked: r.get(9)?,
        last_used: r.get(10)?,
        replaced_by: r.get(11)?,
        owner: r.get(12)?,
    })
}

/// A credential row to insert; `secret_hash` is already the argon2id PHC string.
pub(crate) struct NewCredential<'a> {
    pub(crate) id: &'a str,
    pub(crate) kind: CredentialKind,
    pub(crate) provider_id: i64,
    /// Unique among the provider's live credentials of this kind.
    pub(crate) name: Option<&'a str>,
    pub(crate) secret_hash: &'a str,
    /// `token::fingerprint` of the secret (`None` only in tests of older rows).
    pub(crate) fingerprint: Option<&'a str>,
    pub(crate) description: &'a str,
    pub(crate) read_only: bool,
    pub(crate) created: i64,
    pub(crate) expires: i64,
    /// An application password's user.
    pub(crate) owner: Option<&'a str>,
}

/// Inserts a credential; `false` when its name is taken by a live one of the same kind.
pub(crate) fn insert(c: &Connection, n: &NewCredential<'_>) -> Result<bool> {
    super::check_description(n.description).map_err(Error::Invalid)?;
    let done = c.execute(
        "INSERT INTO credentials (id, kind, provider_id, name, secret_hash, description,
                                  read_only, created, expires, fingerprint, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (provider_id, kind, name) WHERE revoked IS NULL AND name IS NOT NULL
         DO NOTHING",
        params![
            n.id,
            n.kind.as_str(),
            n.provider_id,
            n.name,
            n.secret_hash,
            n.description,
            n.read_only,
            n.created,
            n.expires,
            n.fingerprint,
            n.owner
        ],
    )?;
    Ok(done == 1)
}

/// One credential of a kind.
pub(crate) fn get(c: &Connection, kind: CredentialKind, id: &str) -> Result<Option<Credential>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE k.id = ?1 AND k.kind = ?2"),
        params![id, kind.as_str()],
        from_row,
    )
    .optional()?)
}

/// One credential of a kind, or `NotFound` saying where to look.
pub(crate) fn require(c: &Connection, kind: CredentialKind, id: &str) -> Result<Credential> {
    get(c, kind, id)?.ok_or_else(|| {
        Error::NotFound(match kind {
            CredentialKind::Token => format!("no token with id {id:?}"),
            CredentialKind::LdapAccount => {
                format!("no LDAP account {id}: see `scimd ldap account list`")
            }
            CredentialKind::AppPassword => {
                format!("no application password {id}: see `scimd app-password list`")
            }
        })
    })
}

/// The credentials of one kind (or of all), of every provider or of one: tokens newest
/// first, service accounts by provider and name.
pub(crate) fn list(
    c: &Connection,
    kind: Option<CredentialKind>,
    provider_id: Option<i64>,
) -> Result<Vec<Credential>> {
    let order = match kind {
        Some(CredentialKind::LdapAccount) => "p.name, k.name, k.created",
        _ => "k.kind DESC, k.created DESC, k.id",
    };
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM {FROM}
         WHERE (?1 IS NULL OR k.kind = ?1) AND (?2 IS NULL OR k.provider_id = ?2)
         ORDER BY {order}"
    ))?;
    let rows = st.query_map(
        params![kind.map(CredentialKind::as_str), provider_id],
        from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Marks a credential revoked; it stops working at once (the next request, the next search).
pub(crate) fn revoke(
    c: &Connection,
    kind: CredentialKind,
    id: &str,
    now: i64,
) -> Result<Credential> {
    let k = require(c, kind, id)?;
    if k.revoked.is_some() {
        return Err(Error::Conflict(format!(
            "{} {id} is already revoked",
            kind.noun()
        )));
    }
    c.execute(
        "UPDATE credentials SET revoked = ?1 WHERE id = ?2",
        params![now, id],
    )?;
    require(c, kind, id)
}

/// Notes a use at `now` (unix seconds); never moves the time back.
pub(crate) fn record_use(c: &Connection, id: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE credentials SET last_used = ?1
         WHERE id = ?2 AND (last_used IS NULL OR last_used < ?1)",
        params![now, id],
    )?;
    Ok(())
}

/// Deletes credentials that expired or were revoked before `cutoff` (`token_retention`);
/// returns how many of each kind, for kinds with any.
pub(crate) fn delete_stale(c: &Connection, cutoff: i64) -> Result<Vec<(CredentialKind, usize)>> {
    let mut st =
        c.prepare("DELETE FROM credentials WHERE expires < ?1 OR revoked < ?1 RETURNING kind")?;
    let kinds = st
        .query_map([cutoff], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(CredentialKind::ALL
        .into_iter()
        .map(|k| (k, kinds.iter().filter(|s| *s == k.as_str()).count()))
        .filter(|(_, n)| *n > 0)
        .collect())
}

/// Active credentials of every kind whose expiry falls in `[now, until)`, soonest first; a
/// token rotated out (it stops when its overlap ends, as planned) is not one to warn of.
pub(crate) fn expiring(c: &Connection, now: i64, until: i64) -> Result<Vec<Credential>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM {FROM}
         WHERE k.revoked IS NULL AND k.replaced_by IS NULL AND k.expires >= ?1 AND k.expires < ?2
         ORDER BY k.expires, k.id"
    ))?;
    let rows = st.query_map([now, until], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::store::{providers, test_conn};

    #[test]
    fn both_kinds_share_one_life() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        let row = |id: &'static str, kind, name: Option<&'static str>, expires| NewCredential {
            id,
            kind,
            provider_id: p.id,
            name,
            secret_hash: "$argon2id$x",
            fingerprint: None,
            owner: None,
            description: "",
            read_only: false,
            created: 0,
            expires,
        };
        assert!(insert(&c, &row("t1", CredentialKind::Token, None, 1000)).unwrap());
        assert!(insert(&c, &row("t2", CredentialKind::Token, None, 500)).unwrap());
        assert!(
            insert(
                &c,
                &row("a1", CredentialKind::LdapAccount, Some("app"), 700)
            )
            .unwrap()
        );
        // A live name is taken for its kind...
        assert!(
            !insert(
                &c,
                &row("a2", CredentialKind::LdapAccount, Some("app"), 700)
            )
            .unwrap()
        );
        // ...and a token is not an account: looked up by kind.
        assert!(
            get(&c, CredentialKind::LdapAccount, "t1")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            require(&c, CredentialKind::LdapAccount, "a1").unwrap().name,
            "app"
        );

        let soon: Vec<_> = expiring(&c, 400, 800).unwrap();
        assert_eq!(
            soon.iter()
                .map(|k| (k.id.as_str(), k.kind))
                .collect::<Vec<_>>(),
            [
                ("t2", CredentialKind::Token),
                ("a1", CredentialKind::LdapAccount)
            ]
        );
        revoke(&c, CredentialKind::LdapAccount, "a1", 10).unwrap();
        assert!(matches!(
            revoke(&c, CredentialKind::LdapAccount, "a1", 11),
            Err(Error::Conflict(_))
        ));
        // A revoked account frees its name.
        assert!(
            insert(
                &c,
                &row("a3", CredentialKind::LdapAccount, Some("app"), 900)
            )
            .unwrap()
        );
        record_use(&c, "a3", 50).unwrap();
        record_use(&c, "a3", 40).unwrap();
        assert_eq!(
            require(&c, CredentialKind::LdapAccount, "a3")
                .unwrap()
                .last_used,
            Some(50)
        );

        // Revoked at 10 (a1) and expired at 500 (t2): one purge takes both kinds.
        assert_eq!(
            delete_stale(&c, 501).unwrap(),
            [(CredentialKind::Token, 1), (CredentialKind::LdapAccount, 1)]
        );
        let left: Vec<_> = list(&c, None, Some(p.id))
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(left, ["t1", "a3"]);
    }
}
