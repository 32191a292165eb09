//! Representations of stored resources with their computed attributes.

use rusqlite::Connection;
use serde_json::Value;

use super::Result;
use super::members::{group_seqs_of_many, groups_of_many, members_of};
use super::resources::{RawResource, RawView, Resource};
use crate::scim::ResourceKind;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Stored};

/// Builds the representation of a stored resource, loading computed members or groups only
/// when the projection will keep them.
pub fn represent(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    r: &Resource,
    projection: &Projection,
) -> Result<Value> {
    Ok(
        represent_many(c, base, kind, std::slice::from_ref(r), projection)?
            .pop()
            .unwrap_or(Value::Null),
    )
}

/// `represent` for a page of resources, loading the computed attributes of all of them at once.
pub fn represent_many(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    page: &[Resource],
    projection: &Projection,
) -> Result<Vec<Value>> {
    let mut computed = if projection.wants(computed_key(kind)) {
        let seqs: Vec<i64> = page.iter().map(|r| r.seq).collect();
        computed_many(c, base, kind, &seqs)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; page.len()]
    };
    Ok(page
        .iter()
        .zip(computed.iter_mut())
        .map(|(r, computed)| render_with(base, kind, r, computed.take(), projection))
        .collect())
}

/// The computed `members`/`groups` of one resource when `projection` keeps them: what a write
/// loads inside its own transaction so the response needs no second database round trip.
pub fn computed_for(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seq: i64,
    projection: &Projection,
) -> Result<Option<Vec<Value>>> {
    if !projection.wants(computed_key(kind)) {
        return Ok(None);
    }
    Ok(computed_many(c, base, kind, &[seq])?.pop())
}

/// The representation of a resource whose computed attributes are already loaded.
pub fn render_with(
    base: &str,
    kind: ResourceKind,
    r: &Resource,
    computed: Option<Vec<Value>>,
    projection: &Projection,
) -> Value {
    let stored = Stored {
        id: &r.id,
        doc: &r.doc,
        created: &r.created,
        modified: &r.modified,
        version: r.version,
        location: format!("{base}/{}/{}", kind.endpoint(), r.id),
    };
    Value::Object(projection.apply(kind, resource::render(kind, &stored, computed)))
}

/// The attribute whose values come from membership rows: a Group's members, a User's groups.
fn computed_key(kind: ResourceKind) -> &'static str {
    kind.linked().map_or("", |a| a.name)
}

/// The computed `members` (Group) or `groups` (User) of each resource, in the given order.
fn computed_many(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seqs: &[i64],
) -> Result<Vec<Vec<Value>>> {
    match kind {
        ResourceKind::Group => seqs
            .iter()
            .map(|&seq| {
                Ok(members_of(c, seq)?
                    .into_iter()
                    .map(|m| {
                        resource::reference(
                            base,
                            &m.id,
                            m.kind,
                            m.display.as_deref(),
                            m.kind.name(),
                        )
                    })
                    .collect())
            })
            .collect(),
        ResourceKind::User => Ok(groups_of_many(c, seqs)?
            .into_iter()
            .map(|groups| {
                groups
                    .into_iter()
                    .map(|g| {
                        let type_ = if g.direct { "direct" } else { "indirect" };
                        resource::reference(base, &g.id, g.kind, g.display.as_deref(), type_)
                    })
                    .collect()
            })
            .collect()),
    }
}

/// Appends the computed `members` (Group) or `groups` (User) of each resource as JSON array
/// text to `out` (nothing when there are none), in the given order; gives where each one ends.
fn computed_text_into(
    out: &mut String,
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    seqs: &[i64],
) -> Result<Vec<usize>> {
    let mut ends = Vec::with_capacity(seqs.len());
    match kind {
        ResourceKind::Group => {
            for &seq in seqs {
                let start = out.len();
                for r in members_of(c, seq)? {
                    out.push(if out.len() == start { '[' } else { ',' });
                    let display = r.display.as_deref();
                    resource::push_reference(out, base, &r.id, r.kind, display, r.kind.name());
                }
                if out.len() > start {
                    out.push(']');
                }
                ends.push(out.len());
            }
        }
        ResourceKind::User => {
            let (names, lists) = group_seqs_of_many(c, seqs)?;
            // Each group's reference is written once per page, split around its `type`: the
            // same groups recur on most users of a page. [start, type, after type, end] in refs.
            let mut refs = String::new();
            let rendered: Vec<[usize; 4]> = names
                .iter()
                .map(|(_, id, name)| {
                    let start = refs.len();
                    let marker = "\u{0}";
                    resource::push_reference(
                        &mut refs,
                        base,
                        id,
                        ResourceKind::Group,
                        name.as_deref(),
                        marker,
                    );
                    // The marker, as JSON escapes it, splits the text around `type`.
                    let end = refs.len();
                    let escaped = "\"\\u0000\"";
                    match refs[start..].find(escaped) {
                        Some(i) => [start, start + i, start + i + escaped.len(), end],
                        None => [start, end, end, end],
                    }
                })
                .collect();
            for member in 0..seqs.len() {
                let start = out.len();
                for &(g, direct) in lists.of(member) {
                    let [head, at, tail, end] = rendered[g];
                    out.push(if out.len() == start { '[' } else { ',' });
                    out.push_str(&refs[head..at]);
                    out.push_str(if direct { "\"direct\"" } else { "\"indirect\"" });
                    out.push_str(&refs[tail..end]);
                }
                if out.len() > start {
                    out.push(']');
                }
                ends.push(out.len());
            }
        }
    }
    Ok(ends)
}

/// The full representation (no `attributes`/`excludedAttributes`) as JSON text, built around
/// the stored document text instead of parsing and re-serializing it. Gives the same JSON as
/// `represent` with the default projection.
pub fn represent_raw(
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    r: &RawResource,
) -> Result<String> {
    let mut out = String::new();
    represent_raw_into(&mut out, c, base, kind, &[r.view()])?;
    Ok(out)
}

/// Appends the full representations of a page of resources to `out`, separated by commas,
/// loading the computed attributes of all of them at once.
pub fn represent_raw_into(
    out: &mut String,
    c: &Connection,
    base: &str,
    kind: ResourceKind,
    page: &[RawView<'_>],
) -> Result<()> {
    let seqs: Vec<i64> = page.iter().map(|r| r.seq).collect();
    let mut computed = String::new();
    let ends = computed_text_into(&mut computed, c, base, kind, &seqs)?;
    // The schemas, id and meta around each document take about 300 bytes besides the id, the
    // timestamps and two copies of the base URL; room for all of it up front.
    out.reserve(
        page.iter()
            .map(|r| r.doc.len() + r.id.len() * 2 + r.created.len() * 2 + base.len() * 2 + 384)
            .sum::<usize>()
            + computed.len(),
    );
    let mut start = 0;
    for (i, (r, &end)) in page.iter().zip(&ends).enumerate() {
        if i > 0 {
            out.push(',');
        }
        resource::write_text(
            out,
            kind,
            base,
            r.id,
            r.doc,
            &computed[start..end],
            r.created,
            r.modified,
            r.version,
        );
        start = end;
    }
    Ok(())
}
