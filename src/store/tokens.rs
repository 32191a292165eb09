//! SCIM bearer tokens: the credentials of kind `Token` (see `credentials`), with what only
//! tokens do: the record a request is authenticated with, and rotation.

use rusqlite::{Connection, OptionalExtension, params};

use super::credentials::{self, Credential, CredentialKind, NewCredential};
use super::{Error, Result};
use crate::scim::ProviderKind;

/// A token as listed to operators (a `Credential` of kind `Token`).
pub(crate) type TokenInfo = Credential;

/// What the server needs to authenticate a request made with a token.
#[derive(Debug, Clone)]
pub(crate) struct AuthRecord {
    pub(crate) provider_id: i64,
    pub(crate) provider_name: String,
    pub(crate) provider_kind: ProviderKind,
    pub(crate) secret_hash: String,
    pub(crate) fingerprint: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) expires: i64,
    pub(crate) revoked: Option<i64>,
    pub(crate) last_used: Option<i64>,
    /// The provider's `model_version` (its extension schemas and unknown-attribute policy).
    pub(crate) model_version: i64,
    /// The provider's `activity_values` setting.
    pub(crate) activity_values: bool,
    /// The provider's `scim_passwords` setting.
    pub(crate) scim_passwords: crate::scim::ScimPasswords,
}

/// A token row to insert; `secret_hash` is already the argon2id PHC string.
pub struct NewTokenRow<'a> {
    pub id: &'a str,
    pub provider_id: i64,
    pub secret_hash: &'a str,
    pub fingerprint: Option<&'a str>,
    pub description: &'a str,
    pub read_only: bool,
    pub created: i64,
    pub expires: i64,
}

pub(crate) fn insert(c: &Connection, t: &NewTokenRow<'_>) -> Result<()> {
    credentials::insert(
        c,
        &NewCredential {
            id: t.id,
            kind: CredentialKind::Token,
            provider_id: t.provider_id,
            name: None,
            secret_hash: t.secret_hash,
            fingerprint: t.fingerprint,
            owner: None,
            description: t.description,
            read_only: t.read_only,
            created: t.created,
            expires: t.expires,
        },
    )?;
    Ok(())
}

/// Every token, or those of one provider, newest first.
pub fn list(c: &Connection, provider_id: Option<i64>) -> Result<Vec<TokenInfo>> {
    credentials::list(c, Some(CredentialKind::Token), provider_id)
}

pub(crate) fn require(c: &Connection, id: &str) -> Result<TokenInfo> {
    credentials::require(c, CredentialKind::Token, id)
}

pub(crate) fn auth_record(c: &Connection, id: &str) -> Result<Option<AuthRecord>> {
    let row = c
        .prepare_cached(
            "SELECT t.provider_id, p.name, p.kind, t.secret_hash, t.read_only, t.expires,
                    t.revoked, t.last_used, p.model_version, p.activity_values, p.scim_passwords,
                    t.fingerprint
             FROM credentials t JOIN providers p ON p.id = t.provider_id
             WHERE t.id = ?1 AND t.kind = 'scim'",
        )?
        .query_row([id], |r| {
            let record = AuthRecord {
                provider_id: r.get(0)?,
                provider_name: r.get(1)?,
                provider_kind: ProviderKind::Generic,
                secret_hash: r.get(3)?,
                read_only: r.get(4)?,
                expires: r.get(5)?,
                revoked: r.get(6)?,
                last_used: r.get(7)?,
                model_version: r.get(8)?,
                activity_values: r.get(9)?,
                scim_passwords: crate::scim::ScimPasswords::default(),
                fingerprint: r.get(11)?,
            };
            Ok((record, r.get::<_, String>(2)?, r.get::<_, String>(10)?))
        })
        .optional()?;
    let Some((mut record, kind, passwords)) = row else {
        return Ok(None);
    };
    record.provider_kind = kind.parse().map_err(Error::Invalid)?;
    record.scim_passwords = passwords.parse().map_err(Error::Invalid)?;
    Ok(Some(record))
}

