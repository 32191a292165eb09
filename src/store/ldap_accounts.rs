//! LDAP service accounts (credentials of kind `LdapAccount`, see `credentials`: applications
//! bind to the directory with them, each reading one identity provider's tree), the users that
//! bind with their own passwords, and a provider's LDAP settings and traffic.

use crate::scim::ResourceKind;
use crate::scim::posix::Posix;
use crate::scim::schema::active_json_path;
use rusqlite::{Connection, OptionalExtension, params};

use super::credentials::{self, COLUMNS, Credential, CredentialKind, FROM, NewCredential};
use super::{Error, Result, providers};
use crate::auth::TokenState;

/// A service account (a `Credential` of kind `LdapAccount`; `name` is its bind name).
pub(crate) type Account = Credential;

/// Account names appear in bind DNs (`cn=NAME,ou=services,...`): letters, digits, `-`, `_`, `.`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid account name {}: use 1 to 64 letters, digits, '-', '_' or '.'",
            super::quoted_name(name)
        ))
    }
}

pub(crate) struct NewAccount<'a> {
    pub(crate) id: &'a str,
    pub(crate) provider: &'a str,
    pub(crate) name: &'a str,
    pub(crate) secret_hash: &'a str,
    pub(crate) fingerprint: Option<&'a str>,
    pub(crate) created: i64,
    pub(crate) expires: i64,
}

pub(crate) fn add(c: &Connection, a: &NewAccount<'_>) -> Result<Account> {
    check_name(a.name).map_err(Error::Invalid)?;
    let p = providers::require(c, a.provider)?;
    let added = credentials::insert(
        c,
        &NewCredential {
            id: a.id,
            kind: CredentialKind::LdapAccount,
            provider_id: p.id,
            name: Some(a.name),
            secret_hash: a.secret_hash,
            fingerprint: a.fingerprint,
            owner: None,
            description: "",
            read_only: true,
            created: a.created,
            expires: a.expires,
        },
    )?;
    if !added {
        return Err(Error::Conflict(format!(
            "identity provider {} already has an LDAP account {}; revoke it first",
            p.name, a.name
        )));
    }
    require(c, a.id)
}

pub(crate) fn list(c: &Connection, provider_id: Option<i64>) -> Result<Vec<Account>> {
    credentials::list(c, Some(CredentialKind::LdapAccount), provider_id)
}

pub(crate) fn require(c: &Connection, id: &str) -> Result<Account> {
    credentials::require(c, CredentialKind::LdapAccount, id)
}

/// The account a bind names, with its secret's hash and fingerprint: by provider name and
/// account name.
/// A service account as a bind checks it: the account, its secret's argon2 hash and its
/// fingerprint (accounts made before fingerprints have none).
pub(crate) type AccountForBind = (Account, String, Option<String>);

/// The statement `for_bind` runs (made once: every bind runs it, from the statement cache).
static FOR_BIND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, k.secret_hash, k.fingerprint FROM {FROM}
             WHERE p.name = ?1 COLLATE NOCASE AND k.kind = 'ldap' AND k.name = ?2
               AND k.revoked IS NULL
             ORDER BY k.created DESC LIMIT 1"
    )
});

pub(crate) fn for_bind(
    c: &Connection,
    provider: &str,
    name: &str,
) -> Result<Option<AccountForBind>> {
    Ok(c.prepare_cached(&FOR_BIND)?
        .query_row(params![provider, name], |r| {
            Ok((credentials::from_row(r)?, r.get(13)?, r.get(14)?))
        })
        .optional()?)
}

/// A user that binds with its own password (the one its identity provider sent over SCIM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindingUser {
    pub(crate) seq: i64,
    /// Its SCIM id (what owns its application passwords).
    pub(crate) id: String,
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    pub(crate) user_name: String,
    pub(crate) password_hash: Option<String>,
    pub(crate) active: bool,
}

