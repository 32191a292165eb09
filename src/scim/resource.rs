//! Turning a request body into the document to store (validation against the schema model).
//!
//! Values are kept exactly as the client sent them (identity providers compare what they sent
//! with what they read back); only attribute names are made canonical, `"True"`/`"False"`
//! become booleans, and `null` or empty arrays mean "no value".

use serde_json::{Map, Value};

use super::Error;
use super::quirks::{Quirk, Quirks};
use super::schema::{self, Attribute, Mutability, ResourceType, Role, Schema, Type, Unknown};

/// A validated request body, split into what the store keeps where.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Attributes to store, canonical names, extension objects under their URN. Excludes id,
    /// meta, schemas, read-only attributes, the password and group members.
    pub(crate) doc: Map<String, Value>,
    /// userName (User) or displayName (Group), exactly as sent.
    pub(crate) name: String,
    pub(crate) external_id: Option<String>,
    /// A write-only password, to be hashed before storing.
    pub(crate) password: Option<String>,
    /// Members of a Group, in order of first appearance, without duplicate ids.
    pub(crate) members: Option<Vec<Member>>,
    /// Non-standard shapes the body used that were accepted.
    pub(crate) quirks: Quirks,
}

/// One member as a client sent it: the member's id, and the `display` it gave, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) display: Option<String>,
}

/// What a provider that refuses unknown attributes answers about one (`what` is a key or a
/// PATCH path in a schema it has not registered).
pub(crate) fn unregistered(what: &str) -> String {
    format!(
        "{what:?} is in a schema this identity provider has not registered, so its values \
         would be lost: register the schema with `scimd schema add --provider <provider> \
         FILE.json`, or let the provider drop such attributes with `scimd provider set \
         <provider> --unknown-attributes ignore`"
    )
}

