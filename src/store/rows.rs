//! How a User or Group is kept as a row and as index keys: the row types the store hands out
//! (`Resource`, and `Rows` of `Stored` views for rendering), the columns they are read from,
//! how a kind is spelled in the `kind` column, a member reference, and the keys of
//! `value_index`. Every other file of the store builds on these; this one builds on none.

use rusqlite::Row;
use serde_json::{Map, Value};

use crate::scim::schema::Attribute;
use crate::scim::{ResourceKind, fold};

/// The columns `Rows::push` reads, in its order.
pub(crate) const COLUMNS: &str = "r.seq, r.id, r.doc, r.created, r.modified, r.version";

/// A stored User or Group.
#[derive(Debug, Clone)]
pub struct Resource {
    pub(crate) seq: i64,
    pub id: String,
    pub(crate) doc: Map<String, Value>,
    pub(crate) created: String,
    pub(crate) modified: String,
    pub(crate) version: i64,
}

/// A stored User or Group as the renderer reads it: its columns, with the document as the JSON
/// text it is stored as (a full representation never parses it). Borrowed from `Rows`.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub(crate) seq: i64,
    pub(crate) id: &'a str,
    pub(crate) doc: &'a str,
    pub(crate) created: &'a str,
    pub(crate) modified: &'a str,
    pub(crate) version: i64,
}

/// Rows read for rendering (a page, or the one resource a GET reads), their text columns kept
/// in one buffer: one growing allocation per page instead of four per row.
#[derive(Debug, Default)]
pub struct Rows {
    text: String,
    rows: Vec<RowEnds>,
}

#[derive(Debug)]
struct RowEnds {
    seq: i64,
    version: i64,
    /// Where id, doc, created and modified end in `text`; each starts where the one before ends.
    ends: [usize; 4],
}

impl Rows {
    /// Room for `rows` rows of typical users, so the buffer is not copied as it grows.
    pub(crate) fn with_capacity(rows: usize) -> Rows {
        Rows {
            text: String::with_capacity(rows * 1024),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Appends a row selected as `COLUMNS`.
    pub(crate) fn push(&mut self, r: &Row<'_>) -> rusqlite::Result<()> {
        let mut ends = [0; 4];
        for (end, col) in ends.iter_mut().zip(1..) {
            match r.get_ref(col)? {
                rusqlite::types::ValueRef::Text(t) => {
                    let t = std::str::from_utf8(t).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            col,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?;
                    self.text.push_str(t);
                }
                other => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        col,
                        format!("column {col}"),
                        other.data_type(),
                    ));
                }
            }
            *end = self.text.len();
        }
        self.rows.push(RowEnds {
            seq: r.get(0)?,
            version: r.get(5)?,
            ends,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Stored<'_>> {
        let mut start = 0;
        self.rows.iter().map(move |row| {
            let [a, b, c, d] = row.ends;
            let view = Stored {
                seq: row.seq,
                id: &self.text[start..a],
                doc: &self.text[a..b],
                created: &self.text[b..c],
                modified: &self.text[c..d],
                version: row.version,
            };
            start = d;
            view
        })
    }
}

/// One member of a group, as the representation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) id: String,
    pub(crate) kind: ResourceKind,
    pub(crate) display: Option<String>,
}

pub(crate) fn kind_str(kind: ResourceKind) -> &'static str {
    kind.name()
}

pub(crate) fn parse_kind(s: &str) -> rusqlite::Result<ResourceKind> {
    ResourceKind::from_name(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, s.into())
    })
}

/// The `value_index.attr` key of an indexed extension attribute: `urn:...:User:badgeNumber`.
pub(crate) fn extension_index_attr(urn: &str, attr: &Attribute) -> String {
    format!("{urn}:{}", attr.name)
}

/// What `value_index` keeps of an extension attribute's value: text folded unless the
/// attribute is case-exact; numbers and booleans as JSON.
pub(crate) fn extension_index_value(attr: &Attribute, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if attr.case_exact => Some(s.clone()),
        Value::String(s) => Some(fold(s)),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// The `value_index.attr` key of an indexed sub-attribute: `emails.value`.
pub(crate) fn index_attr(attr: &Attribute, sub: &Attribute) -> String {
    format!("{}.{}", attr.name, sub.name)
}
