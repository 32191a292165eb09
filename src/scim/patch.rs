//! The PATCH engine (RFC 7644 §3.5.2), with the dialects real identity providers send: op names
//! in any case, no-path values whose keys are themselves paths, string booleans, typed value
//! paths that create the value they name (Microsoft Entra ID's upsert), the manager as a bare
//! id, and member removal by value list.
//!
//! Pure: it turns a stored document and a list of operations into a new document, plus the
//! membership changes the store applies row by row (so a group's members are never loaded).

use serde_json::{Map, Value};

use super::Error;
use super::filter::{self, AttrPath, CompValue, Filter, Op};
use super::quirks::{Quirk, Quirks};
use super::resource::unregistered;
use super::resource::{Member, PasswordUpdate, check_text, is_schemas, member_ids, value_of};
use super::schema::{self, Attribute, Mutability, ResourceType, Role, Unknown};

#[cfg(test)]
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub(crate) op: Kind,
    pub(crate) path: Option<String>,
    pub(crate) value: Option<Value>,
}

/// A change to a group's memberships, applied by the store in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MemberChange {
    Add(Vec<Member>),
    Remove(Vec<String>),
    /// Remove the members matching a filter on member sub-attributes (`members[...]`).
    RemoveWhere(Filter),
    Replace(Vec<Member>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Outcome {
    pub(crate) doc: Map<String, Value>,
    /// `Some(Some(pw))` sets a password, `Some(None)` removes it.
    pub(crate) password: Option<Option<String>>,
    pub(crate) members: Vec<MemberChange>,
    /// Non-standard shapes the operations used that were accepted.
    pub(crate) quirks: Quirks,
    /// What a run of `add` operations on one multi-valued attribute has seen.
    adds: AddIndex,
}

/// For a run of `add` operations on one multi-valued attribute: the canonical text of every
/// value it holds and which one is primary, so that each `add` costs the same however many came
/// before it (a PATCH of thousands of adds was quadratic, all of it inside the writer).
#[derive(Debug, Clone, PartialEq, Default)]
struct AddIndex {
    /// The attribute indexed (its extension URN, if any, and name); `None` when invalid.
    of: Option<(Option<&'static str>, &'static str)>,
    seen: std::collections::HashSet<String>,
    primary: Option<usize>,
    len: usize,
}

/// Whether a value of a multi-valued attribute is marked primary (RFC 7643 §2.4).
fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

/// JSON text of `v` with object keys sorted: equal values (which compare regardless of key
/// order) give equal text.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn canonical_text(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    out
}

impl Outcome {
    /// What the operations do to the stored password, given the hash of the password they set
    /// (hashed before the write, since argon2 is slow).
    pub(crate) fn password_update(&self, hash: Option<&str>) -> PasswordUpdate {
        match (&self.password, hash) {
            (None, _) | (Some(Some(_)), None) => PasswordUpdate::Keep,
            (Some(Some(_)), Some(h)) => PasswordUpdate::Set(h.to_string()),
            (Some(None), _) => PasswordUpdate::Clear,
        }
    }
}

fn invalid_path(msg: impl Into<String>) -> Error {
    Error::InvalidPath(msg.into())
}

