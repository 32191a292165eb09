//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which parts of a resource a
//! response carries, honouring each attribute's `returned` setting.

use serde_json::{Map, Value};

use super::schema::{self, ResourceType, Returned, Schema};

/// Whether `key` is a common attribute every response carries, whatever was asked for
/// (`returned: always`: schemas, id).
fn always(key: &str) -> bool {
    schema::COMMON
        .iter()
        .any(|a| a.name == key && a.returned == Returned::Always)
}

/// A parsed `attributes` / `excludedAttributes` pair. Paths are canonical keys of the rendered
/// resource, e.g. `["name", "givenName"]` or `[<enterprise URN>, "manager", "value"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    include: Option<Vec<Vec<String>>>,
    exclude: Vec<Vec<String>>,
}

impl Projection {
    /// Parses the comma-separated lists. Names that match no attribute are ignored.
    pub(crate) fn parse(
        rt: &ResourceType,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Projection {
        let list = |s: &str| -> Vec<Vec<String>> {
            s.split(',').filter_map(|p| resolve(rt, p.trim())).collect()
        };
        Projection {
            include: attributes.filter(|s| !s.trim().is_empty()).map(list),
            exclude: excluded.map(list).unwrap_or_default(),
        }
    }

    /// Neither `attributes` nor `excludedAttributes` given: the full default representation.
    pub(crate) fn is_default(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Whether the response will contain the top-level `key` (so the caller can skip loading
    /// it, e.g. the members of a large group).
    pub(crate) fn wants(&self, key: &str) -> bool {
        if always(key) {
            return true;
        }
        if self.exclude.iter().any(|p| p.len() == 1 && p[0] == key) {
            return false;
        }
        match &self.include {
            None => true,
            Some(paths) => paths.iter().any(|p| p[0] == key),
        }
    }

    pub(crate) fn apply(
        &self,
        rt: &ResourceType,
        mut obj: Map<String, Value>,
    ) -> Map<String, Value> {
        match &self.include {
            Some(paths) => {
                obj = obj
                    .into_iter()
                    .filter_map(|(k, v)| {
                        if always(&k) {
                            return Some((k, v));
                        }
                        let rests: Vec<&[String]> = paths
                            .iter()
                            .filter(|p| p[0] == k)
                            .map(|p| &p[1..])
                            .collect();
                        if rests.is_empty() {
                            None
                        } else if rests.iter().any(|r| r.is_empty()) {
                            Some((k, v))
                        } else {
                            keep(v, &rests).map(|v| (k, v))
                        }
                    })
                    .collect();
            }
            None => {
                for attr in rt.schema().attributes.iter() {
                    if attr.returned == Returned::Request {
                        obj.remove(attr.name);
                    }
                }
            }
        }
        for path in &self.exclude {
            if !always(&path[0]) && !is_always(rt, path) {
                remove(&mut obj, path);
            }
        }
        obj
    }
}

fn is_always(rt: &ResourceType, path: &[String]) -> bool {
    rt.schema()
        .attribute(&path[0])
        .is_some_and(|a| a.returned == Returned::Always)
}

/// Canonical key path of one `attributes` entry, or `None` if it names nothing.
fn resolve(rt: &ResourceType, raw: &str) -> Option<Vec<String>> {
    if raw.is_empty() {
        return None;
    }
    let schemas = std::iter::once(rt.schema()).chain(rt.extensions().iter().copied());
    for schema in schemas {
        let Some(prefix) = raw.get(..schema.id.len()) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case(schema.id) {
            continue;
        }
        let rest = &raw[schema.id.len()..];
        let is_ext = schema.id != rt.schema().id;
        if rest.is_empty() {
            return is_ext.then(|| vec![schema.id.to_string()]);
        }
        let rest = rest.strip_prefix(':')?;
        let mut path = resolve_in(schema, rest)?;
        if is_ext {
            path.insert(0, schema.id.to_string());
        }
        return Some(path);
    }
    resolve_in(rt.schema(), raw)
        .or_else(|| resolve_common(raw))
        .or_else(|| {
            // An extension attribute named without its URN, when only one extension has it.
            let name = raw.split('.').next()?;
            let (ext, _) = rt.locate(None, name)?;
            let ext = ext?;
            let mut path = resolve_in(rt.extension(ext)?, raw)?;
            path.insert(0, ext.to_string());
            Some(path)
        })
}

fn resolve_in(schema: &Schema, path: &str) -> Option<Vec<String>> {
    let mut parts = path.splitn(2, '.');
    let attr = schema.attribute(parts.next()?)?;
    let mut out = vec![attr.name.to_string()];
    if let Some(sub) = parts.next() {
        out.push(attr.sub(sub)?.name.to_string());
    }
    Some(out)
}

fn resolve_common(path: &str) -> Option<Vec<String>> {
    let mut parts = path.splitn(2, '.');
    let attr = schema::common(parts.next()?)?;
    let mut out = vec![attr.name.to_string()];
    if let Some(sub) = parts.next() {
        out.push(attr.sub(sub)?.name.to_string());
    }
    Some(out)
}

/// Keeps only the parts of `v` named by the (non-empty) remaining paths.
fn keep(v: Value, rests: &[&[String]]) -> Option<Value> {
    match v {
        Value::Object(m) => {
            let out: Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| {
                    let deeper: Vec<&[String]> = rests
                        .iter()
                        .filter(|r| r[0] == k)
                        .map(|r| &r[1..])
                        .collect();
                    if deeper.is_empty() {
                        None
                    } else if deeper.iter().any(|r| r.is_empty()) {
                        Some((k, v))
                    } else {
                        keep(v, &deeper).map(|v| (k, v))
                    }
                })
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items.into_iter().filter_map(|i| keep(i, rests)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => None,
    }
}

/// Removes one path; an object or list left empty goes too.
fn remove(obj: &mut Map<String, Value>, path: &[String]) {
    if path.len() == 1 {
        obj.remove(&path[0]);
        return;
    }
    let Some(child) = obj.get_mut(&path[0]) else {
        return;
    };
    match child {
        Value::Object(m) => remove(m, &path[1..]),
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(m) = item {
                    remove(m, &path[1..]);
                }
            }
            items.retain(|i| i.as_object().is_none_or(|m| !m.is_empty()));
        }
        _ => {}
    }
    let empty = match obj.get(&path[0]) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        obj.remove(&path[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER;
    use crate::scim::schema::ResourceKind;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
            "id": "1",
            "userName": "alice",
            "name": {"givenName": "Alice", "familyName": "Doe"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}],
            ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "2"}},
            "meta": {"resourceType": "User", "version": "W/\"1\""}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn keys(m: &Map<String, Value>) -> Vec<&str> {
        let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_always() {
        let p = Projection::parse(
            ResourceKind::User.builtin(),
            Some("USERNAME,name.givenName,emails.value"),
            None,
        );
        let out = p.apply(ResourceKind::User.builtin(), user());
        assert_eq!(keys(&out), ["emails", "id", "name", "schemas", "userName"]);
        assert_eq!(out["name"], json!({"givenName": "Alice"}));
        assert_eq!(out["emails"], json!([{"value": "a@x"}, {"value": "b@x"}]));
    }

    #[test]
    fn urn_qualified_paths() {
        let p = Projection::parse(
            ResourceKind::User.builtin(),
            Some(&format!(
                "urn:ietf:params:scim:schemas:core:2.0:User:userName,{ENTERPRISE_USER}:manager.value"
            )),
            None,
        );
        let out = p.apply(ResourceKind::User.builtin(), user());
        assert_eq!(out["userName"], "alice");
        assert_eq!(out[ENTERPRISE_USER], json!({"manager": {"value": "2"}}));
        let p = Projection::parse(ResourceKind::User.builtin(), Some(ENTERPRISE_USER), None);
        assert_eq!(
            p.apply(ResourceKind::User.builtin(), user())[ENTERPRISE_USER]["department"],
            "R&D"
        );
    }

    #[test]
    fn excluded_attributes_drop_paths_but_never_id() {
        let p = Projection::parse(
            ResourceKind::User.builtin(),
            None,
            Some(&format!(
                "emails.type,id,meta,{ENTERPRISE_USER}:department,name.givenName,name.familyName"
            )),
        );
        let out = p.apply(ResourceKind::User.builtin(), user());
        assert_eq!(out["id"], "1");
        assert!(!out.contains_key("meta") && !out.contains_key("name"));
        assert_eq!(out["emails"], json!([{"value": "a@x"}, {"value": "b@x"}]));
        assert_eq!(out[ENTERPRISE_USER], json!({"manager": {"value": "2"}}));
    }

    #[test]
    fn wants_tells_whether_to_load_members() {
        let g = ResourceKind::Group.builtin();
        assert!(Projection::parse(g, None, None).wants("members"));
        assert!(!Projection::parse(g, None, Some("members")).wants("members"));
        assert!(!Projection::parse(g, Some("displayName"), None).wants("members"));
        assert!(Projection::parse(g, Some("members.value"), None).wants("members"));
        assert!(Projection::parse(g, None, Some("members.display")).wants("members"));
    }

    #[test]
    fn unknown_names_are_ignored() {
        let p = Projection::parse(
            ResourceKind::User.builtin(),
            Some("nosuch,name.nosuch,urn:x:y"),
            Some("bogus"),
        );
        let out = p.apply(ResourceKind::User.builtin(), user());
        assert_eq!(keys(&out), ["id", "schemas"]);
    }
}