/// Marks a token revoked; it stops working on the very next request.
pub(crate) fn revoke(c: &Connection, id: &str, now: i64) -> Result<TokenInfo> {
    credentials::revoke(c, CredentialKind::Token, id, now)
}

pub(crate) fn record_use(c: &Connection, id: &str, now: i64) -> Result<()> {
    credentials::record_use(c, id, now)
}

/// Stores a new token (its secret already hashed) and returns it as listed. Runs on the writer.
pub fn create(c: &Connection, t: &NewTokenRow<'_>) -> Result<TokenInfo> {
    insert(c, t)?;
    require(c, t.id)
}

/// Inserts `new` as the replacement of `old_id`, and shortens the old token's life to
/// `old_expires` (never lengthens it). Returns the new token and the old one as they are now.
/// Runs on the writer.
pub(crate) fn rotate(
    c: &Connection,
    old_id: &str,
    new: &NewTokenRow<'_>,
    old_expires: i64,
) -> Result<(TokenInfo, TokenInfo)> {
    insert(c, new)?;
    c.execute(
        "UPDATE credentials SET expires = min(expires, ?1), replaced_by = ?2 WHERE id = ?3",
        params![old_expires, new.id, old_id],
    )?;
    Ok((require(c, new.id)?, require(c, old_id)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenState;
    use crate::store::{providers, test_conn};

    fn row(id: &str, provider_id: i64, created: i64, expires: i64) -> NewTokenRow<'_> {
        NewTokenRow {
            id,
            provider_id,
            secret_hash: "$argon2id$x",
            fingerprint: None,
            description: "",
            read_only: false,
            created,
            expires,
        }
    }

    #[test]
    fn revoke_rotate_and_cleanup() {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        insert(&c, &row("a", p.id, 0, 1000)).unwrap();
        insert(&c, &row("b", p.id, 0, 1000)).unwrap();
        assert_eq!(revoke(&c, "a", 10).unwrap().state(11), TokenState::Revoked);
        assert!(matches!(revoke(&c, "a", 12), Err(Error::Conflict(_))));
        assert!(matches!(revoke(&c, "zz", 12), Err(Error::NotFound(_))));

        rotate(&c, "b", &row("c", p.id, 20, 2000), 500).unwrap();
        let b = require(&c, "b").unwrap();
        assert_eq!((b.expires, b.replaced_by.as_deref()), (500, Some("c")));
        // An overlap longer than the remaining life never extends it.
        rotate(&c, "c", &row("d", p.id, 30, 3000), 9999).unwrap();
        assert_eq!(require(&c, "c").unwrap().expires, 2000);

        // Tokens rotated out (b, c) stop when their overlap ends, as planned: nothing to warn
        // of; the current one (d) is warned of.
        assert!(credentials::expiring(&c, 400, 600).unwrap().is_empty());
        let soon = credentials::expiring(&c, 2900, 3100).unwrap();
        assert_eq!(
            soon.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["d"]
        );

        // Revoked at 10 and expired at 500: both go once the cutoff passes them.
        let purged = |cutoff| credentials::delete_stale(&c, cutoff).unwrap();
        assert_eq!(purged(11), [(CredentialKind::Token, 1)]);
        assert_eq!(purged(501), [(CredentialKind::Token, 1)]);
        let left: Vec<_> = list(&c, None).unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(left, ["d", "c"]);
    }

    #[test]
    fn auth_record_joins_the_provider() {
        let c = test_conn();
        let p = providers::insert(&c, "entra1", "", ProviderKind::Entra, 0).unwrap();
        insert(&c, &row("a", p.id, 0, 1000)).unwrap();
        let r = auth_record(&c, "a").unwrap().unwrap();
        assert_eq!(
            (r.provider_name.as_str(), r.provider_kind),
            ("entra1", ProviderKind::Entra)
        );
        assert!(auth_record(&c, "nope").unwrap().is_none());
        record_use(&c, "a", 50).unwrap();
        record_use(&c, "a", 40).unwrap();
        assert_eq!(require(&c, "a").unwrap().last_used, Some(50));
    }
}
