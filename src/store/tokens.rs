//! The `tokens` table: argon2id-hashed bearer tokens with expiry, revocation and rotation.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Error, Result};
use crate::auth::TokenState;
use crate::auth::token;
use crate::scim::ProviderKind;

/// A token as listed to operators: never the secret, not even its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub(crate) provider: String,
    pub description: String,
    pub read_only: bool,
    pub(crate) created: i64,
    pub expires: i64,
    pub(crate) revoked: Option<i64>,
    pub(crate) last_used: Option<i64>,
    pub replaced_by: Option<String>,
}

impl TokenInfo {
    pub(crate) fn state(&self, now: i64) -> TokenState {
        token::state(self.expires, self.revoked, now)
    }

    pub(crate) fn scope(&self) -> &'static str {
        if self.read_only {
            "read-only"
        } else {
            "read-write"
        }
    }
}

/// What the server needs to authenticate a request made with a token.
#[derive(Debug, Clone)]
pub(crate) struct AuthRecord {
    pub(crate) provider_id: i64,
    pub(crate) provider_name: String,
    pub(crate) provider_kind: ProviderKind,
    pub(crate) secret_hash: String,
    pub(crate) read_only: bool,
    pub(crate) expires: i64,
    pub(crate) revoked: Option<i64>,
    pub(crate) last_used: Option<i64>,
    /// The provider's `model_version` (its extension schemas and unknown-attribute policy).
    pub(crate) model_version: i64,
    /// The provider's `activity_values` setting.
    pub(crate) activity_values: bool,
}

/// A token row to insert; `secret_hash` is already the argon2id PHC string.
pub struct NewTokenRow<'a> {
    pub id: &'a str,
    pub provider_id: i64,
    pub secret_hash: &'a str,
    pub description: &'a str,
    pub read_only: bool,
    pub created: i64,
    pub expires: i64,
}

const INFO_COLUMNS: &str = "t.id, p.name, t.description, t.read_only, t.created, t.expires, \
                            t.revoked, t.last_used, t.replaced_by";

fn info_from_row(r: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        provider: r.get(1)?,
        description: r.get(2)?,
        read_only: r.get(3)?,
        created: r.get(4)?,
        expires: r.get(5)?,
        revoked: r.get(6)?,
        last_used: r.get(7)?,
        replaced_by: r.get(8)?,
    })
}

pub(crate) fn insert(c: &Connection, t: &NewTokenRow<'_>) -> Result<()> {
    super::check_description(t.description).map_err(Error::Invalid)?;
    c.execute(
        "INSERT INTO tokens (id, provider_id, secret_hash, description, read_only, created, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.id,
            t.provider_id,
            t.secret_hash,
            t.description,
            t.read_only,
            t.created,
            t.expires
        ],
    )?;
    Ok(())
}

/// Every token, or those of one provider, newest first.
pub fn list(c: &Connection, provider_id: Option<i64>) -> Result<Vec<TokenInfo>> {
    let mut st = c.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM tokens t JOIN providers p ON p.id = t.provider_id
         WHERE ?1 IS NULL OR t.provider_id = ?1
         ORDER BY t.created DESC, t.id"
    ))?;
    let rows = st.query_map([provider_id], info_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get(c: &Connection, id: &str) -> Result<Option<TokenInfo>> {
    Ok(c.query_row(
        &format!(
            "SELECT {INFO_COLUMNS} FROM tokens t JOIN providers p ON p.id = t.provider_id
             WHERE t.id = ?1"
        ),
        [id],
        info_from_row,
    )
    .optional()?)
}

pub(crate) fn require(c: &Connection, id: &str) -> Result<TokenInfo> {
    get(c, id)?.ok_or_else(|| Error::NotFound(format!("no token with id {id:?}")))
}

pub(crate) fn auth_record(c: &Connection, id: &str) -> Result<Option<AuthRecord>> {
    let row = c
        .prepare_cached(
            "SELECT t.provider_id, p.name, p.kind, t.secret_hash, t.read_only, t.expires,
                    t.revoked, t.last_used, p.model_version, p.activity_values
             FROM tokens t JOIN providers p ON p.id = t.provider_id WHERE t.id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, bool>(9)?,
            ))
        })
        .optional()?;
    let Some((
        provider_id,
        provider_name,
        kind,
        secret_hash,
        read_only,
        expires,
        revoked,
        used,
        model_version,
        activity_values,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(AuthRecord {
        provider_id,
        provider_name,
        provider_kind: kind.parse().map_err(Error::Invalid)?,
        secret_hash,
        read_only,
        expires,
        revoked,
        last_used: used,
        model_version,
        activity_values,
    }))
}

/// Marks a token revoked; it stops working on the very next request.
pub(crate) fn revoke(c: &Connection, id: &str, now: i64) -> Result<TokenInfo> {
    let t = require(c, id)?;
    if t.revoked.is_some() {
        return Err(Error::Conflict(format!("token {id} is already revoked")));
    }
    c.execute(
        "UPDATE tokens SET revoked = ?1 WHERE id = ?2",
        params![now, id],
    )?;
    require(c, id)
}

pub(crate) fn record_use(c: &Connection, id: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE tokens SET last_used = ?1 WHERE id = ?2 AND (last_used IS NULL OR last_used < ?1)",
        params![now, id],
    )?;
    Ok(())
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
        "UPDATE tokens SET expires = min(expires, ?1), replaced_by = ?2 WHERE id = ?3",
        params![old_expires, new.id, old_id],
    )?;
    Ok((require(c, new.id)?, require(c, old_id)?))
}

/// Deletes tokens that expired or were revoked before `cutoff`; returns how many.
pub(crate) fn delete_stale(c: &Connection, cutoff: i64) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM tokens WHERE expires < ?1 OR revoked < ?1",
        [cutoff],
    )?)
}

/// Active tokens whose expiry falls in `[now, until)`, soonest first.
pub(crate) fn expiring(c: &Connection, now: i64, until: i64) -> Result<Vec<TokenInfo>> {
    let mut st = c.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM tokens t JOIN providers p ON p.id = t.provider_id
         WHERE t.revoked IS NULL AND t.expires >= ?1 AND t.expires < ?2
         ORDER BY t.expires"
    ))?;
    let rows = st.query_map([now, until], info_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{providers, test_conn};

    fn row(id: &str, provider_id: i64, created: i64, expires: i64) -> NewTokenRow<'_> {
        NewTokenRow {
            id,
            provider_id,
            secret_hash: "$argon2id$x",
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

        let soon = expiring(&c, 400, 600).unwrap();
        assert_eq!(
            soon.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );

        // Revoked at 10 and expired at 500: both go once the cutoff passes them.
        assert_eq!(delete_stale(&c, 11).unwrap(), 1);
        assert_eq!(delete_stale(&c, 501).unwrap(), 1);
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