fn syntax(msg: impl Into<String>) -> Error {
    Error::InvalidSyntax(msg.into())
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Refuses a PATCH with more operations than `max` (the `max_patch_operations` setting) before
/// any of them is applied.
pub(crate) fn check_count(ops: &[Operation], max: usize) -> Result<(), Error> {
    if ops.len() > max {
        return Err(Error::InvalidValue(format!(
            "a PATCH may carry at most {max} operations (the server's max_patch_operations); \
             this one has {}: send them in several requests",
            ops.len()
        )));
    }
    Ok(())
}

/// Parses a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, Error> {
    let obj = body
        .as_object()
        .ok_or_else(|| syntax("a PATCH body must be a JSON object"))?;
    let ops = field(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("a PATCH body needs an \"Operations\" array"))?;
    if ops.is_empty() {
        return Err(syntax("\"Operations\" is empty"));
    }
    ops.iter()
        .map(|o| {
            let o = o
                .as_object()
                .ok_or_else(|| syntax(format!("each operation must be an object, got {o}")))?;
            let op = match field(o, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => Kind::Add,
                Some("replace") => Kind::Replace,
                Some("remove") => Kind::Remove,
                other => {
                    return Err(syntax(format!(
                        "op must be add, replace or remove, got {other:?}"
                    )));
                }
            };
            let path = match field(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.trim().to_string()),
                Some(v) => return Err(invalid_path(format!("path must be a string, got {v}"))),
            };
            let value = field(o, "value").cloned();
            if op != Kind::Remove && value.is_none() {
                return Err(syntax(
                    format!("a {op:?} operation needs a value").to_lowercase(),
                ));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// A resolved PATCH path.
#[derive(Debug, Clone)]
struct Target {
    /// The extension holding the attribute, if any.
    ext: Option<&'static str>,
    attr: &'static Attribute,
    filter: Option<Filter>,
    sub: Option<&'static Attribute>,
}

/// What a path names: the resource's `externalId`, a whole extension, or an attribute.
enum Resolved {
    ExternalId,
    Extension(&'static super::schema::Schema),
    Attr(Target),
    /// In a schema the provider has not registered, which it ignores.
    Ignored,
}

fn resolve(rt: &ResourceType, path: &str) -> Result<Resolved, Error> {
    let bad = |why: &str| invalid_path(format!("{path:?}: {why}"));
    let (head, filter, tail) = match path.find('[') {
        Some(open) => {
            let close = path.rfind(']').ok_or_else(|| bad("unclosed '['"))?;
            if close < open {
                return Err(bad("unbalanced brackets"));
            }
            let inner = filter::parse(&path[open + 1..close]).map_err(|e| bad(&e.to_string()))?;
            let rest = &path[close + 1..];
            let tail = match rest {
                "" => None,
                r => Some(
                    r.strip_prefix('.')
                        .ok_or_else(|| bad("expected '.' after ']'"))?,
                ),
            };
            (&path[..open], Some(inner), tail)
        }
        None => (path, None, None),
    };
    let ap = filter::parse_attr_path(head).map_err(|_| bad("not an attribute path"))?;
    let (schema, ext) = match &ap.uri {
        None => (rt.schema(), None),
        Some(u) if u.eq_ignore_ascii_case(rt.schema().id) => (rt.schema(), None),
        Some(u) => {
            // The longest registered URN the path starts with: the whole path first (the
            // whole extension, e.g. "urn:...:enterprise:2.0:User"), then all but its last part.
            let whole = (ap.sub.is_none() && filter.is_none())
                .then(|| rt.extension(&format!("{u}:{}", ap.attr)))
                .flatten();
            if let Some(e) = whole {
                return Ok(Resolved::Extension(e));
            } else if let Some(e) = rt.extension(u) {
                (e, Some(e.id))
            } else if rt.unknown() == Unknown::Ignore {
                return Ok(Resolved::Ignored);
            } else {
                return Err(invalid_path(unregistered(path)));
            }
        }
    };
    if ext.is_none()
        && let Some(common) = schema::common(&ap.attr)
    {
        let whole = ap.sub.is_none() && filter.is_none();
        return match common.role {
            Role::ExternalId if whole => Ok(Resolved::ExternalId),
            _ if whole => Err(Error::Mutability(format!("{} cannot be changed", ap.attr))),
            Role::Meta => Err(Error::Mutability(format!(
                "{} cannot be changed",
                common.name
            ))),
            _ => Err(bad("unknown attribute")),
        };
    }
    let (ext, attr) = match ext {
        Some(e) => (
            Some(e),
            schema
                .attribute(&ap.attr)
                .ok_or_else(|| bad("unknown attribute"))?,
        ),
        None if ap.uri.is_some() => (
            None,
            schema
                .attribute(&ap.attr)
                .ok_or_else(|| bad("unknown attribute"))?,
        ),
        None => rt
            .locate(None, &ap.attr)
            .ok_or_else(|| bad("unknown attribute"))?,
    };
    let sub_name = match (ap.sub.as_deref(), tail) {
        (Some(_), Some(_)) => return Err(bad("too many sub-attributes")),
        (s, t) => s.or(t),
    };
    let sub = match sub_name {
        None => None,
        Some(s) => Some(attr.sub(s).ok_or_else(|| bad("unknown sub-attribute"))?),
    };
    if sub.is_some() && !attr.is_complex() {
        return Err(bad("only complex attributes have sub-attributes"));
    }
    if let Some(f) = &filter {
        if !attr.is_complex() {
            return Err(bad("a value filter needs a complex attribute"));
        }
        // Check the filter's sub-attributes against the attribute.
        let wrapped = Filter::ValuePath(
            AttrPath {
                uri: ext.map(str::to_string),
                attr: attr.name.into(),
                sub: None,
            },
            Box::new(f.clone()),
        );
        filter::check(rt, &wrapped).map_err(|e| bad(&e.to_string()))?;
    }
    if attr.mutability == Mutability::ReadOnly
        || sub.is_some_and(|s| s.mutability == Mutability::ReadOnly)
    {
        return Err(Error::Mutability(format!("{} is read-only", attr.name)));
    }
    Ok(Resolved::Attr(Target {
        ext,
        attr,
        filter,
        sub,
    }))
}

/// Applies `ops` to a stored document. The result still has to pass the same validation as a
/// PUT body (`resource::prepare`).
pub(crate) fn apply(
    rt: &ResourceType,
    doc: &Map<String, Value>,
    ops: &[Operation],
) -> Result<Outcome, Error> {
    let mut out = Outcome {
        doc: doc.clone(),
        ..Outcome::default()
    };
    for op in ops {
        match &op.path {
            None => apply_without_path(rt, &mut out, op)?,
            Some(path) => {
                let resolved = resolve(rt, path)?;
                apply_at(rt, &mut out, op.op, resolved, op.value.as_ref())?;
            }
        }
    }
    Ok(out)
}

/// `add`/`replace` without a path: the value is an object whose keys are attributes, extension
/// objects, or (Entra) paths such as "name.givenName" or "urn:...:User:employeeNumber".
fn apply_without_path(rt: &ResourceType, out: &mut Outcome, op: &Operation) -> Result<(), Error> {
    if op.op == Kind::Remove {
        return Err(Error::NoTarget("remove needs a path".into()));
    }
    let value = op
        .value
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::InvalidValue("without a path, the value must be an object of attributes".into())
        })?;
    for (key, v) in value {
        if schema::common(key).is_some_and(|a| a.mutability == Mutability::ReadOnly) {
            // Echoed read-only attributes (schemas, id, meta) are ignored, as in a PUT.
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            if !v.is_null() {
                apply_at(rt, out, op.op, Resolved::Extension(ext), Some(v))?;
            }
            continue;
        }
        if key.contains('.') || key.starts_with("urn:") {
            out.quirks.note(Quirk::PathKeysInValue);
        }
        let resolved = resolve(rt, key)?;
        apply_at(rt, out, op.op, resolved, Some(v))?;
    }
    Ok(())
}

/// The map holding `t.attr`: the document, or the extension object inside it.
fn container<'a>(
    doc: &'a mut Map<String, Value>,
    ext: Option<&'static str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    match ext {
        None => Some(doc),
        Some(e) => {
            if create && !doc.get(e).is_some_and(Value::is_object) {
                doc.insert(e.into(), Value::Object(Map::new()));
            }
            doc.get_mut(e).and_then(Value::as_object_mut)
        }
    }
}

/// Drops an extension object left empty.
fn tidy(doc: &mut Map<String, Value>, ext: Option<&'static str>) {
    if let Some(e) = ext
        && doc
            .get(e)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        doc.remove(e);
    }
}

