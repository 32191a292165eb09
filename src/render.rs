//! The one renderer: stored rows and their computed values become SCIM response bodies — a
//! resource for GET, the answers of POST, PUT and PATCH, and the ListResponse of lists and
//! searches.
//!
//! The full representation is written as text around the document's stored JSON text, which is
//! never parsed (point reads and pages depend on it: see docs/performance.md). A
//! response shaped by `attributes`/`excludedAttributes` is that text parsed once, projected and
//! written again. Strings are escaped by serde_json's own writer.
//!
//! The computed attribute (a Group's members, a User's groups) is loaded by `computed` only
//! when the projection keeps it. A write loads it inside its own transaction (the response
//! then needs no second round trip) and is rendered after the commit, off the writer thread.

use std::io::Write as _;

use serde_json::{Map, Value};

use crate::scim::projection::Projection;
use crate::scim::schema::{Attribute, ResourceKind, ResourceType, Role};
use crate::store::members::Linked;
use crate::store::resources::{Resource, Stored};
use crate::store::{self, Error};

pub(crate) const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The weak ETag of a resource version: `meta.version` and the `ETag` header.
pub(crate) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether JSON must escape anything in `s` (a control character, `"` or `\`). Written as a
/// fold without early exit so the compiler checks many bytes per instruction: most strings a
/// response holds (ids, timestamps, URNs, the base URL) need no escaping, and serde_json's
/// escaper, which looks at one byte at a time, cost a page of 100 users 280,000 instructions.
fn needs_escape(s: &str) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = s.as_bytes().chunks_exact(16);
    // A fixed-size chunk folded without early exit compiles to vector compares.
    let found = chunks.any(|c| c.iter().fold(false, |f, &b| f | escaped(b)));
    found || chunks.remainder().iter().any(|&b| escaped(b))
}

/// Appends one of scimd's own names (a schema URN, an attribute or resource type name, a
/// canonical value) as a JSON string literal: the model holds none that JSON escapes.
fn push_name(out: &mut Vec<u8>, name: &'static str) {
    debug_assert!(!needs_escape(name), "{name:?}");
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// Appends `s` as a JSON string literal; escaped by serde_json's writer when it needs it.
fn push_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s) {
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The computed attribute's values for each row of a page, each as JSON array text (empty when
/// a row has none, or when the projection leaves the attribute out).
#[derive(Debug, Default)]
pub(crate) struct Computed {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Computed {
    /// No computed values for `rows` rows.
    pub(crate) fn none(rows: usize) -> Computed {
        Computed {
            text: Vec::new(),
            ends: vec![0; rows],
        }
    }

    fn of(&self, row: usize) -> &[u8] {
        let start = row.checked_sub(1).map_or(0, |r| self.ends[r]);
        self.ends
            .get(row)
            .map_or(&[], |&end| &self.text[start..end])
    }
}

/// The JSON keys of a reference value (`value`, `$ref`, `display`, `type`), from the
/// sub-attributes of the attribute holding it.
struct RefKeys {
    id: &'static str,
    uri: &'static str,
    display: &'static str,
    ty: &'static str,
}

impl RefKeys {
    fn of(attr: &Attribute) -> RefKeys {
        let key = |role| attr.sub_with(role).map_or("", |s| s.name);
        RefKeys {
            id: key(Role::RefId),
            uri: key(Role::RefUri),
            display: key(Role::RefDisplay),
            ty: key(Role::RefType),
        }
    }
}

/// Appends one reference value: `{"value":id,"$ref":uri,"type":ty,"display":display}`.
fn push_reference(
    out: &mut Vec<u8>,
    keys: &RefKeys,
    base: &str,
    id: &str,
    kind: ResourceKind,
    display: Option<&str>,
    ty: &str,
) {
    out.push(b'{');
    push_name(out, keys.id);
    out.push(b':');
    push_str(out, id);
    out.push(b',');
    push_name(out, keys.uri);
    out.push(b':');
    push_location(out, base, kind, id);
    out.push(b',');
    push_name(out, keys.ty);
    out.push(b':');
    push_str(out, ty);
    if let Some(d) = display {
        out.push(b',');
        push_name(out, keys.display);
        out.push(b':');
        push_str(out, d);
    }
    out.push(b'}');
}

/// Appends `"{base}/{Users|Groups}/{id}"` as a JSON string literal.
fn push_location(out: &mut Vec<u8>, base: &str, kind: ResourceKind, id: &str) {
    if needs_escape(base) || needs_escape(id) {
        push_str(out, &format!("{base}/{}/{id}", kind.endpoint()));
        return;
    }
    out.push(b'"');
    out.extend_from_slice(base.as_bytes());
    out.push(b'/');
    out.extend_from_slice(kind.endpoint().as_bytes());
    out.push(b'/');
    out.extend_from_slice(id.as_bytes());
    out.push(b'"');
}

/// The computed attribute of each row as read (`store::members::linked`), written once for
/// all rows.
pub(crate) fn computed(base: &str, rt: &ResourceType, linked: &Linked) -> Computed {
    let attr = match (linked, rt.linked()) {
        (Linked::None(_), _) | (_, None) => return Computed::none(linked.rows()),
        (_, Some(attr)) => attr,
    };
    let keys = RefKeys::of(attr);
    let mut out = Computed {
        text: Vec::new(),
        ends: Vec::with_capacity(linked.rows()),
    };
    match linked {
        Linked::None(_) => {}
        Linked::Members(all) => {
            for members in all {
                let start = out.text.len();
                for m in members {
                    out.text
                        .push(if out.text.len() == start { b'[' } else { b',' });
                    let display = m.display.as_deref();
                    push_reference(
                        &mut out.text,
                        &keys,
                        base,
                        &m.id,
                        m.kind,
                        display,
                        m.kind.name(),
                    );
                }
                if out.text.len() > start {
                    out.text.push(b']');
                }
                out.ends.push(out.text.len());
            }
        }
        Linked::Groups(names, lists) => {
            // Each group's reference is written once per page, split around its `type`: the
            // same groups recur on most users of a page. [start, type, after type, end] in refs.
            let mut refs = Vec::new();
            let marker = "\u{0}";
            let escaped = b"\"\\u0000\"";
            let rendered: Vec<[usize; 4]> = names
                .iter()
                .map(|(_, id, name)| {
                    let start = refs.len();
                    let group = ResourceKind::Group;
                    push_reference(&mut refs, &keys, base, id, group, name.as_deref(), marker);
                    let end = refs.len();
                    match refs[start..]
                        .windows(escaped.len())
                        .position(|w| w == escaped)
                    {
                        Some(i) => [start, start + i, start + i + escaped.len(), end],
                        None => [start, end, end, end],
                    }
                })
                .collect();
            for member in 0..lists.len() {
                let start = out.text.len();
                for &(g, direct) in lists.of(member) {
                    let [head, at, tail, end] = rendered[g];
                    out.text
                        .push(if out.text.len() == start { b'[' } else { b',' });
                    out.text.extend_from_slice(&refs[head..at]);
                    // The membership types of RFC 7643 §4.1.2.
                    push_name(&mut out.text, if direct { "direct" } else { "indirect" });
                    out.text.extend_from_slice(&refs[tail..end]);
                }
                if out.text.len() > start {
                    out.text.push(b']');
                }
                out.ends.push(out.text.len());
            }
        }
    }
    out
}

fn has_top_level_key(doc: &str, key: &str, finder: &memchr::memmem::Finder<'_>) -> bool {
    let bytes = doc.as_bytes();
    finder.find_iter(bytes).any(|at| {
        at >= 2
            && bytes[at - 1] == b'"'
            && matches!(bytes[at - 2], b'{' | b',')
            && bytes.get(at + key.len()) == Some(&b'"')
            && bytes.get(at + key.len() + 1) == Some(&b':')
    })
}

/// Appends the full representation: `schemas` (the core schema and each extension the document
/// holds), `id`, the stored attributes, the computed attribute when it has values, and `meta`.
/// The common attributes' keys are RFC 7643 §3.1's wire format.
fn push_full(out: &mut Vec<u8>, rt: &ResourceType, base: &str, row: &Stored<'_>, computed: &[u8]) {
    out.reserve(row.doc.len() + computed.len() + 2 * base.len() + 256);
    out.extend_from_slice(b"{\"schemas\":[");
    push_name(out, rt.schema().id);
    for (ext, finder) in rt.extension_finders() {
        if has_top_level_key(row.doc, ext.id, finder) {
            out.push(b',');
            push_name(out, ext.id);
        }
    }
    out.extend_from_slice(b"],\"id\":");
    push_str(out, row.id);
    let inner = row
        .doc
        .strip_prefix('{')
        .and_then(|d| d.strip_suffix('}'))
        .unwrap_or_default();
    if !inner.is_empty() {
        out.push(b',');
        out.extend_from_slice(inner.as_bytes());
    }
    // An empty list is the same state as no value (RFC 7643 §2.5): left out.
    if let Some(attr) = rt.linked().filter(|_| !computed.is_empty()) {
        out.push(b',');
        push_name(out, attr.name);
        out.push(b':');
        out.extend_from_slice(computed);
    }
    out.extend_from_slice(b",\"meta\":{\"resourceType\":");
    push_name(out, rt.name());
    out.extend_from_slice(b",\"created\":");
    push_str(out, row.created);
    out.extend_from_slice(b",\"lastModified\":");
    push_str(out, row.modified);
    out.extend_from_slice(b",\"location\":");
    push_location(out, base, rt.kind(), row.id);
    // The weak ETag `W/"n"` as a JSON string.
    out.extend_from_slice(b",\"version\":\"W/\\\"");
    let _ = write!(out, "{}", row.version);
    out.extend_from_slice(b"\\\"\"}}");
}

/// Appends one resource as `projection` shows it; `computed` is its computed attribute's JSON
/// array text (empty for none).
fn push_resource(
    out: &mut Vec<u8>,
    rt: &ResourceType,
    base: &str,
    row: &Stored<'_>,
    computed: &[u8],
    projection: &Projection,
) -> store::Result<()> {
    if projection.is_default() {
        push_full(out, rt, base, row, computed);
        return Ok(());
    }
    let mut full = Vec::new();
    push_full(&mut full, rt, base, row, computed);
    let map: Map<String, Value> = serde_json::from_slice(&full).map_err(unrenderable)?;
    serde_json::to_writer(out, &projection.apply(rt, map)).map_err(unrenderable)
}

fn unrenderable(e: serde_json::Error) -> Error {
    Error::Internal(format!("rendering a resource: {e}"))
}

/// Appends `rows` with `separator` between them, each with its computed values (`computed`,
/// one per row).
pub(crate) fn push_rows_separated(
    out: &mut Vec<u8>,
    rt: &ResourceType,
    base: &str,
    rows: &[Stored<'_>],
    computed: &Computed,
    projection: &Projection,
    separator: &[u8],
) -> store::Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        push_resource(out, rt, base, row, computed.of(i), projection)?;
    }
    Ok(())
}

/// The answer to a write: the resource as the write stored it, with the computed values it
/// loaded in its transaction (`computed` for its one row).
pub(crate) fn written(
    rt: &ResourceType,
    base: &str,
    r: &Resource,
    computed: &Computed,
    projection: &Projection,
) -> store::Result<Vec<u8>> {
    let doc = serde_json::to_string(&r.doc).map_err(unrenderable)?;
    let row = Stored {
        seq: r.seq,
        id: &r.id,
        doc: &doc,
        created: &r.created,
        modified: &r.modified,
        version: r.version,
    };
    let mut out = Vec::with_capacity(doc.len() + 512);
    push_resource(&mut out, rt, base, &row, computed.of(0), projection)?;
    Ok(out)
}

/// How a ListResponse pages (RFC 7644 §3.4.2.4; RFC 9865 cursors).
pub(crate) enum Paged {
    /// By position: the 1-based index of the first resource.
    Index(i64),
    /// By cursor: the cursor of the next page, if there is one.
    Cursor(Option<String>),
}

/// Starts a ListResponse: its members up to `"Resources":[`, to be followed by the
/// comma-separated resources and `list_end`.
pub(crate) fn list_start(out: &mut Vec<u8>, total: i64, items: usize, paged: &Paged) {
    out.extend_from_slice(b"{\"schemas\":[");
    push_name(out, LIST_RESPONSE);
    out.extend_from_slice(
        format!("],\"totalResults\":{total},\"itemsPerPage\":{items}").as_bytes(),
    );
    match paged {
        Paged::Index(start) => out.extend_from_slice(format!(",\"startIndex\":{start}").as_bytes()),
        Paged::Cursor(Some(next)) => {
            out.extend_from_slice(b",\"nextCursor\":");
            push_str(out, next);
        }
        Paged::Cursor(None) => {}
    }
    out.extend_from_slice(b",\"Resources\":[");
}

/// Ends a ListResponse started with `list_start`.
pub(crate) fn list_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER;
    use serde_json::json;

    fn user() -> &'static ResourceType {
        ResourceKind::User.builtin()
    }

    #[test]
    fn full_representation_is_schemas_id_document_computed_and_meta() {
        let docs = [
            json!({"userName": "a"}),
            json!({"userName": "b", "title": "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":", ENTERPRISE_USER: {"department": "x"}}),
            json!({ENTERPRISE_USER: {"manager": {"value": "m"}}, "userName": "c", "emails": [{"value": "é@x"}]}),
            json!({"userName": "d", "nickName": ",\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":"}),
        ];
        let group =
            json!({"value": "g1", "$ref": "http://b/Groups/g1", "type": "direct", "display": "G"});
        for d in docs {
            let text = serde_json::to_string(&d).unwrap();
            for computed in [vec![], vec![group.clone()]] {
                let computed_text = match computed.is_empty() {
                    true => String::new(),
                    false => Value::Array(computed.clone()).to_string(),
                };
                let row = Stored {
                    seq: 1,
                    id: "i\"d",
                    doc: &text,
                    created: "c",
                    modified: "m",
                    version: 3,
                };
                let mut out = Vec::new();
                push_full(&mut out, user(), "http://b", &row, computed_text.as_bytes());
                let got: Value = serde_json::from_slice(&out).unwrap();
                let mut schemas = vec![json!(crate::scim::schema::USER)];
                if d.get(ENTERPRISE_USER).is_some() {
                    schemas.push(json!(ENTERPRISE_USER));
                }
                let mut want = json!({"schemas": schemas, "id": "i\"d"});
                for (k, v) in d.as_object().unwrap() {
                    want[k] = v.clone();
                }
                if !computed.is_empty() {
                    want["groups"] = Value::Array(computed.clone());
                }
                want["meta"] = json!({"resourceType": "User", "created": "c", "lastModified": "m",
                    "location": "http://b/Users/i\"d", "version": "W/\"3\""});
                assert_eq!(got, want, "{d}");
                // Key order too: the document's own order, between id and meta.
                assert_eq!(String::from_utf8(out).unwrap(), want.to_string());
            }
        }
    }

    #[test]
    fn references_name_their_keys_from_the_model_and_escape_values() {
        let members = ResourceKind::Group.builtin().linked().unwrap();
        for display in [None, Some("G \"1\"")] {
            let mut out = Vec::new();
            let keys = RefKeys::of(members);
            push_reference(
                &mut out,
                &keys,
                "http://b/x",
                "g\n1",
                ResourceKind::Group,
                display,
                "Group",
            );
            let mut want =
                json!({"value": "g\n1", "$ref": "http://b/x/Groups/g\n1", "type": "Group"});
            if let Some(d) = display {
                want["display"] = json!(d);
            }
            assert_eq!(String::from_utf8(out).unwrap(), want.to_string());
        }
    }

    #[test]
    fn list_heads_page_by_index_or_cursor() {
        for (paged, extra) in [
            (Paged::Index(3), json!({"startIndex": 3})),
            (
                Paged::Cursor(Some("c1f".into())),
                json!({"nextCursor": "c1f"}),
            ),
            (Paged::Cursor(None), json!({})),
        ] {
            let mut out = Vec::new();
            list_start(&mut out, 7, 0, &paged);
            list_end(&mut out);
            let mut want =
                json!({"schemas": [LIST_RESPONSE], "totalResults": 7, "itemsPerPage": 0});
            for (k, v) in extra.as_object().unwrap() {
                want[k] = v.clone();
            }
            want["Resources"] = json!([]);
            assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), want);
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é – \u{2028} 𝄞 \\\" /");
        for s in [
            all.as_str(),
            "",
            "plain",
            "\"",
            "a\\b",
            "\u{7f}\u{1f}",
            "urn:x:y",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                Value::from(s).to_string(),
                "{s:?}"
            );
        }
        for (base, id) in [("http://b/x", "a-1"), ("http://b/\"x", "a\n1")] {
            let mut out = Vec::new();
            push_location(&mut out, base, ResourceKind::User, id);
            let want = Value::from(format!("{base}/Users/{id}")).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn etags_are_weak() {
        assert_eq!(etag(3), "W/\"3\"");
    }
}