pub(crate) fn user_for_bind(
    c: &Connection,
    provider: &str,
    user_name: &str,
) -> Result<Option<BindingUser>> {
    Ok(c.prepare_cached(concat!(
        "SELECT r.seq, p.id, p.name, r.name, r.password_hash,
                    coalesce(json_extract(r.doc, '",
        active_json_path!(),
        "'), 1), r.id
             FROM resources r JOIN providers p ON p.id = r.provider_id
             WHERE p.name = ?1 COLLATE NOCASE AND r.kind = 'User' AND r.name_key = ?2"
    ))?
    .query_row(params![provider, crate::scim::fold(user_name)], |r| {
        Ok(BindingUser {
            seq: r.get(0)?,
            provider_id: r.get(1)?,
            provider: r.get(2)?,
            user_name: r.get(3)?,
            password_hash: r.get(4)?,
            active: r.get::<_, i64>(5)? != 0,
            id: r.get(6)?,
        })
    })
    .optional()?)
}

/// Whether a bound LDAP identity may still read, checked before each search (a revoked or
/// expired account, a deleted or deactivated user, a user whose password the identity
/// provider changed, all stop at once, as SCIM tokens do); with the provider's schema model
/// version, which the search needs anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// May read; the provider's schema model and LDAP settings are at these versions.
    Valid {
        model_version: i64,
        ldap_version: i64,
    },
    Gone(&'static str),
}

/// A service account's standing at `now` (unix seconds).
pub(crate) fn account_standing(c: &Connection, id: &str, now: i64) -> Result<Standing> {
    let found = c
        .prepare_cached(
            "SELECT a.expires, a.revoked, p.model_version, p.ldap_version FROM credentials a
             JOIN providers p ON p.id = a.provider_id WHERE a.id = ?1 AND a.kind = 'ldap'",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .optional()?;
    Ok(match found {
        None => Standing::Gone("the service account no longer exists"),
        Some((expires, revoked, model_version, ldap_version)) => {
            match crate::auth::token::state(expires, revoked, now) {
                TokenState::Active => Standing::Valid {
                    model_version,
                    ldap_version,
                },
                TokenState::Revoked => Standing::Gone("the service account was revoked"),
                TokenState::Expired => Standing::Gone("the service account has expired"),
            }
        }
    })
}

/// The standing of a user bound with the password whose hash is `password_hash`.
pub(crate) fn user_standing(c: &Connection, seq: i64, password_hash: &str) -> Result<Standing> {
    let found = c
        .prepare_cached(concat!(
            "SELECT r.password_hash, coalesce(json_extract(r.doc, '",
            active_json_path!(),
            "'), 1), p.model_version, p.ldap_version
             FROM resources r JOIN providers p ON p.id = r.provider_id WHERE r.seq = ?1"
        ))?
        .query_row([seq], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, i64>(1)? != 0,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .optional()?;
    Ok(match found {
        None => Standing::Gone("the user no longer exists"),
        Some((_, false, _, _)) => Standing::Gone("the user was deactivated"),
        Some((hash, true, _, _)) if hash.as_deref() != Some(password_hash) => {
            Standing::Gone("the user's password was changed")
        }
        Some((_, true, model_version, ldap_version)) => Standing::Valid {
            model_version,
            ldap_version,
        },
    })
}

pub(crate) fn revoke(c: &Connection, id: &str, now: i64) -> Result<Account> {
    credentials::revoke(c, CredentialKind::LdapAccount, id, now)
}

/// Adds counts of one interval: (provider id, account, binds, failed binds, searches, last
/// unix ms).
pub(crate) fn add_traffic(
    c: &Connection,
    counted: &[(i64, String, u64, u64, u64, i64)],
) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO ldap_traffic (provider_id, account, hour, binds, failed_binds, searches, last_at)
         SELECT id, ?2, ?6 / 3600000, ?3, ?4, ?5, ?6 FROM providers WHERE id = ?1
         ON CONFLICT DO UPDATE SET binds = binds + excluded.binds,
                                   failed_binds = failed_binds + excluded.failed_binds,
                                   searches = searches + excluded.searches,
                                   last_at = max(last_at, excluded.last_at)",
    )?;
    for (pid, account, binds, failed, searches, last) in counted {
        st.execute(params![
            pid,
            account,
            *binds as i64,
            *failed as i64,
            *searches as i64,
            last
        ])?;
    }
    Ok(())
}

/// One account's LDAP use over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub(crate) account: String,
    pub(crate) binds: i64,
    pub(crate) failed_binds: i64,
    pub(crate) searches: i64,
    /// Unix milliseconds.
    pub(crate) last: i64,
}

/// Binds, failed binds and searches per account of a provider in the 24 hours before
/// `now_ms`, with the last time each was seen; busiest first.
pub(crate) fn traffic(c: &Connection, provider_id: i64, now_ms: i64) -> Result<Vec<Traffic>> {
    let mut st = c.prepare(
        "SELECT account, sum(binds), sum(failed_binds), sum(searches), max(last_at)
         FROM ldap_traffic WHERE provider_id = ?1 AND hour >= ?2 / 3600000 - 23
         GROUP BY account ORDER BY sum(binds) + sum(searches) DESC, account",
    )?;
    let rows = st.query_map(params![provider_id, now_ms], |r| {
        Ok(Traffic {
            account: r.get(0)?,
            binds: r.get(1)?,
            failed_binds: r.get(2)?,
            searches: r.get(3)?,
            last: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The base DNs providers chose for their trees: (provider name, base DN).
pub(crate) fn custom_bases(c: &Connection) -> Result<Vec<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT p.name, s.base_dn FROM ldap_settings s JOIN providers p ON p.id = s.provider_id",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The base DN a provider chose, if any.
pub(crate) fn base_of(c: &Connection, provider_id: i64) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT base_dn FROM ldap_settings WHERE provider_id = ?1",
        [provider_id],
        |r| r.get(0),
    )
    .optional()?)
}

/// Sets (or with `None` removes) a provider's base DN; another provider's tree — its own base
/// DN, or else its default `dc=NAME,dc=scimd` — may not hold it or be held by it (a base of
/// `dc=b,dc=scimd` for provider `a` would take provider `b`'s tree from under its accounts).
pub(crate) fn set_base(c: &Connection, provider: &str, base: Option<&str>) -> Result<()> {
    let p = providers::require(c, provider)?;
    match base {
        None => {
            c.execute("DELETE FROM ldap_settings WHERE provider_id = ?1", [p.id])?;
        }
        Some(b) => {
            let mine = comparable_dn(b);
            let custom = custom_bases(c)?;
            for other in providers::list(c)? {
                if other.id == p.id {
                    continue;
                }
                let theirs = custom
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&other.name))
                    .map(|(_, base)| base.clone())
                    .unwrap_or_else(|| format!("dc={},dc=scimd", other.name.to_ascii_lowercase()));
                let t = comparable_dn(&theirs);
                if mine == t || mine.ends_with(&format!(",{t}")) || t.ends_with(&format!(",{mine}"))
                {
                    return Err(Error::Conflict(format!(
                        "{b} overlaps the tree of identity provider {} ({theirs})",
                        other.name
                    )));
                }
            }
            c.execute(
                "INSERT INTO ldap_settings (provider_id, base_dn) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET base_dn = excluded.base_dn",
                params![p.id, b],
            )?;
        }
    }
    Ok(())
}

/// A DN in a form two spellings of it share: lower case, no spaces around `,` and `=`.
fn comparable_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase()
}

