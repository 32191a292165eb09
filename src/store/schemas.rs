//! The `extension_schemas` table: the extension schemas each identity provider registered, and
//! the provider's schema model built from them.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::providers::{self, Provider};
use super::{Error, Result};
use crate::scim::ResourceKind;
use crate::scim::extension;
use crate::scim::schema::{Model, Registered, Unknown};

/// One registered extension schema as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) provider: String,
    pub(crate) urn: String,
    pub(crate) kind: ResourceKind,
    /// The schema representation as it was given.
    pub(crate) definition: String,
    pub(crate) indexed: Vec<String>,
    /// Unix seconds.
    pub(crate) created: i64,
}

fn kind_of(text: &str) -> rusqlite::Result<ResourceKind> {
    ResourceKind::from_name(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown resource kind {text:?}").into(),
        )
    })
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let indexed: String = r.get(4)?;
    Ok(Stored {
        provider: r.get(0)?,
        urn: r.get(1)?,
        kind: kind_of(&r.get::<_, String>(2)?)?,
        definition: r.get(3)?,
        indexed: serde_json::from_str(&indexed).unwrap_or_default(),
        created: r.get(5)?,
    })
}

const SELECT: &str = "SELECT p.name, e.urn, e.kind, e.definition, e.indexed, e.created
     FROM extension_schemas e JOIN providers p ON p.id = e.provider_id";

/// The next model version of a provider: every change of its model bumps it, so a running
/// server sees the change on the provider's next request.
fn bump(c: &Connection, provider_id: i64) -> Result<()> {
    c.execute(
        "UPDATE providers SET model_version = model_version + 1 WHERE id = ?1",
        [provider_id],
    )?;
    Ok(())
}

/// Registers an extension schema for one resource type of a provider.
pub(crate) fn add(
    c: &Connection,
    provider: &str,
    kind: ResourceKind,
    definition: &str,
    indexed: &[String],
    now: i64,
) -> Result<Stored> {
    let p = providers::require(c, provider)?;
    let parsed = interned(definition, indexed).map_err(Error::Invalid)?;
    let urn = parsed.schema.id;
    if let Some(old) = get(c, provider, urn)? {
        return Err(Error::Conflict(format!(
            "provider {:?} already has {} (for {}); remove it first to change it",
            p.name,
            old.urn,
            old.kind.name()
        )));
    }
    let indexed: Vec<String> = parsed.indexed.iter().map(|s| s.to_string()).collect();
    c.execute(
        "INSERT INTO extension_schemas (provider_id, urn, kind, definition, indexed, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            p.id,
            urn,
            kind.name(),
            definition,
            serde_json::to_string(&indexed).unwrap_or_else(|_| "[]".into()),
            now
        ],
    )?;
    bump(c, p.id)?;
    // Values already stored under this URN (sent while it was unknown and ignored were not
    // kept; nothing else can have put them there) need no reindexing; new ones are indexed as
    // they are written.
    Ok(Stored {
        provider: p.name,
        urn: urn.to_string(),
        kind,
        definition: definition.to_string(),
        indexed,
        created: now,
    })
}

/// Every registered schema, or one provider's, by provider and URN.
pub(crate) fn list(c: &Connection, provider: Option<&str>) -> Result<Vec<Stored>> {
    let rows = match provider {
        Some(name) => {
            let p = providers::require(c, name)?;
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE e.provider_id = ?1 ORDER BY p.name, e.urn"
            ))?;
            st.query_map([p.id], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let mut st = c.prepare(&format!("{SELECT} ORDER BY p.name, e.urn"))?;
            st.query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(rows)
}

/// One provider's schema by URN (regardless of case).
pub(crate) fn get(c: &Connection, provider: &str, urn: &str) -> Result<Option<Stored>> {
    let p = providers::require(c, provider)?;
    Ok(c.query_row(
        &format!("{SELECT} WHERE e.provider_id = ?1 AND e.urn = ?2"),
        params![p.id, urn],
        from_row,
    )
    .optional()?)
}

pub(crate) fn require(c: &Connection, provider: &str, urn: &str) -> Result<Stored> {
    get(c, provider, urn)?
        .ok_or_else(|| Error::NotFound(format!("provider {provider:?} has no schema {urn}")))
}

/// The resources of a provider that hold values under `urn`, by seq.
fn holders(c: &Connection, p: &Provider, s: &Stored) -> Result<Vec<(i64, String)>> {
    // The URN is a key of the stored document; key case may differ from the registered one.
    let mut st = c.prepare(
        "SELECT r.seq, r.doc FROM resources r
         WHERE r.provider_id = ?1 AND r.kind = ?2 AND instr(lower(r.doc), lower(?3)) > 0",
    )?;
    let rows = st
        .query_map(params![p.id, s.kind.name(), s.urn], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, doc)| {
            serde_json::from_str::<Map<String, Value>>(doc)
                .is_ok_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(&s.urn)))
        })
        .collect())
}

/// How many resources hold values of a registered schema.
pub(crate) fn usage(c: &Connection, provider: &str, urn: &str) -> Result<usize> {
    let p = providers::require(c, provider)?;
    let s = require(c, provider, urn)?;
    Ok(holders(c, &p, &s)?.len())
}

