//! The `providers` table: identity providers, each an isolated namespace of Users and Groups.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Error, Result};
use crate::scim::schema::Unknown;
use crate::scim::{ProviderKind, ScimPasswords};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub id: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) kind: ProviderKind,
    /// Unix seconds.
    pub(crate) created: i64,
    /// What requests with attributes of unregistered schemas get.
    pub(crate) unknown_attributes: Unknown,
    /// Whether activity records carry new attribute values.
    pub(crate) activity_values: bool,
    /// What its SCIM requests may do to users' passwords.
    pub(crate) scim_passwords: ScimPasswords,
}

/// How many resources a provider holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub(crate) users: i64,
    pub(crate) groups: i64,
}

/// Provider names appear in URLs: 1–64 characters of letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 64 || !ok_start || !ok_chars {
        return Err(format!(
            "invalid provider name {}: use 1 to 64 letters, digits, '-', '_' or '.', \
             starting with a letter or digit",
            super::quoted_name(name)
        ));
    }
    Ok(())
}

const COLUMNS: &str =
    "id, name, description, kind, created, unknown_attributes, activity_values, scim_passwords";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Provider> {
    let kind: String = r.get(3)?;
    Ok(Provider {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        kind: kind.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
        })?,
        created: r.get(4)?,
        unknown_attributes: r.get::<_, String>(5)?.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
        })?,
        activity_values: r.get(6)?,
        scim_passwords: r.get::<_, String>(7)?.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, e.into())
        })?,
    })
}

pub fn insert(
    c: &Connection,
    name: &str,
    description: &str,
    kind: ProviderKind,
    now: i64,
) -> Result<Provider> {
    check_name(name).map_err(Error::Invalid)?;
    super::check_description(description).map_err(Error::Invalid)?;
    if get(c, name)?.is_some() {
        return Err(Error::Conflict(format!("provider {name:?} already exists")));
    }
    c.execute(
        "INSERT INTO providers (name, description, kind, created) VALUES (?1, ?2, ?3, ?4)",
        params![name, description, kind.as_str(), now],
    )?;
    Ok(Provider {
        id: c.last_insert_rowid(),
        name: name.to_string(),
        description: description.to_string(),
        kind,
        created: now,
        unknown_attributes: Unknown::default(),
        activity_values: false,
        scim_passwords: ScimPasswords::default(),
    })
}

pub(crate) fn list(c: &Connection) -> Result<Vec<Provider>> {
    let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM providers ORDER BY name"))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Looks a provider up by name, ignoring case (names are unique regardless of case).
pub(crate) fn get(c: &Connection, name: &str) -> Result<Option<Provider>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM providers WHERE name = ?1"),
        [name],
        from_row,
    )
    .optional()?)
}

pub fn require(c: &Connection, name: &str) -> Result<Provider> {
    get(c, name)?.ok_or_else(|| Error::NotFound(format!("no provider named {name:?}")))
}

/// Whether the provider's activity records carry new attribute values.
pub(crate) fn set_activity_values(c: &Connection, name: &str, on: bool) -> Result<()> {
    let p = require(c, name)?;
    c.execute(
        "UPDATE providers SET activity_values = ?1 WHERE id = ?2",
        params![on, p.id],
    )?;
    Ok(())
}

/// Sets what the provider's SCIM requests may do to users' passwords; `ignore` removes the
/// passwords stored so far (users binding with them stop at their next search). Returns how
/// many were removed.
pub(crate) fn set_scim_passwords(
    c: &Connection,
    name: &str,
    policy: ScimPasswords,
) -> Result<usize> {
    let p = require(c, name)?;
    c.execute(
        "UPDATE providers SET scim_passwords = ?1 WHERE id = ?2",
        params![policy.as_str(), p.id],
    )?;
    if policy != ScimPasswords::Ignore {
        return Ok(0);
    }
    Ok(c.execute(
        "UPDATE resources SET password_hash = NULL
         WHERE provider_id = ?1 AND password_hash IS NOT NULL",
        [p.id],
    )?)
}

pub(crate) fn update(
    c: &Connection,
    name: &str,
    description: Option<&str>,
    kind: Option<ProviderKind>,
) -> Result<Provider> {
    let mut p = require(c, name)?;
    if let Some(d) = description {
        super::check_description(d).map_err(Error::Invalid)?;
        p.description = d.to_string();
    }
    if let Some(k) = kind {
        p.kind = k;
    }
    c.execute(
        "UPDATE providers SET description = ?1, kind = ?2 WHERE id = ?3",
        params![p.description, p.kind.as_str(), p.id],
    )?;
    Ok(p)
}

pub(crate) fn usage(c: &Connection, provider_id: i64) -> Result<Usage> {
    // Kept by the triggers of migration 0004: no count over a large provider's index.
    let mut st = c.prepare_cached("SELECT kind, n FROM resource_counts WHERE provider_id = ?1")?;
    let mut usage = Usage::default();
    for row in st.query_map([provider_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        match row? {
            (k, n) if k == "User" => usage.users = n,
            (_, n) => usage.groups = n,
        }
    }
    Ok(usage)
}

/// Deletes the provider with its tokens, users, groups and memberships (foreign-key cascade).
pub(crate) fn delete(c: &Connection, provider_id: i64) -> Result<()> {
    // Its id may go to the next provider: the writer's event numbers of it are no more.
    super::feeds::forget_numbers();
    c.execute("DELETE FROM providers WHERE id = ?1", [provider_id])?;
    // Its activity records went with it, perhaps the newest ones.
    super::text_index::forget_deleted_records(c)?;
    Ok(())
}

/// Removes a provider. One that still holds users or groups is refused unless `with_data`,
/// which deletes them with it, in the same transaction. Returns what was deleted. Runs on the
/// writer.
pub(crate) fn remove(c: &Connection, name: &str, with_data: bool) -> Result<Usage> {
    let p = require(c, name)?;
    let usage = usage(c, p.id)?;
    if (usage.users > 0 || usage.groups > 0) && !with_data {
        return Err(Error::Conflict(format!(
            "identity provider {} still holds {} users and {} groups; run again with --yes to \
             delete them together with the provider",
            p.name, usage.users, usage.groups
        )));
    }
    delete(c, p.id)?;
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_conn;

    #[test]
    fn names_are_unique_regardless_of_case() {
        let c = test_conn();
        insert(&c, "Okta", "", ProviderKind::Generic, 1).unwrap();
        let err = insert(&c, "okta", "", ProviderKind::Entra, 2).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert_eq!(get(&c, "OKTA").unwrap().unwrap().name, "Okta");
    }

    #[test]
    fn names_must_be_url_safe() {
        for bad in ["", "-x", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["default", "entra-prod", "okta_2", "a.b", "X"] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn update_changes_only_what_is_given() {
        let c = test_conn();
        insert(&c, "p", "first", ProviderKind::Generic, 1).unwrap();
        let p = update(&c, "p", None, Some(ProviderKind::Entra)).unwrap();
        assert_eq!(
            (p.description.as_str(), p.kind),
            ("first", ProviderKind::Entra)
        );
        assert!(matches!(
            update(&c, "q", Some("x"), None),
            Err(Error::NotFound(_))
        ));
    }
}
