//! Turning a request body into the document to store (validation against the schema model), and
//! a stored document back into a SCIM resource.
//!
//! Values are kept exactly as the client sent them (identity providers compare what they sent
//! with what they read back); only attribute names are made canonical, `"True"`/`"False"`
//! become booleans, and `null` or empty arrays mean "no value".

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::Error;
use super::quirks::{Quirk, Quirks};
use super::schema::{self, Attribute, Mutability, ResourceKind, Role, Schema, Type};

/// A validated request body, split into what the store keeps where.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Attributes to store, canonical names, extension objects under their URN. Excludes id,
    /// meta, schemas, read-only attributes, the password and group members.
    pub doc: Map<String, Value>,
    /// userName (User) or displayName (Group), exactly as sent.
    pub name: String,
    pub external_id: Option<String>,
    /// A write-only password, to be hashed before storing.
    pub password: Option<String>,
    /// Members of a Group, in order of first appearance, without duplicate ids.
    pub members: Option<Vec<Member>>,
    /// Non-standard shapes the body used that were accepted.
    pub quirks: Quirks,
}

/// One member as a client sent it: the member's id, and the `display` it gave, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub display: Option<String>,
}

/// Validates a POST or PUT body for `kind`.
pub fn prepare(kind: ResourceKind, input: &Value) -> Result<Prepared, Error> {
    let obj = input
        .as_object()
        .ok_or_else(|| Error::InvalidSyntax("the request body must be a JSON object".into()))?;
    let schema = kind.schema();
    let mut doc = Map::new();
    let mut password = None;
    let mut members = None;
    let mut q = Quirks::default();
    let listed: Vec<&str> = obj
        .iter()
        .find(|(k, _)| schema::common(k).is_some_and(|a| a.role == Role::Schemas))
        .and_then(|(_, v)| v.as_array())
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let known = |urn: &str| urn.eq_ignore_ascii_case(schema.id) || kind.extension(urn).is_some();
    if listed.iter().any(|u| !known(u)) {
        q.note(Quirk::UnknownSchema);
    }
    for (key, value) in obj {
        if let Some(common) = schema::common(key) {
            match common.role {
                Role::Schemas => check_schemas(value)?,
                Role::ExternalId => match value {
                    Value::Null => {}
                    Value::String(_) => insert_once(&mut doc, common.name, value.clone())?,
                    _ => {
                        return Err(Error::InvalidValue(format!(
                            "{} must be a string",
                            common.name
                        )));
                    }
                },
                // Read-only common attributes (id, meta) are ignored, never stored.
                _ => {}
            }
            continue;
        }
        if let Some(ext) = kind.extension(key) {
            if !listed.iter().any(|u| u.eq_ignore_ascii_case(ext.id)) && !value.is_null() {
                q.note(Quirk::ExtensionWithoutUrn);
            }
            match value {
                Value::Null => {}
                Value::Object(m) => {
                    let sub = prepare_object(ext, m, &mut q)?;
                    if !sub.is_empty() {
                        insert_once(&mut doc, ext.id, Value::Object(sub))?;
                    }
                }
                _ => {
                    return Err(Error::InvalidSyntax(format!(
                        "the {} extension must be a JSON object",
                        ext.name
                    )));
                }
            }
            continue;
        }
        if key.starts_with("urn:") {
            // An extension this server does not know: accepted and ignored, like its URN in
            // `schemas`.
            q.note(Quirk::UnknownSchema);
            continue;
        }
        let attr = schema.attribute(key).ok_or_else(|| {
            Error::InvalidSyntax(format!("{key:?} is not an attribute of a {}", kind.name()))
        })?;
        match attr.mutability {
            Mutability::ReadOnly => continue,
            Mutability::WriteOnly if attr.role == Role::Secret => {
                password = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => {
                        return Err(Error::InvalidValue(format!(
                            "{} must be a string",
                            attr.name
                        )));
                    }
                };
                continue;
            }
            Mutability::WriteOnly | Mutability::ReadWrite | Mutability::Immutable => {}
        }
        if attr.role == Role::Relation {
            members = Some(member_ids(attr, value)?);
            continue;
        }
        if let Some(v) = value_of(attr, value, attr.name, &mut q)? {
            insert_once(&mut doc, attr.name, v)?;
        }
    }
    for attr in schema.attributes.iter().filter(|a| a.required) {
        if !doc.contains_key(attr.name) {
            return Err(Error::InvalidValue(format!(
                "{} is required for a {}",
                attr.name,
                kind.name()
            )));
        }
    }
    let name = doc
        .get(kind.name_attribute())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.trim().is_empty() {
        return Err(Error::InvalidValue(format!(
            "{} must not be empty",
            kind.name_attribute()
        )));
    }
    let external_id = doc
        .get(schema::EXTERNAL_ID.name)
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Prepared {
        doc,
        name,
        external_id,
        password,
        members,
        quirks: q,
    })
}