fn is_clear(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn apply_at(
    rt: &ResourceType,
    out: &mut Outcome,
    op: Kind,
    r: Resolved,
    value: Option<&Value>,
) -> Result<(), Error> {
    // Only plain adds to a multi-valued attribute keep the add index; anything else may change
    // what it describes.
    let plain_add = matches!(&r, Resolved::Attr(t)
        if op == Kind::Add && t.attr.multi_valued && t.filter.is_none() && t.sub.is_none());
    if !plain_add {
        out.adds.of = None;
    }
    let t = match r {
        Resolved::Ignored => {
            out.quirks.note(Quirk::UnknownSchema);
            return Ok(());
        }
        Resolved::ExternalId => {
            match (op, value) {
                (Kind::Remove, _) | (_, None | Some(Value::Null)) => {
                    out.doc.remove(schema::EXTERNAL_ID.name);
                }
                (_, Some(v @ Value::String(s))) => {
                    check_text(&schema::EXTERNAL_ID, s, schema::EXTERNAL_ID.name)?;
                    out.doc.insert(schema::EXTERNAL_ID.name.into(), v.clone());
                }
                (_, Some(v)) => {
                    return Err(Error::InvalidValue(format!(
                        "{} must be a string, got {v}",
                        schema::EXTERNAL_ID.name
                    )));
                }
            }
            return Ok(());
        }
        Resolved::Extension(ext) => {
            match (op, value) {
                (Kind::Remove, _) | (_, None | Some(Value::Null)) => {
                    out.doc.remove(ext.id);
                }
                // add and replace set the attributes given and leave the others.
                (_, Some(Value::Object(attrs))) => {
                    for (key, v) in attrs.iter().filter(|(k, _)| !is_schemas(k)) {
                        let resolved = resolve(rt, &format!("{}:{key}", ext.id))?;
                        apply_at(rt, out, op, resolved, Some(v))?;
                    }
                }
                (_, Some(v)) => {
                    return Err(Error::InvalidValue(format!(
                        "{} must be an object, got {v}",
                        ext.id
                    )));
                }
            }
            return Ok(());
        }
        Resolved::Attr(t) => t,
    };
    if t.attr.role == Role::Secret {
        out.password = Some(match (op, value) {
            (Kind::Remove, _) | (_, None | Some(Value::Null)) => None,
            (_, Some(Value::String(s))) => {
                check_text(t.attr, s, t.attr.name)?;
                Some(s.clone())
            }
            (_, Some(v)) => {
                return Err(Error::InvalidValue(format!(
                    "{} must be a string, got {v}",
                    t.attr.name
                )));
            }
        });
        return Ok(());
    }
    if t.attr.role == Role::Relation {
        return members(out, op, &t, value);
    }
    let path = t.attr.name;
    if t.attr.multi_valued {
        return multi(rt, out, op, &t, value);
    }
    if let Some(f) = &t.filter {
        // A value filter on a single-valued complex attribute: Entra removes the manager with
        // `manager[value eq "<id>"]`. Only removal makes sense; it applies when the value matches.
        if op != Kind::Remove {
            return Err(invalid_path(format!("{path}[...] can only be removed")));
        }
        if t.attr.role == Role::Reference {
            out.quirks.note(Quirk::ManagerValueFilter);
        }
        let current = container(&mut out.doc, t.ext, false).and_then(|m| m.get(path).cloned());
        let Some(current) = current else {
            return Ok(());
        };
        if !element_matches(rt, &t, f, &current) {
            return Ok(());
        }
    }
    // Only a remove finds no extension object, and then there is nothing to remove.
    let Some(map) = container(&mut out.doc, t.ext, op != Kind::Remove) else {
        return Ok(());
    };
    match (op, t.sub) {
        (Kind::Remove, None) => {
            map.remove(path);
        }
        (Kind::Remove, Some(sub)) => {
            if let Some(Value::Object(parent)) = map.get_mut(path) {
                parent.remove(sub.name);
                if parent.is_empty() {
                    map.remove(path);
                }
            }
        }
        (_, None) => {
            let v = if is_clear(value) {
                None
            } else {
                value_of(t.attr, value.unwrap_or(&Value::Null), path, &mut out.quirks)?
            };
            match v {
                None => {
                    map.remove(path);
                }
                // add and replace both merge the given sub-attributes of a complex attribute
                // (RFC 7644 §3.5.2.1 and §3.5.2.3); others are set.
                Some(Value::Object(new)) if t.attr.is_complex() => {
                    let entry = map.entry(path).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(existing) = entry {
                        for (k, v) in new {
                            existing.insert(k, v);
                        }
                    } else {
                        *entry = Value::Object(new);
                    }
                }
                Some(v) => {
                    map.insert(path.into(), v);
                }
            }
        }
        (_, Some(sub)) => {
            let v = if is_clear(value) {
                None
            } else {
                value_of(
                    sub,
                    value.unwrap_or(&Value::Null),
                    &format!("{path}.{}", sub.name),
                    &mut out.quirks,
                )?
            };
            match v {
                None => {
                    if let Some(Value::Object(parent)) = map.get_mut(path) {
                        parent.remove(sub.name);
                        if parent.is_empty() {
                            map.remove(path);
                        }
                    }
                }
                Some(v) => {
                    let entry = map.entry(path).or_insert_with(|| Value::Object(Map::new()));
                    match entry {
                        Value::Object(parent) => {
                            parent.insert(sub.name.into(), v);
                        }
                        other => {
                            *other =
                                Value::Object([(sub.name.to_string(), v)].into_iter().collect())
                        }
                    }
                }
            }
        }
    }
    tidy(&mut out.doc, t.ext);
    Ok(())
}

/// The values of a multi-valued attribute given in a request (an array, or one value).
fn values_of(
    attr: &'static Attribute,
    v: &Value,
    path: &str,
    q: &mut Quirks,
) -> Result<Vec<Value>, Error> {
    // One value may come bare; a string goes through as it is (it may hold JSON).
    let arr = match v {
        Value::Object(_) => Value::Array(vec![v.clone()]),
        other => other.clone(),
    };
    Ok(match value_of(attr, &arr, path, q)? {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    })
}

/// The sub-attribute values a filter of `eq` tests pins down, for creating the value a typed
/// path names (`emails[type eq "work"]` creates `{"type": "work"}`). `None` when the filter
/// is anything else.
fn upsert_seed(attr: &'static Attribute, f: &Filter) -> Option<Map<String, Value>> {
    fn go(attr: &'static Attribute, f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => go(attr, a, out) && go(attr, b, out),
            Filter::Compare(p, Op::Eq, v) if p.uri.is_none() && p.sub.is_none() => {
                let Some(sub) = attr.sub(&p.attr) else {
                    return false;
                };
                let json = match v {
                    CompValue::Str(s) => Value::from(s.as_str()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Num(n) => Value::Number(n.clone()),
                    CompValue::Null | CompValue::Phone(_) => return false,
                };
                out.insert(sub.name.into(), json);
                true
            }
            _ => false,
        }
    }
    let mut out = Map::new();
    go(attr, f, &mut out).then_some(out)
}

/// Whether one value of `attr` matches a value filter, evaluated as `attr[f]` on a resource
/// holding only that value.
fn element_matches(rt: &ResourceType, t: &Target, f: &Filter, element: &Value) -> bool {
    let mut wrapper = Map::new();
    let holder = Value::Array(vec![element.clone()]);
    match t.ext {
        None => {
            wrapper.insert(t.attr.name.into(), holder);
        }
        Some(e) => {
            wrapper.insert(e.into(), serde_json::json!({ t.attr.name: holder }));
        }
    }
    let wrapped = Filter::ValuePath(
        AttrPath {
            uri: t.ext.map(str::to_string),
            attr: t.attr.name.into(),
            sub: None,
        },
        Box::new(f.clone()),
    );
    filter::matches(rt, &wrapped, &Value::Object(wrapper))
}

/// Demotes every other value when `keep` holds a value marked primary (RFC 7644 §3.5.2).
fn demote_others(items: &mut [Value], keep: &[usize]) {
    let promoted = keep
        .iter()
        .any(|i| items.get(*i).and_then(|v| v.get("primary")) == Some(&Value::Bool(true)));
    if !promoted {
        return;
    }
    for (i, v) in items.iter_mut().enumerate() {
        if !keep.contains(&i)
            && let Some(o) = v.as_object_mut()
            && o.get("primary") == Some(&Value::Bool(true))
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

fn multi(
    rt: &ResourceType,
    out: &mut Outcome,
    op: Kind,
    t: &Target,
    value: Option<&Value>,
) -> Result<(), Error> {
    let attr = t.attr;
    let path = attr.name;
    // Only a remove finds no extension object, and then there is nothing to remove.
    let Some(map) = container(&mut out.doc, t.ext, op != Kind::Remove) else {
        return Ok(());
    };
    // Taken out rather than copied (put back by `finish`); a failing operation fails the
    // whole request, so nothing half-done is kept.
    let mut items: Vec<Value> = match map.get_mut(path) {
        Some(Value::Array(a)) => std::mem::take(a),
        _ => Vec::new(),
    };
    match (&t.filter, t.sub, op) {
        // Whole attribute: adds what is not there yet; an added primary value demotes the
        // one before (RFC 7644 §3.5.2.1). Costs the size of the values added.
        (None, None, Kind::Add) => {
            if !is_clear(value) {
                let new = values_of(attr, value.unwrap_or(&Value::Null), path, &mut out.quirks)?;
                let index = &mut out.adds;
                if index.of != Some((t.ext, path)) || index.len != items.len() {
                    index.seen = items.iter().map(canonical_text).collect();
                    index.primary = items.iter().rposition(is_primary);
                    index.of = Some((t.ext, path));
                }
                let start = items.len();
                for v in new {
                    if index.seen.insert(canonical_text(&v)) {
                        if is_primary(&v) {
                            if let Some(before) = index.primary.filter(|p| *p < start) {
                                index.seen.remove(&canonical_text(&items[before]));
                                if let Some(o) = items[before].as_object_mut() {
                                    o.insert("primary".into(), Value::Bool(false));
                                }
                                index.seen.insert(canonical_text(&items[before]));
                            }
                            index.primary = Some(items.len());
                        }
                        items.push(v);
                    }
                }
                index.len = items.len();
            }
        }
        (None, None, Kind::Replace) => {
            items = if is_clear(value) {
                Vec::new()
            } else {
                values_of(attr, value.unwrap_or(&Value::Null), path, &mut out.quirks)?
            };
        }
        (None, None, Kind::Remove) => match value {
            // Remove only the values listed (matched by their "value"), never all of them.
            Some(Value::Array(listed)) if !listed.is_empty() => {
                let key = attr.default_sub().map_or("", |s| s.name);
                let keys: Vec<&Value> = listed.iter().filter_map(|l| l.get(key)).collect();
                items.retain(|i| !i.get(key).is_some_and(|v| keys.contains(&v)));
            }
            _ => items.clear(),
        },
        // A sub-attribute of every value, e.g. "emails.type".
        (None, Some(sub), _) => {
            let sv = match op {
                Kind::Remove => None,
                _ if is_clear(value) => None,
                _ => value_of(
                    sub,
                    value.unwrap_or(&Value::Null),
                    &format!("{path}.{}", sub.name),
                    &mut out.quirks,
                )?,
            };
            if items.is_empty() && sv.is_some() {
                items.push(Value::Object(Map::new()));
            }
            for item in items.iter_mut() {
                if let Some(o) = item.as_object_mut() {
                    match &sv {
                        Some(v) => {
                            o.insert(sub.name.into(), v.clone());
                        }
                        None => {
                            o.remove(sub.name);
                        }
                    }
                }
            }
            items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
        }
        // Values selected by a filter.
        (Some(f), sub, _) => {
            let hits: Vec<usize> = (0..items.len())
                .filter(|i| element_matches(rt, t, f, &items[*i]))
                .collect();
            match op {
                Kind::Remove => match sub {
                    None => {
                        let mut i = 0;
                        items.retain(|_| {
                            i += 1;
                            !hits.contains(&(i - 1))
                        });
                    }
                    Some(s) => {
                        for i in &hits {
                            if let Some(o) = items[*i].as_object_mut() {
                                o.remove(s.name);
                            }
                        }
                        items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
                    }
                },
                Kind::Add | Kind::Replace => {
                    // The value (or sub-attribute value) to write, validated.
                    let new_element = |base: Map<String, Value>,
                                       q: &mut Quirks|
                     -> Result<Option<Value>, Error> {
                        let mut el = base;
                        match sub {
                            Some(s) => {
                                let sv = if is_clear(value) {
                                    None
                                } else {
                                    value_of(
                                        s,
                                        value.unwrap_or(&Value::Null),
                                        &format!("{path}.{}", s.name),
                                        q,
                                    )?
                                };
                                match sv {
                                    Some(v) => {
                                        el.insert(s.name.into(), v);
                                    }
                                    None => {
                                        el.remove(s.name);
                                    }
                                }
                            }
                            None => {
                                let given = match value {
                                    Some(Value::Object(o)) => o.clone(),
                                    _ if is_clear(value) => Map::new(),
                                    Some(v) => {
                                        return Err(Error::InvalidValue(format!(
                                            "{path}[...] needs an object value, got {v}"
                                        )));
                                    }
                                    None => Map::new(),
                                };
                                for (k, v) in given {
                                    el.insert(k, v);
                                }
                            }
                        }
                        let checked =
                            value_of(attr, &Value::Array(vec![Value::Object(el)]), path, q)?;
                        Ok(checked.and_then(|v| v.as_array().and_then(|a| a.first().cloned())))
                    };
                    if hits.is_empty() {
                        if is_clear(value) {
                            return finish(out, t, items);
                        }
                        // Entra sends typed paths for values that do not exist yet and expects
                        // them created; possible when the filter pins the value down with eq.
                        let seed = upsert_seed(attr, f).ok_or_else(|| {
                            Error::NoTarget(format!("no value of {path} matches the filter"))
                        })?;
                        out.quirks.note(Quirk::TypedPathUpsert);
                        if let Some(v) = new_element(seed, &mut out.quirks)? {
                            items.push(v);
                            let last = items.len() - 1;
                            demote_others(&mut items, &[last]);
                        }
                    } else {
                        let mut keep = Vec::new();
                        for i in hits.iter().rev() {
                            let base = match (op, sub) {
                                // replace without a sub-attribute replaces the whole value
                                (Kind::Replace, None) => upsert_seed(attr, f).unwrap_or_default(),
                                _ => items[*i].as_object().cloned().unwrap_or_default(),
                            };
                            match new_element(base, &mut out.quirks)? {
                                Some(v) => {
                                    items[*i] = v;
                                    keep.push(*i);
                                }
                                None => {
                                    items.remove(*i);
                                }
                            }
                        }
                        demote_others(&mut items, &keep);
                    }
                }
            }
        }
    }
    finish(out, t, items)
}

fn finish(out: &mut Outcome, t: &Target, items: Vec<Value>) -> Result<(), Error> {
    if let Some(map) = container(&mut out.doc, t.ext, !items.is_empty()) {
        if items.is_empty() {
            map.remove(t.attr.name);
        } else {
            map.insert(t.attr.name.into(), Value::Array(items));
        }
    }
    tidy(&mut out.doc, t.ext);
    Ok(())
}

/// The members in a `members` value: an array of `{"value": id}` (or one such object).
fn members_in(attr: &'static Attribute, v: Option<&Value>) -> Result<Vec<Member>, Error> {
    match v {
        None => Ok(Vec::new()),
        Some(o @ Value::Object(_)) => member_ids(attr, &Value::Array(vec![o.clone()])),
        Some(other) => member_ids(attr, other),
    }
}

fn members(out: &mut Outcome, op: Kind, t: &Target, value: Option<&Value>) -> Result<(), Error> {
    let name = t.attr.name;
    if t.sub.is_some() {
        return Err(invalid_path(format!(
            "{name}' sub-attributes are immutable: add or remove {name} instead"
        )));
    }
    let id = t.attr.sub_with(Role::RefId).map_or("", |s| s.name);
    let change = match (&t.filter, op) {
        (None, Kind::Add) => MemberChange::Add(members_in(t.attr, value)?),
        (None, Kind::Replace) => MemberChange::Replace(members_in(t.attr, value)?),
        (None, Kind::Remove) => match members_in(t.attr, value)? {
            // Entra's default dialect lists the members to remove; never read that as "all".
            listed if !listed.is_empty() => {
                out.quirks.note(Quirk::MemberRemoveByValue);
                MemberChange::Remove(listed.into_iter().map(|m| m.id).collect())
            }
            _ => MemberChange::Replace(Vec::new()),
        },
        (Some(f), Kind::Remove) => match value_eqs(f, id) {
            Some(ids) => MemberChange::Remove(ids),
            None => MemberChange::RemoveWhere(f.clone()),
        },
        (Some(_), _) => {
            return Err(invalid_path(format!(
                "{name}[...] can only be removed; add {name} with path \"{name}\""
            )));
        }
    };
    out.members.push(change);
    Ok(())
}

/// `value eq "a"` or `value eq "a" or value eq "b"` (`id` is the sub-attribute holding a
/// member's id): the ids named.
fn value_eqs(f: &Filter, id: &str) -> Option<Vec<String>> {
    match f {
        Filter::Compare(p, Op::Eq, CompValue::Str(s))
            if p.uri.is_none() && p.sub.is_none() && p.attr.eq_ignore_ascii_case(id) =>
        {
            Some(vec![s.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = value_eqs(a, id)?;
            ids.extend(value_eqs(b, id)?);
            Some(ids)
        }
        _ => None,
    }
}

/// The password a request sets, if any, so it can be hashed before the write transaction.
/// The schema URNs the operations name: paths, and keys of path-less values, that start with
/// `urn:`.
pub(crate) fn urns(ops: &[Operation]) -> impl Iterator<Item = &str> {
    let is_urn = |k: &&str| k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    ops.iter().flat_map(move |op| {
        let path = op.path.as_deref().filter(is_urn);
        let keys = match (&op.path, &op.value) {
            (None, Some(Value::Object(o))) => Some(o.keys().map(String::as_str).filter(is_urn)),
            _ => None,
        };
        path.into_iter().chain(keys.into_iter().flatten())
    })
}

pub(crate) fn password_in(rt: &ResourceType, ops: &[Operation]) -> Option<String> {
    let mut found = None;
    for op in ops {
        match (&op.path, &op.value) {
            (Some(p), Some(Value::String(s))) if matches!(resolve(rt, p), Ok(Resolved::Attr(t)) if t.attr.role == Role::Secret) =>
            {
                found = Some(s.clone());
            }
            (None, Some(Value::Object(o))) => {
                let secret = rt
                    .schema()
                    .attributes
                    .iter()
                    .find(|a| a.role == Role::Secret);
                if let Some(Value::String(s)) = secret.and_then(|a| field(o, a.name)) {
                    found = Some(s.clone());
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::prepare;
    use crate::scim::schema::ENTERPRISE_USER;
    use crate::scim::schema::ResourceKind;
    use serde_json::json;

    fn member(id: &str, display: Option<&str>) -> Member {
        Member {
            id: id.into(),
            display: display.map(Into::into),
        }
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn run(kind: &ResourceType, start: Value, ops: Value) -> Result<Outcome, Error> {
        let ops = parse_request(&json!({"schemas": [PATCH_OP], "Operations": ops}))?;
        let out = apply(kind, &doc(start), &ops)?;
        // The result must pass the same validation as a PUT.
        prepare(kind, &Value::Object(out.doc.clone()))?;
        Ok(out)
    }

    fn user(start: Value, ops: Value) -> Map<String, Value> {
        run(ResourceKind::User.builtin(), start, ops)
            .unwrap_or_else(|e| panic!("{e}"))
            .doc
    }

    fn user_err(start: Value, ops: Value) -> String {
        let e = run(ResourceKind::User.builtin(), start, ops).expect_err("should fail");
        e.scim_type().to_string()
    }

    #[test]
    fn entra_default_dialect() {
        let start = json!({"userName": "a@contoso.com", "active": true,
            "emails": [{"type": "work", "value": "a@contoso.com", "primary": true}],
            "name": {"givenName": "A", "familyName": "B"}});
        let d = user(
            start.clone(),
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updated@contoso.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "nickName", "value": "Babs"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "userName", "value": "renamed@contoso.com"}
            ]),
        );
        assert_eq!(
            d["emails"],
            json!([{"type": "work", "value": "updated@contoso.com", "primary": true}])
        );
        assert_eq!(
            d["name"],
            json!({"givenName": "A", "familyName": "updatedFamilyName"})
        );
        assert_eq!(d["nickName"], "Babs");
        assert_eq!(d[ENTERPRISE_USER], json!({"employeeNumber": "42"}));
        assert_eq!(d["active"], false);
        assert_eq!(d["userName"], "renamed@contoso.com");
        let d = user(
            start,
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        );
        assert_eq!(d["active"], true);
    }

    #[test]
    fn entra_aadoptscim062020_dialect() {
        let start = json!({"userName": "a", "active": true, "name": {"givenName": "A"}});
        let d = user(
            start,
            json!([
                {"op": "replace", "value": {
                    "displayName": "Bjfe", "name.givenName": "Kkom", "name.familyName": "Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
                    "active": false
                }},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x.com"}
            ]),
        );
        assert_eq!(d["displayName"], "Bjfe");
        assert_eq!(
            d["name"],
            json!({"givenName": "Kkom", "familyName": "Unua"})
        );
        assert_eq!(d[ENTERPRISE_USER], json!({"employeeNumber": "Aklq"}));
        assert_eq!(d["active"], false);
        assert_eq!(
            d["emails"],
            json!([{"type": "work", "value": "new@x.com"}]),
            "typed path upserts"
        );
    }

    #[test]
    fn typed_paths_upsert_for_add_and_replace() {
        let d = user(
            json!({"userName": "a", "phoneNumbers": [{"type": "work", "value": "1"}]}),
            json!([
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "55555555555"},
                {"op": "Replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
                {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"}
            ]),
        );
        assert_eq!(
            d["phoneNumbers"],
            json!([{"type": "work", "value": "1"}, {"type": "mobile", "value": "55555555555"}])
        );
        assert_eq!(
            d["addresses"],
            json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
        );
        // A filter that does not pin a value down cannot create one.
        let e = user_err(
            json!({"userName": "a"}),
            json!([
                {"op": "replace", "path": "emails[value co \"x\"].type", "value": "work"}
            ]),
        );
        assert_eq!(e, "noTarget");
    }

    #[test]
    fn typed_paths_replace_every_value_of_the_type_and_create_only_when_none_has_it() {
        let two_work = json!({"userName": "a", "emails": [
            {"type": "work", "value": "a@x"}, {"type": "home", "value": "h@x"}, {"type": "work", "value": "b@x"}]});
        let d = user(
            two_work,
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "c@x"}]),
        );
        assert_eq!(
            d["emails"],
            json!([{"type": "work", "value": "c@x"}, {"type": "home", "value": "h@x"}, {"type": "work", "value": "c@x"}])
        );
        let d = user(
            json!({"userName": "a", "emails": [{"type": "home", "value": "h@x"}]}),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@x"}]),
        );
        assert_eq!(
            d["emails"],
            json!([{"type": "home", "value": "h@x"}, {"type": "work", "value": "w@x"}])
        );
        // Adding a second value of a type already present keeps both (RFC 7643 allows it).
        let d = user(
            json!({"userName": "a", "emails": [{"type": "work", "value": "1"}]}),
            json!([{"op": "add", "path": "emails", "value": [{"type": "work", "value": "2"}]}]),
        );
        assert_eq!(
            d["emails"],
            json!([{"type": "work", "value": "1"}, {"type": "work", "value": "2"}])
        );
    }

    #[test]
    fn a_path_resolves_by_the_longest_registered_urn() {
        let read = |text: &str| {
            crate::scim::extension::parse(text, &[])
                .unwrap_or_else(|e| panic!("{e}"))
                .schema
        };
        let outer =
            read(r#"{"id": "urn:acme:ext", "attributes": [{"name": "inner", "type": "string"}]}"#);
        let inner = read(
            r#"{"id": "urn:acme:ext:inner", "attributes": [{"name": "x", "type": "string"}]}"#,
        );
        let reg = |schema| schema::Registered {
            kind: ResourceKind::User,
            schema,
            indexed: Vec::new(),
        };
        let model = schema::Model::for_provider(1, Unknown::Reject, &[reg(outer), reg(inner)]);
        let rt = model.get(ResourceKind::User);
        let out = run(
            rt,
            json!({"userName": "a"}),
            json!([
                {"op": "add", "path": "urn:acme:ext:inner", "value": {"x": "whole"}},
                {"op": "add", "path": "urn:acme:ext:inner:x", "value": "attr"},
                {"op": "add", "path": "urn:acme:ext:inner.y", "value": "no such sub"}
            ]),
        );
        assert!(out.is_err(), "inner has no sub-attribute y");
        let out = run(
            rt,
            json!({"userName": "a"}),
            json!([
                {"op": "add", "path": "urn:acme:ext:inner", "value": {"x": "whole"}},
                {"op": "add", "path": "urn:acme:ext:inner:x", "value": "attr"}
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Object(out.doc),
            json!({"userName": "a", "urn:acme:ext:inner": {"x": "attr"}})
        );
    }

    #[test]
    fn paths_into_unregistered_schemas_follow_the_policy() {
        let ops = json!([
            {"op": "add", "path": "urn:example:custom:2.0:User:badge", "value": "1"},
            {"op": "replace", "value": {"urn:example:custom:2.0:User": {"badge": "2"}, "title": "t"}}
        ]);
        let e = user_err(json!({"userName": "a"}), ops.clone());
        assert_eq!(e, "invalidPath");
        let ignoring = schema::Model::for_provider(1, Unknown::Ignore, &[]);
        let out = run(
            ignoring.get(ResourceKind::User),
            json!({"userName": "a"}),
            ops,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Object(out.doc),
            json!({"userName": "a", "title": "t"})
        );
        assert!(out.quirks.contains(Quirk::UnknownSchema));
    }

    #[test]
    fn manager_set_change_and_clear() {
        let start = json!({"userName": "a"});
        for value in [
            json!("m1"),
            json!({"value": "m1"}),
            json!([{"value": "m1"}]),
        ] {
            let d = user(
                start.clone(),
                json!([{"op": "Add", "path": format!("{ENTERPRISE_USER}:manager"), "value": value}]),
            );
            assert_eq!(d[ENTERPRISE_USER], json!({"manager": {"value": "m1"}}));
        }
        let with = json!({"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}, "department": "x"}});
        let d = user(
            with.clone(),
            json!([{"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"), "value": "m2"}]),
        );
        assert_eq!(d[ENTERPRISE_USER]["manager"], json!({"value": "m2"}));
        for clear in [
            json!({"op": "remove", "path": format!("{ENTERPRISE_USER}:manager")}),
            json!({"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"), "value": ""}),
            json!({"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"), "value": null}),
        ] {
            let d = user(with.clone(), json!([clear]));
            assert_eq!(d[ENTERPRISE_USER], json!({"department": "x"}), "{clear}");
        }
        // Removing the last extension attribute removes the extension object.
        let d = user(
            json!({"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}}}),
            json!([{"op": "remove", "path": format!("{ENTERPRISE_USER}:manager")}]),
        );
        assert!(!d.contains_key(ENTERPRISE_USER));
    }

    #[test]
    fn rfc_7644_add_examples() {
        // §3.5.2.1: add a member, add emails and a nickname without a path.
        let out = run(ResourceKind::Group.builtin(), json!({"displayName": "Tour Guides"}), json!([
            {"op": "add", "path": "members", "value": [{"display": "Babs Jensen", "$ref": "https://x/Users/2819c223", "value": "2819c223"}]}
        ])).unwrap();
        assert_eq!(
            out.members,
            [MemberChange::Add(vec![member(
                "2819c223",
                Some("Babs Jensen")
            )])]
        );
        let d = user(
            json!({"userName": "bjensen", "emails": [{"value": "old@x.com", "type": "home"}]}),
            json!([
                {"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "work"}], "nickname": "Babs"}}
            ]),
        );
        assert_eq!(
            d["emails"],
            json!([{"value": "old@x.com", "type": "home"}, {"value": "babs@jensen.org", "type": "work"}])
        );
        assert_eq!(d["nickName"], "Babs");
    }

    #[test]
    fn rfc_7644_remove_examples() {
        // §3.5.2.2
        let out = run(ResourceKind::Group.builtin(), json!({"displayName": "g"}), json!([
            {"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}
        ])).unwrap();
        assert_eq!(
            out.members,
            [MemberChange::Remove(vec![
                "2819c223-7f76-453a-919d-413861904646".into()
            ])]
        );
        let out = run(
            ResourceKind::Group.builtin(),
            json!({"displayName": "g"}),
            json!([{"op": "remove", "path": "members"}]),
        )
        .unwrap();
        assert_eq!(out.members, [MemberChange::Replace(vec![])]);
        let out = run(ResourceKind::Group.builtin(), json!({"displayName": "g"}), json!([
            {"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"},
            {"op": "remove", "path": "members[display co \"Babs\"]"},
            {"op": "Remove", "path": "members", "value": [{"value": "u1091"}, {"value": "u1092"}]}
        ])).unwrap();
        assert_eq!(
            out.members[0],
            MemberChange::Remove(vec!["a".into(), "b".into()])
        );
        assert!(matches!(out.members[1], MemberChange::RemoveWhere(_)));
        assert_eq!(
            out.members[2],
            MemberChange::Remove(vec!["u1091".into(), "u1092".into()]),
            "never all"
        );
        let start = json!({"userName": "a", "emails": [{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}],
                           "x509Certificates": [{"value": "MIIB"}]});
        let d = user(
            start.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        );
        assert_eq!(d["emails"], json!([{"value": "h@x", "type": "home"}]));
        let d = user(
            start.clone(),
            json!([{"op": "remove", "path": "x509Certificates[value eq \"MIIB\"]"}]),
        );
        assert!(
            !d.contains_key("x509Certificates"),
            "no value left: unassigned"
        );
        let d = user(
            start.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
        );
        assert_eq!(
            d["emails"], start["emails"],
            "removing what is not there succeeds"
        );
        assert_eq!(user_err(start, json!([{"op": "remove"}])), "noTarget");
    }

    #[test]
    fn rfc_7644_replace_examples() {
        // §3.5.2.3
        let out = run(ResourceKind::Group.builtin(), json!({"displayName": "g"}), json!([
            {"op": "replace", "path": "members", "value": [{"value": "2819c223"}, {"value": "902c246b"}]}
        ])).unwrap();
        assert_eq!(
            out.members,
            [MemberChange::Replace(vec![
                member("2819c223", None),
                member("902c246b", None)
            ])]
        );
        let start = json!({"userName": "a", "addresses": [{"type": "work", "streetAddress": "old", "locality": "L"}]});
        let d = user(
            start.clone(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]",
            "value": {"type": "work", "streetAddress": "911 Universal City Plaza", "primary": true}}]),
        );
        assert_eq!(
            d["addresses"],
            json!([{"type": "work", "streetAddress": "911 Universal City Plaza", "primary": true}])
        );
        let d = user(
            start,
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
        );
        assert_eq!(d["addresses"][0]["streetAddress"], "1010 Broadway Ave");
        assert_eq!(d["addresses"][0]["locality"], "L");
        let d = user(
            json!({"userName": "a", "name": {"givenName": "x", "familyName": "y"}}),
            json!([{"op": "replace", "value": {"name": {"givenName": "z"}}}]),
        );
        assert_eq!(
            d["name"],
            json!({"givenName": "z", "familyName": "y"}),
            "sub-attributes not given stay"
        );
    }

    #[test]
    fn primary_moves_to_the_new_value() {
        let d = user(
            json!({"userName": "a", "emails": [{"value": "1", "type": "work", "primary": true}]}),
            json!([{"op": "add", "path": "emails", "value": [{"value": "2", "type": "home", "primary": true}]}]),
        );
        assert_eq!(
            d["emails"],
            json!([{"value": "1", "type": "work", "primary": false}, {"value": "2", "type": "home", "primary": true}])
        );
    }

    #[test]
    fn errors_carry_the_right_scim_type() {
        let start = json!({"userName": "a", "title": "t"});
        for (ops, want) in [
            (
                json!([{"op": "replace", "path": "nosuch", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "name.nosuch", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "title[value eq \"x\"]", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "maybe"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "title", "value": 5}]),
                "invalidValue",
            ),
            (
                json!([{"op": "remove", "path": "userName"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "userName", "value": ""}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "emails", "value": [{"value": "1", "primary": true}, {"value": "2", "primary": true}]}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "value": "not an object"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "move", "path": "title", "value": 1}]),
                "invalidSyntax",
            ),
            (json!([{"op": "replace", "path": "title"}]), "invalidSyntax"),
            (json!([]), "invalidSyntax"),
        ] {
            assert_eq!(user_err(start.clone(), ops.clone()), want, "{ops}");
        }
        let e = run(
            ResourceKind::Group.builtin(),
            json!({"displayName": "g"}),
            json!([{"op": "add", "path": "members[value eq \"x\"]", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), "invalidPath");
        let e = run(
            ResourceKind::Group.builtin(),
            json!({"displayName": "g"}),
            json!([{"op": "replace", "path": "members.value", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), "invalidPath");
    }

    #[test]
    fn password_is_taken_out_of_the_document() {
        let ops = parse_request(
            &json!({"Operations": [{"op": "replace", "path": "password", "value": "s3cret"}]}),
        )
        .unwrap();
        assert_eq!(
            password_in(ResourceKind::User.builtin(), &ops).as_deref(),
            Some("s3cret")
        );
        let out = apply(
            ResourceKind::User.builtin(),
            &doc(json!({"userName": "a"})),
            &ops,
        )
        .unwrap();
        assert_eq!(out.password, Some(Some("s3cret".into())));
        assert!(!out.doc.contains_key("password"));
        let ops =
            parse_request(&json!({"Operations": [{"op": "replace", "value": {"password": "x2"}}]}))
                .unwrap();
        assert_eq!(
            password_in(ResourceKind::User.builtin(), &ops).as_deref(),
            Some("x2")
        );
    }

    #[test]
    fn quirks_are_noted() {
        let out = run(ResourceKind::User.builtin(), json!({"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}}}), json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "1"},
            {"op": "replace", "value": {"name.givenName": "x"}},
            {"op": "Add", "path": "roles", "value": "[{\"value\": \"25\", \"display\": \"Role1234\"}]"},
            {"op": "remove", "path": format!("{ENTERPRISE_USER}:manager[value eq \"m1\"]")}
        ])).unwrap();
        let names: Vec<&str> = out.quirks.iter().map(|q| q.name()).collect();
        assert_eq!(
            names,
            [
                "string_boolean",
                "typed_path_upsert",
                "path_keys_in_value",
                "json_string_value",
                "manager_value_filter"
            ]
        );
        assert_eq!(
            out.doc["roles"],
            json!([{"value": "25", "display": "Role1234"}])
        );
        assert!(
            !out.doc.contains_key(ENTERPRISE_USER),
            "manager removed through its value filter"
        );
        // A filter that does not match removes nothing.
        let out = run(
            ResourceKind::User.builtin(),
            json!({"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}}}),
            json!([
                {"op": "remove", "path": format!("{ENTERPRISE_USER}:manager[value eq \"other\"]")}
            ]),
        )
        .unwrap();
        assert_eq!(out.doc[ENTERPRISE_USER]["manager"]["value"], "m1");
        let out = run(
            ResourceKind::Group.builtin(),
            json!({"displayName": "g"}),
            json!([
                {"op": "Remove", "path": "members", "value": [{"value": "u"}]}
            ]),
        )
        .unwrap();
        assert!(out.quirks.contains(Quirk::MemberRemoveByValue));
    }

    #[test]
    fn the_whole_extension_as_a_path() {
        let start =
            json!({"userName": "a", ENTERPRISE_USER: {"department": "x", "costCenter": "c"}});
        let d = user(
            start.clone(),
            json!([{"op": "replace", "path": ENTERPRISE_USER, "value": {"department": "y"}}]),
        );
        assert_eq!(
            d[ENTERPRISE_USER],
            json!({"department": "y", "costCenter": "c"})
        );
        let d = user(
            start.clone(),
            json!([{"op": "add", "path": ENTERPRISE_USER, "value": {"manager": "m1"}}]),
        );
        assert_eq!(d[ENTERPRISE_USER]["manager"], json!({"value": "m1"}));
        let d = user(start, json!([{"op": "remove", "path": ENTERPRISE_USER}]));
        assert!(!d.contains_key(ENTERPRISE_USER));
    }

    #[test]
    fn external_id_and_echoed_read_only_attributes() {
        let d = user(
            json!({"userName": "a"}),
            json!([
                {"op": "replace", "value": {"externalId": "e1", "id": "ignored", "meta": {"x": 1}, "schemas": []}}
            ]),
        );
        assert_eq!(d, doc(json!({"userName": "a", "externalId": "e1"})));
        let d = user(
            json!({"userName": "a", "externalId": "e1"}),
            json!([{"op": "remove", "path": "externalId"}]),
        );
        assert!(!d.contains_key("externalId"));
    }

    mod property {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// Simple operations on singular attributes, and what they do to a plain JSON copy.
        #[derive(Debug, Clone)]
        enum Simple {
            Set(&'static str, Option<&'static str>, String),
            Remove(&'static str, Option<&'static str>),
        }

        fn op_strategy() -> impl Strategy<Value = Simple> {
            let target = select(vec![
                ("title", None),
                ("nickName", None),
                ("displayName", None),
                ("locale", None),
                ("name", Some("givenName")),
                ("name", Some("familyName")),
            ]);
            prop_oneof![
                (target.clone(), "[a-zA-Zé ]{1,8}").prop_map(|((a, s), v)| Simple::Set(a, s, v)),
                target.prop_map(|(a, s)| Simple::Remove(a, s)),
            ]
        }

        fn path(a: &str, s: Option<&str>) -> String {
            match s {
                Some(s) => format!("{a}.{s}"),
                None => a.to_string(),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
            #[test]
            fn patch_equals_editing_a_json_copy(ops in proptest::collection::vec(op_strategy(), 1..12), no_path in any::<bool>()) {
                let mut expected = doc(json!({"userName": "u"}));
                let mut request = Vec::new();
                for op in &ops {
                    match op {
                        Simple::Set(a, s, v) => {
                            match s {
                                None => { expected.insert((*a).into(), json!(v)); }
                                Some(s) => {
                                    let parent = expected.entry(*a).or_insert_with(|| json!({}));
                                    parent.as_object_mut().unwrap().insert((*s).into(), json!(v));
                                }
                            }
                            request.push(if no_path {
                                json!({"op": "Replace", "value": {path(a, *s): v}})
                            } else {
                                json!({"op": "Replace", "path": path(a, *s), "value": v})
                            });
                        }
                        Simple::Remove(a, s) => {
                            match s {
                                None => { expected.remove(*a); }
                                Some(s) => {
                                    if let Some(Value::Object(p)) = expected.get_mut(*a) {
                                        p.remove(*s);
                                        if p.is_empty() { expected.remove(*a); }
                                    }
                                }
                            }
                            request.push(json!({"op": "remove", "path": path(a, *s)}));
                        }
                    }
                }
                let got = user(json!({"userName": "u"}), Value::Array(request));
                prop_assert_eq!(got, expected);
            }
        }
    }
}