/// Removes a registered schema. While resources hold values of it, only with `with_values`,
/// and then those values go in the same transaction (each such resource gets a new version).
/// Returns how many resources changed.
pub(crate) fn remove(
    c: &Connection,
    provider: &str,
    urn: &str,
    with_values: bool,
    now: &str,
) -> Result<usize> {
    let p = providers::require(c, provider)?;
    let s = require(c, provider, urn)?;
    let holders = holders(c, &p, &s)?;
    if !holders.is_empty() && !with_values {
        return Err(Error::Conflict(format!(
            "{} resources hold values of {}; remove it with --yes to delete those values too",
            holders.len(),
            s.urn
        )));
    }
    let mut update = c.prepare_cached(
        "UPDATE resources SET doc = ?2, version = version + 1, modified = ?3 WHERE seq = ?1",
    )?;
    for (seq, doc) in &holders {
        let mut m: Map<String, Value> =
            serde_json::from_str(doc).map_err(|e| Error::Internal(e.to_string()))?;
        m.retain(|k, _| !k.eq_ignore_ascii_case(&s.urn));
        let text = serde_json::to_string(&m).map_err(|e| Error::Internal(e.to_string()))?;
        update.execute(params![seq, text, now])?;
    }
    let prefix = format!("{}:", s.urn);
    c.execute(
        "DELETE FROM value_index WHERE attr >= ?1 AND attr < ?1 || char(1114111)
           AND seq IN (SELECT seq FROM resources WHERE provider_id = ?2)",
        params![prefix, p.id],
    )?;
    c.execute(
        "DELETE FROM extension_schemas WHERE provider_id = ?1 AND urn = ?2",
        params![p.id, s.urn],
    )?;
    bump(c, p.id)?;
    Ok(holders.len())
}

/// Sets what a provider does with attributes of schemas it has not registered.
pub(crate) fn set_unknown(c: &Connection, provider: &str, policy: Unknown) -> Result<()> {
    let p = providers::require(c, provider)?;
    c.execute(
        "UPDATE providers SET unknown_attributes = ?2 WHERE id = ?1",
        params![p.id, policy.as_str()],
    )?;
    bump(c, p.id)
}

/// A provider's model version as stored now.
pub(crate) fn model_version(c: &Connection, provider_id: i64) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT model_version FROM providers WHERE id = ?1")?
            .query_row([provider_id], |r| r.get(0))?,
    )
}

/// A provider's schema model as stored now.
pub(crate) fn model(c: &Connection, provider_id: i64) -> Result<Model> {
    let (version, unknown): (i64, String) = c.query_row(
        "SELECT model_version, unknown_attributes FROM providers WHERE id = ?1",
        [provider_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let unknown: Unknown = unknown.parse().map_err(Error::Internal)?;
    let mut st = c.prepare_cached(
        "SELECT kind, definition, indexed FROM extension_schemas
         WHERE provider_id = ?1 ORDER BY created, urn",
    )?;
    let rows = st
        .query_map([provider_id], |r| {
            Ok((
                kind_of(&r.get::<_, String>(0)?)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut registered = Vec::with_capacity(rows.len());
    for (kind, definition, indexed) in rows {
        let indexed: Vec<String> = serde_json::from_str(&indexed).unwrap_or_default();
        let parsed = interned(&definition, &indexed)
            .map_err(|e| Error::Internal(format!("a stored schema no longer reads: {e}")))?;
        registered.push(Registered {
            kind,
            schema: parsed.schema,
            indexed: parsed.indexed,
        });
    }
    Ok(Model::for_provider(version, unknown, &registered))
}

/// `extension::parse`, once per distinct definition and index list for the life of the
/// process: a parsed schema is leaked (`&'static`), so rebuilding a provider's model after any
/// change, or registering a removed schema again, reuses the first copy.
fn interned(
    definition: &str,
    indexed: &[String],
) -> std::result::Result<extension::Parsed, String> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    static INTERNED: LazyLock<Mutex<HashMap<String, extension::Parsed>>> =
        LazyLock::new(Default::default);
    let key = format!("{indexed:?}\u{0}{definition}");
    if let Some(p) = INTERNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(p.clone());
    }
    let parsed = extension::parse(definition, indexed)?;
    INTERNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, parsed.clone());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_definition_again_is_the_same_interned_schema() {
        let definition = r#"{"id": "urn:example:params:scim:schemas:extension:interned:2.0:User",
            "name": "Interned", "attributes": [{"name": "badgeNumber", "type": "string",
            "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite",
            "returned": "default", "uniqueness": "none"}]}"#;
        let indexed = ["BADGENUMBER".to_string()];
        let first = interned(definition, &indexed).unwrap_or_else(|e| panic!("{e}"));
        let again = interned(definition, &indexed).unwrap_or_else(|e| panic!("{e}"));
        assert!(std::ptr::eq(again.schema, first.schema));
        let other = interned(definition, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !std::ptr::eq(other.schema, first.schema),
            "another index list is another copy"
        );
    }
}