/// Whether `key` names the common `schemas` attribute.
pub fn is_schemas(key: &str) -> bool {
    key.eq_ignore_ascii_case(schema::SCHEMAS.name)
}

fn insert_once(doc: &mut Map<String, Value>, key: &str, v: Value) -> Result<(), Error> {
    if doc.insert(key.to_string(), v).is_some() {
        return Err(Error::InvalidSyntax(format!(
            "{key} is given more than once (attribute names ignore case)"
        )));
    }
    Ok(())
}

fn check_schemas(value: &Value) -> Result<(), Error> {
    let ok = match value {
        Value::Array(items) => items.iter().all(Value::is_string),
        Value::Null => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSyntax(
            "schemas must be an array of schema URNs".into(),
        ))
    }
}

fn prepare_object(
    schema: &Schema,
    m: &Map<String, Value>,
    q: &mut Quirks,
) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    // Some clients repeat `schemas` inside the extension object; it carries no attribute.
    for (key, value) in m.iter().filter(|(k, _)| !is_schemas(k)) {
        let attr = schema.attribute(key).ok_or_else(|| {
            Error::InvalidSyntax(format!("{key:?} is not an attribute of {}", schema.id))
        })?;
        if attr.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = value_of(attr, value, attr.name, q)? {
            insert_once(&mut out, attr.name, v)?;
        }
    }
    Ok(out)
}

/// Validates one attribute's value; `None` means "no value".
pub fn value_of(
    attr: &Attribute,
    v: &Value,
    path: &str,
    q: &mut Quirks,
) -> Result<Option<Value>, Error> {
    if v.is_null() {
        return Ok(None);
    }
    // A complex value sent as a JSON string (Entra's AppRoleAssignmentsComplex roles).
    if attr.is_complex()
        && let Value::String(s) = v
        && matches!(s.trim_start().chars().next(), Some('{' | '['))
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s)
    {
        q.note(Quirk::JsonStringValue);
        let parsed = match parsed {
            Value::Object(_) if attr.multi_valued => Value::Array(vec![parsed]),
            other => other,
        };
        return value_of(attr, &parsed, path, q);
    }
    if attr.multi_valued {
        let items = v
            .as_array()
            .ok_or_else(|| Error::InvalidValue(format!("{path} must be an array")))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(x) = single(attr, item, path, q)? {
                out.push(x);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        check_multi(attr, &out, path)?;
        return Ok(Some(Value::Array(out)));
    }
    if attr.role == Role::Reference
        && let Some(id) = attr.default_sub()
    {
        // Microsoft Entra ID sends the manager as a bare id, or as a one-element list.
        match v {
            Value::String(s) if s.is_empty() => {
                q.note(Quirk::ManagerShape);
                return Ok(None);
            }
            Value::String(_) => {
                q.note(Quirk::ManagerShape);
                let mut wrapped = Map::new();
                wrapped.insert(id.name.to_string(), v.clone());
                return single(attr, &Value::Object(wrapped), path, q);
            }
            Value::Array(items) if items.len() <= 1 => {
                q.note(Quirk::ManagerShape);
                return match items.first() {
                    Some(item) => value_of(attr, item, path, q),
                    None => Ok(None),
                };
            }
            _ => {}
        }
    }
    single(attr, v, path, q)
}