/// A provider's POSIX identities, if it has them.
pub(crate) fn posix(c: &Connection, provider_id: i64) -> Result<Option<Posix>> {
    Ok(c.prepare_cached(
        "SELECT first_id, last_id, home, shell, primary_gid FROM posix_settings
             WHERE provider_id = ?1",
    )?
    .query_row([provider_id], |r| {
        Ok(Posix {
            first_id: r.get(0)?,
            last_id: r.get(1)?,
            home: r.get(2)?,
            shell: r.get(3)?,
            primary_gid: r.get(4)?,
        })
    })
    .optional()?)
}

/// Marks a provider's LDAP settings (mappings, POSIX) changed, for `AppState::ldap_settings`.
fn bump(c: &Connection, provider_id: i64) -> Result<()> {
    c.prepare_cached("UPDATE providers SET ldap_version = ldap_version + 1 WHERE id = ?1")?
        .execute([provider_id])?;
    Ok(())
}

/// Gives a provider POSIX identities (checked here), or with `None` takes them away.
pub(crate) fn set_posix(c: &Connection, provider: &str, posix: Option<&Posix>) -> Result<()> {
    let p = providers::require(c, provider)?;
    bump(c, p.id)?;
    match posix {
        None => {
            c.execute("DELETE FROM posix_settings WHERE provider_id = ?1", [p.id])?;
        }
        Some(x) => {
            x.check().map_err(Error::Invalid)?;
            c.execute(
                "INSERT INTO posix_settings (provider_id, first_id, last_id, home, shell, primary_gid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET first_id = excluded.first_id,
                   last_id = excluded.last_id, home = excluded.home, shell = excluded.shell,
                   primary_gid = excluded.primary_gid",
                params![p.id, x.first_id, x.last_id, x.home, x.shell, x.primary_gid],
            )?;
        }
    }
    Ok(())
}