/// Validates a POST or PUT body for `kind`.
pub fn prepare(rt: &ResourceType, input: &Value) -> Result<Prepared, Error> {
    let obj = input
        .as_object()
        .ok_or_else(|| Error::InvalidSyntax("the request body must be a JSON object".into()))?;
    let schema = rt.schema();
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
    let known = |urn: &str| urn.eq_ignore_ascii_case(schema.id) || rt.extension(urn).is_some();
    if listed.iter().any(|u| !known(u)) {
        q.note(Quirk::UnknownSchema);
    }
    for (key, value) in obj {
        if let Some(common) = schema::common(key) {
            match common.role {
                Role::Schemas => check_schemas(value)?,
                Role::ExternalId => match value {
                    Value::Null => {}
                    Value::String(s) => {
                        check_text(common, s, common.name)?;
                        insert_once(&mut doc, common.name, value.clone())?
                    }
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
        if let Some(ext) = rt.extension(key) {
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
            // The core schema's URN as a key, or an extension the provider has not registered:
            // refused (values would be lost) unless the provider ignores unknown attributes.
            if rt.unknown() == Unknown::Reject && !key.eq_ignore_ascii_case(schema.id) {
                return Err(Error::InvalidSyntax(unregistered(key)));
            }
            q.note(Quirk::UnknownSchema);
            continue;
        }
        let attr = schema.attribute(key).ok_or_else(|| {
            Error::InvalidSyntax(format!("{key:?} is not an attribute of a {}", rt.name()))
        })?;
        match attr.mutability {
            Mutability::ReadOnly => continue,
            Mutability::WriteOnly if attr.role == Role::Secret => {
                password = match value {
                    Value::Null => None,
                    Value::String(s) => {
                        check_text(attr, s, attr.name)?;
                        Some(s.clone())
                    }
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
                rt.name()
            )));
        }
    }
    // An extension's required attributes, once the resource carries that extension.
    for ext in rt.extensions() {
        if let Some(Value::Object(o)) = doc.get(ext.id)
            && let Some(a) = ext
                .attributes
                .iter()
                .find(|a| a.required && !o.contains_key(a.name))
        {
            return Err(Error::InvalidValue(format!(
                "{}:{} is required when the {} extension has values",
                ext.id, a.name, ext.name
            )));
        }
    }
    let name = doc
        .get(rt.name_attribute())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.trim().is_empty() {
        return Err(Error::InvalidValue(format!(
            "{} must not be empty",
            rt.name_attribute()
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

/// A string value within its attribute's length limit, and without control characters when it
/// identifies something (a NUL or a newline in a userName breaks every system it reaches).
pub(crate) fn check_text(attr: &Attribute, s: &str, path: &str) -> Result<(), Error> {
    if s.len() > attr.max_len() {
        return Err(Error::InvalidValue(format!(
            "{path} is {} bytes long; at most {} are accepted",
            s.len(),
            attr.max_len()
        )));
    }
    if attr.is_identifier() && s.chars().any(char::is_control) {
        return Err(Error::InvalidValue(format!(
            "{path} must not contain control characters"
        )));
    }
    Ok(())
}

/// Whether `key` names the common `schemas` attribute.
pub(crate) fn is_schemas(key: &str) -> bool {
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
pub(crate) fn value_of(
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
        check_multi(&out, path)?;
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
            let Value::String(s) = v else {
                return Err(wrong("a string"));
            };
            check_text(attr, s, path)?;
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
pub(crate) fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// RFC 7643 §2.4: at most one `primary: true` (a sub-attribute §2.4 defines for multi-valued
/// attributes).
fn check_multi(values: &[Value], path: &str) -> Result<(), Error> {
    let primaries = values
        .iter()
        .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(Error::InvalidValue(format!(
            "{path}: {primaries} values are marked primary; at most one may be"
        )));
    }
    // Several values may share a `type` (two work emails): RFC 7643 §2.4 does not forbid it.
    Ok(())
}

/// The members in a `members` value. `type` and `$ref` are computed by the server and ignored;
/// `display` is kept as sent.
pub(crate) fn member_ids(attr: &Attribute, v: &Value) -> Result<Vec<Member>, Error> {
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
            if let Value::String(s) = sv {
                check_text(sub, s, &format!("{}.{}", attr.name, sub.name))?;
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
pub(crate) enum PasswordUpdate {
    Keep,
    Set(String),
    Clear,
}

/// PUT may not change an immutable attribute that already has a value (RFC 7644 §3.5.1).
pub(crate) fn check_immutable(
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

/// Whether an `If-Match` / `If-None-Match` header value names this version (`*` names any).
/// Tags compare by their opaque part, weak or not, as SCIM clients send back `meta.version`.
pub(crate) fn etag_matches(header: &str, version: i64) -> bool {
    let want = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ResourceKind;
    use crate::scim::schema::{ENTERPRISE_USER, GROUP_SCHEMA};
    use serde_json::json;

    fn user(v: Value) -> Result<Prepared, Error> {
        prepare(ResourceKind::User.builtin(), &v)
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
    fn read_only_attributes_are_ignored_and_unknown_extensions_follow_the_policy() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom"],
            "userName": "a", "id": "client-chosen", "groups": [{"value": "g"}],
            "urn:example:custom": {"anything": 1},
            ENTERPRISE_USER: {"manager": {"value": "m1", "displayName": "ignored"}}
        });
        // Refused by default: its values would be lost.
        let e = user(body.clone()).unwrap_err();
        assert_eq!(e.scim_type(), "invalidSyntax");
        assert!(e.to_string().contains("urn:example:custom"), "{e}");
        assert!(e.to_string().contains("scimd schema add"), "{e}");
        // A URN only listed in `schemas` is no attribute: fine either way.
        let mut listed = body.clone();
        listed
            .as_object_mut()
            .map(|o| o.remove("urn:example:custom"));
        assert!(user(listed).is_ok());
        // A provider that ignores them drops the object.
        let ignoring = schema::Model::for_provider(1, Unknown::Ignore, &[]);
        let p = prepare(ignoring.get(ResourceKind::User), &body).unwrap();
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
    fn several_values_may_share_a_type() {
        let body = json!({"userName": "a", "emails": [
            {"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "work"}]});
        assert!(user(body).is_ok());
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
            ResourceKind::Group.builtin(),
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
            ResourceKind::Group.builtin(),
            &json!({"displayName": "g", "members": [{"display": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(err.scim_type(), "invalidValue");
        assert!(
            prepare(ResourceKind::Group.builtin(), &json!({"members": []})).is_err(),
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
    fn etags_match_weak_strong_and_star() {
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(etag_matches("*", 3));
        assert!(!etag_matches("W/\"4\"", 3));
    }
}