fn single(attr: &Attribute, v: &Value, path: &str, q: &mut Quirks) -> Result<Option<Value>, Error> {
    let wrong = |what: &str| Error::InvalidValue(format!("{path} must be {what}, got {v}"));
    Ok(Some(match attr.ty {
        _ if v.is_null() => return Ok(None),
        Type::Complex => {
            let m = v.as_object().ok_or_else(|| wrong("an object"))?;
            let mut out = Map::new();
            for (key, value) in m {
                let sub = attr.sub(key).ok_or_else(|| {
                    Error::InvalidSyntax(format!("{key:?} is not a sub-attribute of {path}"))
                })?;
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(x) = value_of(sub, value, &format!("{path}.{}", sub.name), q)? {
                    insert_once(&mut out, sub.name, x)?;
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        Type::String | Type::Reference | Type::Binary => {
            if !v.is_string() {
                return Err(wrong("a string"));
            }
            v.clone()
        }
        Type::DateTime => {
            let s = v.as_str().ok_or_else(|| wrong("a date-time string"))?;
            if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                return Err(wrong("an RFC 3339 date-time such as 2026-01-31T12:00:00Z"));
            }
            v.clone()
        }
        Type::Boolean => {
            if v.is_string() {
                q.note(Quirk::StringBoolean);
            }
            Value::Bool(boolean(v).ok_or_else(|| wrong("true or false"))?)
        }
        Type::Integer => {
            if !(v.is_i64() || v.is_u64()) {
                return Err(wrong("an integer"));
            }
            v.clone()
        }
        Type::Decimal => {
            if !v.is_number() {
                return Err(wrong("a number"));
            }
            v.clone()
        }
    }))
}

/// A JSON boolean, or the strings "true"/"false" in any case (Microsoft Entra ID sends
/// "True" and "False").
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// RFC 7643 §2.4: at most one `primary: true`; and one value per `type` where types are keys.
/// (`primary` and `type` are the sub-attributes §2.4 defines for multi-valued attributes.)
fn check_multi(attr: &Attribute, values: &[Value], path: &str) -> Result<(), Error> {
    let primaries = values
        .iter()
        .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(Error::InvalidValue(format!(
            "{path}: {primaries} values are marked primary; at most one may be"
        )));
    }
    if attr.types_are_keys() {
        let mut seen: Vec<String> = Vec::new();
        for t in values
            .iter()
            .filter_map(|v| v.get("type").and_then(Value::as_str))
        {
            let t = t.to_lowercase();
            if seen.contains(&t) {
                return Err(Error::InvalidValue(format!(
                    "{path}: more than one value of type {t:?}; each type may appear once"
                )));
            }
            seen.push(t);
        }
    }
    Ok(())
}

/// The members in a `members` value. `type` and `$ref` are computed by the server and ignored;
/// `display` is kept as sent.
pub fn member_ids(attr: &Attribute, v: &Value) -> Result<Vec<Member>, Error> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(Error::InvalidValue(format!(
                "{} must be an array",
                attr.name
            )));
        }
    };
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut members = Vec::with_capacity(items.len());
    for item in items {
        let m = item.as_object().ok_or_else(|| {
            Error::InvalidValue(format!("each member must be an object, got {item}"))
        })?;
        let (mut value, mut display) = (None, None);
        for (key, sv) in m {
            let sub = attr.sub(key).ok_or_else(|| {
                Error::InvalidSyntax(format!("{key:?} is not a sub-attribute of {}", attr.name))
            })?;
            let text = || match sv {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(Error::InvalidValue(format!(
                    "{}.{} must be a string, got {sv}",
                    attr.name, sub.name
                ))),
            };
            match sub.role {
                Role::RefId => value = text()?,
                Role::RefDisplay => display = text()?,
                _ => {}
            }
        }
        let id = value.ok_or_else(|| {
            Error::InvalidValue("every member needs a value (the member's id)".into())
        })?;
        if seen.insert(id.clone()) {
            members.push(Member { id, display });
        }
    }
    Ok(members)
}

/// What a write does to the stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordUpdate {
    Keep,
    Set(String),
    Clear,
}

/// PUT may not change an immutable attribute that already has a value (RFC 7644 §3.5.1).
pub fn check_immutable(
    schema: &Schema,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Result<(), Error> {
    for attr in schema
        .attributes
        .iter()
        .filter(|a| a.mutability == Mutability::Immutable)
    {
        if let Some(before) = old.get(attr.name)
            && new.get(attr.name) != Some(before)
        {
            return Err(Error::Mutability(format!(
                "{} is immutable and cannot be changed",
                attr.name
            )));
        }
    }
    Ok(())
}

/// The weak ETag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` / `If-None-Match` header value names this version (`*` names any).
/// Tags compare by their opaque part, weak or not, as SCIM clients send back `meta.version`.
pub fn etag_matches(header: &str, version: i64) -> bool {
    let want = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == want)
}