/// A provider's own attributes: (entries of this type, LDAP attribute, SCIM attribute path),
/// users first, by name.
pub(crate) fn mappings(
    c: &Connection,
    provider_id: i64,
) -> Result<Vec<(ResourceKind, String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT kind, ldap_attr, scim_path FROM ldap_mappings WHERE provider_id = ?1
         ORDER BY kind DESC, ldap_attr",
    )?;
    let rows = st.query_map([provider_id], |r| {
        let kind = match r.get::<_, String>(0)?.as_str() {
            "Group" => ResourceKind::Group,
            _ => ResourceKind::User,
        };
        Ok((kind, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Maps an LDAP attribute of the provider's entries of `kind` to a SCIM attribute path
/// (checked by the caller); replaces an earlier mapping of the same name.
pub(crate) fn set_mapping(
    c: &Connection,
    provider: &str,
    kind: ResourceKind,
    ldap_attr: &str,
    scim_path: &str,
) -> Result<()> {
    let p = providers::require(c, provider)?;
    bump(c, p.id)?;
    c.execute(
        "INSERT INTO ldap_mappings (provider_id, kind, ldap_attr, scim_path)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO UPDATE SET scim_path = excluded.scim_path",
        params![p.id, kind.name(), ldap_attr, scim_path],
    )?;
    Ok(())
}

pub(crate) fn remove_mapping(
    c: &Connection,
    provider: &str,
    kind: ResourceKind,
    ldap_attr: &str,
) -> Result<()> {
    let p = providers::require(c, provider)?;
    bump(c, p.id)?;
    let n = c.execute(
        "DELETE FROM ldap_mappings WHERE provider_id = ?1 AND kind = ?2 AND ldap_attr = ?3",
        params![p.id, kind.name(), ldap_attr],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!(
            "identity provider {} maps no LDAP attribute {ldap_attr} of {}",
            p.name,
            kind.endpoint()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;

    fn new<'a>(id: &'a str, name: &'a str) -> NewAccount<'a> {
        NewAccount {
            id,
            provider: "p",
            name,
            secret_hash: "$argon2id$x",
            fingerprint: None,
            created: 10,
            expires: 1000,
        }
    }

    #[test]
    fn accounts_are_found_for_binds_until_revoked() {
        let c = crate::store::test_conn();
        providers::insert(&c, "p", "", ProviderKind::Generic, 1).unwrap();
        let a = add(&c, &new("a1", "grafana")).unwrap();
        assert_eq!(a.provider, "p");
        assert!(matches!(
            add(&c, &new("a2", "grafana")),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            add(&c, &new("a3", "bad name")),
            Err(Error::Invalid(_))
        ));
        let (found, hash, _) = for_bind(&c, "P", "grafana").unwrap().unwrap();
        assert_eq!((found.id.as_str(), hash.as_str()), ("a1", "$argon2id$x"));
        assert!(for_bind(&c, "p", "gitlab").unwrap().is_none());
        revoke(&c, "a1", 20).unwrap();
        assert!(for_bind(&c, "p", "grafana").unwrap().is_none());
        assert_eq!(list(&c, None).unwrap()[0].revoked, Some(20));
        assert_eq!(list(&c, None).unwrap()[0].state(30), TokenState::Revoked);
        // A revoked account frees its name.
        add(&c, &new("a4", "grafana")).unwrap();
    }
}