/// A member of a group or a group of a user, as it appears in `members` / `groups`:
/// `type_` is "User"/"Group" for members and "direct"/"indirect" for groups.
pub fn reference(
    base: &str,
    id: &str,
    kind: ResourceKind,
    display: Option<&str>,
    type_: &str,
) -> Value {
    let mut v = json!({
        "value": id,
        "$ref": format!("{base}/{}/{id}", kind.endpoint()),
        "type": type_,
    });
    if let Some(d) = display {
        v["display"] = Value::from(d);
    }
    v
}

/// The parts of a stored resource `render` needs.
pub struct Stored<'a> {
    pub id: &'a str,
    pub doc: &'a Map<String, Value>,
    pub created: &'a str,
    pub modified: &'a str,
    pub version: i64,
    pub location: String,
}

/// The full SCIM representation: `schemas`, `id`, the stored attributes, computed `members`
/// (Group) or `groups` (User) when given, and `meta`.
pub fn render(
    kind: ResourceKind,
    r: &Stored<'_>,
    computed: Option<Vec<Value>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut schemas = vec![Value::from(kind.schema().id)];
    for ext in kind.extensions() {
        if r.doc.contains_key(ext.id) {
            schemas.push(Value::from(ext.id));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::from(r.id));
    for (k, v) in r.doc {
        out.insert(k.clone(), v.clone());
    }
    // An empty list is the same state as no value (RFC 7643 §2.5); leave it out.
    if let Some(values) = computed.filter(|v| !v.is_empty()) {
        let key = match kind {
            ResourceKind::User => "groups",
            ResourceKind::Group => "members",
        };
        out.insert(key.into(), Value::Array(values));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": r.created,
            "lastModified": r.modified,
            "location": r.location,
            "version": etag(r.version),
        }),
    );
    out
}

/// Bytes a JSON string cannot hold as they are: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The position of the first byte JSON escapes (a control character, `"` or `\`). Eight bytes
/// are tested at a time while none of them needs escaping; most strings need none at all.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `v` is below `n` (n <= 0x80): exact as a yes/no.
    let any_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if any_below(v, 0x20)
            || any_below(v ^ (ONES * u64::from(b'"')), 1)
            || any_below(v ^ (ONES * u64::from(b'\\')), 1)
        {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
        .map(|p| at + p)
}

/// Appends the inside of a JSON string literal for `s`, escaped exactly as serde_json does.
pub fn push_json_inner(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    while let Some(skip) = first_escape(&bytes[plain..]) {
        let at = plain + skip;
        out.push_str(&s[plain..at]);
        match bytes[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
        plain = at + 1;
    }
    out.push_str(&s[plain..]);
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_inner(out, s);
    out.push('"');
}

/// Appends one of scimd's own names (a schema URN, a resource type) as a JSON string literal:
/// they hold nothing JSON escapes.
fn push_plain_str(out: &mut String, s: &'static str) {
    debug_assert!(!s.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]));
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// Appends `"{base}/{Users|Groups}/{id}"` as a JSON string literal.
fn push_location(out: &mut String, base: &str, kind: ResourceKind, id: &str) {
    out.push('"');
    push_json_inner(out, base);
    out.push('/');
    out.push_str(kind.endpoint());
    out.push('/');
    push_json_inner(out, id);
    out.push('"');
}

/// Appends `reference(..)` as JSON text, without building a value.
pub fn push_reference(
    out: &mut String,
    base: &str,
    id: &str,
    kind: ResourceKind,
    display: Option<&str>,
    type_: &str,
) {
    out.push_str("{\"value\":");
    push_json_str(out, id);
    out.push_str(",\"$ref\":");
    push_location(out, base, kind, id);
    out.push_str(",\"type\":");
    push_json_str(out, type_);
    if let Some(d) = display {
        out.push_str(",\"display\":");
        push_json_str(out, d);
    }
    out.push('}');
}

/// Whether canonical JSON object text (as serde_json writes it: no whitespace) has the top-level
/// key `key`. A key follows `{` or `,` and is followed by `:`; inside a string value its quotes
/// would be escaped, so string content cannot match.
///
/// `finder` searches for `key`, built once beforehand: building one costs more than searching
/// a stored document with it.
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

/// Searchers for the schema URNs of `kind`'s extensions, in the order of `kind.extensions()`.
fn extension_finders(kind: ResourceKind) -> &'static [memchr::memmem::Finder<'static>] {
    type Finders = std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>>;
    fn build(kind: ResourceKind) -> Vec<memchr::memmem::Finder<'static>> {
        kind.extensions()
            .iter()
            .map(|e| memchr::memmem::Finder::new(e.id))
            .collect()
    }
    static USER: Finders = Finders::new(|| build(ResourceKind::User));
    static GROUP: Finders = Finders::new(|| build(ResourceKind::Group));
    match kind {
        ResourceKind::User => &USER,
        ResourceKind::Group => &GROUP,
    }
}

/// Appends `render` as JSON text, around a stored document given as its canonical JSON text,
/// without parsing it. `computed` is the JSON array text of `members`/`groups`, or empty when
/// there are none.
#[allow(clippy::too_many_arguments)]
pub fn write_text(
    out: &mut String,
    kind: ResourceKind,
    base: &str,
    id: &str,
    doc: &str,
    computed: &str,
    created: &str,
    modified: &str,
    version: i64,
) {
    out.reserve(doc.len() + computed.len() + 256);
    out.push_str("{\"schemas\":[");
    push_plain_str(out, kind.schema().id);
    for (ext, finder) in kind.extensions().iter().zip(extension_finders(kind)) {
        if has_top_level_key(doc, ext.id, finder) {
            out.push(',');
            push_plain_str(out, ext.id);
        }
    }
    out.push_str("],\"id\":");
    push_json_str(out, id);
    let inner = doc
        .strip_prefix('{')
        .and_then(|d| d.strip_suffix('}'))
        .unwrap_or_default();
    if !inner.is_empty() {
        out.push(',');
        out.push_str(inner);
    }
    if !computed.is_empty() {
        out.push_str(match kind {
            ResourceKind::User => ",\"groups\":",
            ResourceKind::Group => ",\"members\":",
        });
        out.push_str(computed);
    }
    out.push_str(",\"meta\":{\"resourceType\":");
    push_plain_str(out, kind.name());
    out.push_str(",\"created\":");
    push_json_str(out, created);
    out.push_str(",\"lastModified\":");
    push_json_str(out, modified);
    out.push_str(",\"location\":");
    push_location(out, base, kind, id);
    out.push_str(",\"version\":\"W/\\\"");
    let _ = write!(out, "{version}");
    out.push_str("\\\"\"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER, GROUP_SCHEMA};

    fn user(v: Value) -> Result<Prepared, Error> {
        prepare(ResourceKind::User, &v)
    }

    #[test]
    fn entra_create_body_is_kept_exactly() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_00aa00aa@contoso.com",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test.User@contoso.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "phoneNumbers": [{"type": "mobile", "value": "55555555555"}],
            "roles": [],
            "addresses": null,
            ENTERPRISE_USER: {"department": "R&D – Ünïcode", "employeeNumber": "007"}
        });
        let p = user(body.clone()).unwrap();
        assert_eq!(p.name, "Test_User_00aa00aa@contoso.com");
        assert_eq!(
            p.external_id.as_deref(),
            Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
        );
        for key in [
            "userName",
            "active",
            "emails",
            "name",
            "phoneNumbers",
            ENTERPRISE_USER,
        ] {
            assert_eq!(p.doc[key], body[key], "{key}");
        }
        assert!(
            !p.doc.contains_key("roles") && !p.doc.contains_key("addresses"),
            "no value"
        );
        assert!(!p.doc.contains_key("meta") && !p.doc.contains_key("schemas"));
    }

    #[test]
    fn names_are_canonical_and_strings_become_booleans() {
        let p = user(json!({
            "USERNAME": "bob",
            "Active": "False",
            "NAME": {"GivenName": "Bob"},
            "emails": [{"Value": "b@x", "Primary": "True"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "x"}
        }))
        .unwrap();
        assert_eq!(p.doc["userName"], "bob");
        assert_eq!(p.doc["active"], false);
        assert_eq!(p.doc["name"], json!({"givenName": "Bob"}));
        assert_eq!(p.doc["emails"], json!([{"value": "b@x", "primary": true}]));
        assert_eq!(p.doc[ENTERPRISE_USER], json!({"department": "x"}));
    }

    #[test]
    fn read_only_and_unknown_extensions_are_ignored() {
        let p = user(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom"],
            "userName": "a", "id": "client-chosen", "groups": [{"value": "g"}],
            "urn:example:custom": {"anything": 1},
            ENTERPRISE_USER: {"manager": {"value": "m1", "displayName": "ignored"}}
        }))
        .unwrap();
        assert_eq!(p.doc.len(), 2, "{:?}", p.doc);
        assert_eq!(p.doc[ENTERPRISE_USER], json!({"manager": {"value": "m1"}}));
    }

    #[test]
    fn manager_as_bare_id_or_list() {
        for m in [
            json!("m1"),
            json!([{"value": "m1"}]),
            json!({"value": "m1"}),
        ] {
            let p = user(json!({"userName": "a", ENTERPRISE_USER: {"manager": m}})).unwrap();
            assert_eq!(p.doc[ENTERPRISE_USER]["manager"], json!({"value": "m1"}));
        }
        let p = user(json!({"userName": "a", ENTERPRISE_USER: {"manager": ""}})).unwrap();
        assert!(!p.doc.contains_key(ENTERPRISE_USER));
    }

    #[test]
    fn password_is_split_off() {
        let p = user(json!({"userName": "a", "password": "s3cret"})).unwrap();
        assert_eq!(p.password.as_deref(), Some("s3cret"));
        assert!(!p.doc.contains_key("password"));
    }

    #[test]
    fn bad_input_names_the_problem() {
        let cases = [
            (json!([1]), "invalidSyntax"),
            (json!({"name": {"givenName": "x"}}), "invalidValue"),
            (json!({"userName": ""}), "invalidValue"),
            (json!({"userName": 5}), "invalidValue"),
            (json!({"userName": "a", "active": "yes"}), "invalidValue"),
            (
                json!({"userName": "a", "emails": {"value": "x"}}),
                "invalidValue",
            ),
            (json!({"userName": "a", "nickname": ["x"]}), "invalidValue"),
            (json!({"userName": "a", "shoeSize": 44}), "invalidSyntax"),
            (
                json!({"userName": "a", "name": {"nick": "x"}}),
                "invalidSyntax",
            ),
            (
                json!({"userName": "a", "schemas": "urn:x"}),
                "invalidSyntax",
            ),
            (json!({"userName": "a", "UserName": "b"}), "invalidSyntax"),
            (
                json!({"userName": "a", ENTERPRISE_USER: "x"}),
                "invalidSyntax",
            ),
            (
                json!({"userName": "a", "emails": [{"value": "1", "primary": true}, {"value": "2", "primary": "True"}]}),
                "invalidValue",
            ),
            (
                json!({"userName": "a", "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "Work"}]}),
                "invalidValue",
            ),
        ];
        for (body, scim_type) in cases {
            let err = user(body.clone()).unwrap_err();
            assert_eq!(err.scim_type(), scim_type, "{body}: {err}");
        }
    }

    #[test]
    fn untyped_and_distinctly_typed_values_are_fine() {
        let p = user(json!({"userName": "a",
            "emails": [{"value": "1"}, {"value": "2"}, {"value": "3", "type": "work"}, {"value": "4", "type": "home"}],
            "roles": [{"value": "r1", "type": "app"}, {"value": "r2", "type": "app"}]}))
        .unwrap();
        assert_eq!(p.doc["emails"].as_array().unwrap().len(), 4);
        assert_eq!(p.doc["roles"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn group_members_are_ids_without_duplicates() {
        let p = prepare(
            ResourceKind::Group,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "displayName": "Group1DisplayName",
                "externalId": "60f1bb27-2e1e-402d-bcc4-ec999564a194",
                "members": [{"value": "u1", "display": "x", "type": "User"}, {"value": "u2"}, {"value": "u1"}]
            }),
        )
        .unwrap();
        let ids: Vec<(&str, Option<&str>)> = p
            .members
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.id.as_str(), m.display.as_deref()))
            .collect();
        assert_eq!(ids, [("u1", Some("x")), ("u2", None)]);
        assert!(!p.doc.contains_key("members"));
        let err = prepare(
            ResourceKind::Group,
            &json!({"displayName": "g", "members": [{"display": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(err.scim_type(), "invalidValue");
        assert!(
            prepare(ResourceKind::Group, &json!({"members": []})).is_err(),
            "displayName required"
        );
    }

    #[test]
    fn immutable_attributes_cannot_change() {
        static S: Schema = Schema {
            id: "urn:test",
            name: "T",
            description: "",
            attributes: &[Attribute {
                mutability: Mutability::Immutable,
                ..GROUP_SCHEMA.attributes[0]
            }],
        };
        let old: Map<String, Value> = json!({"displayName": "a"}).as_object().unwrap().clone();
        let same = old.clone();
        let changed: Map<String, Value> = json!({"displayName": "b"}).as_object().unwrap().clone();
        assert!(check_immutable(&S, &old, &same).is_ok());
        assert_eq!(
            check_immutable(&S, &old, &changed).unwrap_err().scim_type(),
            "mutability"
        );
        assert!(check_immutable(&GROUP_SCHEMA, &old, &changed).is_ok());
    }

    #[test]
    fn text_rendering_equals_value_rendering() {
        let docs = [
            json!({"userName": "a"}),
            json!({"userName": "b", "title": "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":", ENTERPRISE_USER: {"department": "x"}}),
            json!({ENTERPRISE_USER: {"manager": {"value": "m"}}, "userName": "c", "emails": [{"value": "é@x"}]}),
            json!({"userName": "d", "nickName": ",\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":"}),
        ];
        for d in docs {
            let doc = d.as_object().unwrap().clone();
            let text = serde_json::to_string(&doc).unwrap();
            let groups = vec![reference(
                "http://b",
                "g1",
                ResourceKind::Group,
                Some("G"),
                "direct",
            )];
            for computed in [vec![], groups] {
                let stored = Stored {
                    id: "i\"d",
                    doc: &doc,
                    created: "c",
                    modified: "m",
                    version: 3,
                    location: "http://b/Users/i\"d".into(),
                };
                let by_value =
                    Value::Object(render(ResourceKind::User, &stored, Some(computed.clone())));
                let mut computed_text = String::new();
                if !computed.is_empty() {
                    computed_text = Value::Array(computed.clone()).to_string();
                }
                let mut by_text = String::new();
                write_text(
                    &mut by_text,
                    ResourceKind::User,
                    "http://b",
                    "i\"d",
                    &text,
                    &computed_text,
                    "c",
                    "m",
                    3,
                );
                assert_eq!(by_text, by_value.to_string(), "{d}");
            }
        }
    }

    #[test]
    fn first_escape_finds_every_escaped_byte_at_every_position() {
        let filler = "abcdefghijklmnopqrsté–𝄞xyz0123456789".as_bytes();
        for b in 0u8..=0x7f {
            for at in 0..filler.len() {
                let mut bytes = filler.to_vec();
                bytes[at] = b;
                let expected = bytes.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]);
                assert_eq!(first_escape(&bytes), expected, "byte {b:#x} at {at}");
                // One more at the end does not hide the first.
                bytes.push(b'"');
                let expected = bytes.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]);
                assert_eq!(
                    first_escape(&bytes),
                    expected,
                    "byte {b:#x} at {at}, quote at end"
                );
            }
        }
        assert_eq!(first_escape(b""), None);
        assert_eq!(first_escape("\u{80}\u{ff}ÿ€".as_bytes()), None);
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é – \u{2028} 𝄞 \\\" /");
        for s in [all.as_str(), "", "plain", "\"", "a\\b", "\u{7f}\u{1f}"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, Value::from(s).to_string(), "{s:?}");
        }
    }

    #[test]
    fn references_as_text_equal_references_as_values() {
        for display in [None, Some("G \"1\"")] {
            let mut out = String::new();
            push_reference(
                &mut out,
                "http://b/x",
                "g\n1",
                ResourceKind::Group,
                display,
                "direct",
            );
            let value = reference("http://b/x", "g\n1", ResourceKind::Group, display, "direct");
            assert_eq!(out, value.to_string());
        }
    }

    #[test]
    fn etags_match_weak_strong_and_star() {
        assert_eq!(etag(3), "W/\"3\"");
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(etag_matches("*", 3));
        assert!(!etag_matches("W/\"4\"", 3));
    }
}
