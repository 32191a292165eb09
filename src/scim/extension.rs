//! Extension schemas an identity provider registers at run time (`scimd schema add`): an
//! RFC 7643 §7 schema representation read into the same `Schema` the built-in model uses.
//!
//! The model's types hold `&'static` data (the built-in schemas are statics, and every part of
//! the server borrows from them freely). A schema read here is therefore kept for the life of
//! the process; the store interns each distinct definition (`store::schemas`), so registering,
//! removing and registering the same schema again does not keep another copy.

use serde_json::{Map, Value};

use super::schema::{self, Attribute, Mutability, Returned, Role, Schema, Type, Uniqueness};

/// The URNs of the built-in schemas, which a provider cannot register again.
const RESERVED: &[&str] = &[schema::USER, schema::GROUP, schema::ENTERPRISE_USER];

/// Most attributes (and sub-attributes of one attribute) a schema may declare.
const MAX_ATTRIBUTES: usize = 200;

/// A registered extension schema: its definition and the attributes kept in the value index.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) schema: &'static Schema,
    /// Names of singular attributes whose values are indexed for `eq` lookups.
    pub(crate) indexed: Vec<&'static str>,
}

/// Reads a schema representation. Errors name the line (JSON syntax) or the attribute.
pub(crate) fn parse(text: &str, indexed: &[String]) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "not valid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    })?;
    read_schema(&value, indexed)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// ATTRNAME of RFC 7643 §2.1: a letter, then letters, digits, `-` and `_`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 128
}

/// A schema URN: `urn:`, then at least two more colon-separated parts, no spaces.
fn valid_urn(id: &str) -> bool {
    id.len() <= 256
        && id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && id.split(':').count() >= 3
        && id.split(':').all(|p| !p.is_empty())
        && id.chars().all(|c| c.is_ascii_graphic())
}

fn read_schema(v: &Value, indexed: &[String]) -> Result<Parsed, String> {
    let obj = v
        .as_object()
        .ok_or("a schema is a JSON object with \"id\", \"name\" and \"attributes\"")?;
    for key in obj.keys() {
        if !["id", "name", "description", "attributes", "schemas", "meta"].contains(&key.as_str()) {
            return Err(format!(
                "unknown key {key:?} (a schema has id, name, description and attributes)"
            ));
        }
    }
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or("\"id\" (the schema's URN) is missing or not a string")?;
    if !valid_urn(id) {
        return Err(format!(
            "\"id\" {id:?} is not a URN such as urn:ietf:params:scim:schemas:extension:acme:2.0:User"
        ));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(id)) {
        return Err(format!(
            "{id} is built in; register a schema with another URN"
        ));
    }
    let name = optional_text(obj, "name", "the schema")?.unwrap_or(id);
    let description = optional_text(obj, "description", "the schema")?.unwrap_or("");
    let attributes = obj
        .get("attributes")
        .and_then(Value::as_array)
        .ok_or("\"attributes\" is missing or not an array")?;
    let attributes = read_attributes(attributes, None)?;
    // Attributes unique per provider are always indexed: their check is then a lookup.
    let mut kept: Vec<&'static str> = attributes
        .iter()
        .filter(|a| a.uniqueness != Uniqueness::None)
        .map(|a| a.name)
        .collect();
    for wanted in indexed {
        let a = attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| format!("--index {wanted}: the schema has no such attribute"))?;
        if a.multi_valued || !matches!(a.ty, Type::String | Type::Reference) {
            return Err(format!(
                "--index {wanted}: only a single-valued string or reference attribute can be indexed"
            ));
        }
        if !kept.contains(&a.name) {
            kept.push(a.name);
        }
    }
    let schema: &'static Schema = Box::leak(Box::new(Schema {
        id: leak(id),
        name: leak(name),
        description: leak(description),
        attributes: Box::leak(attributes.into_boxed_slice()),
    }));
    Ok(Parsed {
        schema,
        indexed: kept,
    })
}

fn optional_text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    owner: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{owner}: {key:?} must be a string, not {other}")),
    }
}

fn read_attributes(list: &[Value], parent: Option<&str>) -> Result<Vec<Attribute>, String> {
    if list.is_empty() {
        return Err(match parent {
            None => "\"attributes\" is empty: declare at least one attribute".to_string(),
            Some(p) => format!("{p}: a complex attribute needs subAttributes"),
        });
    }
    if list.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "at most {MAX_ATTRIBUTES} attributes per schema or complex attribute"
        ));
    }
    let mut out: Vec<Attribute> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let a = read_attribute(v, i, parent)?;
        if out.iter().any(|b| b.name.eq_ignore_ascii_case(a.name)) {
            return Err(format!(
                "{}: declared twice (names are compared regardless of case)",
                qualified(parent, a.name)
            ));
        }
        out.push(a);
    }
    Ok(out)
}

fn qualified(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{name}"),
        None => name.to_string(),
    }
}

fn read_attribute(v: &Value, index: usize, parent: Option<&str>) -> Result<Attribute, String> {
    let at = |what: String| match parent {
        Some(p) => format!("{p}.subAttributes[{index}]: {what}"),
        None => format!("attributes[{index}]: {what}"),
    };
    let obj = v
        .as_object()
        .ok_or_else(|| at("an attribute is a JSON object".into()))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| at("\"name\" is missing or not a string".into()))?;
    if !valid_name(name) {
        return Err(at(format!(
            "{name:?} is not an attribute name (a letter, then letters, digits, - or _)"
        )));
    }
    let full = qualified(parent, name);
    let err = |what: String| format!("attribute {full}: {what}");
    for key in obj.keys() {
        if ![
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
            "canonicalValues",
            "referenceTypes",
            "subAttributes",
        ]
        .contains(&key.as_str())
        {
            return Err(err(format!("unknown characteristic {key:?}")));
        }
    }
    let word = |key: &str, default: &'static str| -> Result<String, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(err(format!("{key:?} must be a string, not {other}"))),
        }
    };
    let flag = |key: &str| -> Result<bool, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(err(format!("{key:?} must be true or false, not {other}"))),
        }
    };
    let ty = match word("type", "")?.as_str() {
        "string" => Type::String,
        "boolean" => Type::Boolean,
        "integer" => Type::Integer,
        "decimal" => Type::Decimal,
        "dateTime" => Type::DateTime,
        "reference" => Type::Reference,
        "binary" => Type::Binary,
        "complex" => Type::Complex,
        "" => return Err(err("\"type\" is missing".into())),
        other => {
            return Err(err(format!(
                "type {other:?} is not one of string, boolean, integer, decimal, dateTime, \
                 reference, binary, complex"
            )));
        }
    };
    let mutability = match word("mutability", "readWrite")?.as_str() {
        "readWrite" => Mutability::ReadWrite,
        "readOnly" => Mutability::ReadOnly,
        "immutable" => Mutability::Immutable,
        "writeOnly" => Mutability::WriteOnly,
        other => {
            return Err(err(format!(
                "mutability {other:?} is not one of readWrite, readOnly, immutable, writeOnly"
            )));
        }
    };
    let returned = match word("returned", "default")?.as_str() {
        "default" => Returned::Default,
        "always" => Returned::Always,
        "never" => Returned::Never,
        "request" => Returned::Request,
        other => {
            return Err(err(format!(
                "returned {other:?} is not one of default, always, never, request"
            )));
        }
    };
    let uniqueness = match word("uniqueness", "none")?.as_str() {
        "none" => Uniqueness::None,
        "server" => Uniqueness::Server,
        "global" => Uniqueness::Global,
        other => {
            return Err(err(format!(
                "uniqueness {other:?} is not one of none, server, global"
            )));
        }
    };
    let strings = |key: &str| -> Result<&'static [&'static str], String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let s = item
                        .as_str()
                        .ok_or_else(|| err(format!("{key:?} must list strings, not {item}")))?;
                    out.push(leak(s));
                }
                Ok(Box::leak(out.into_boxed_slice()))
            }
            Some(other) => Err(err(format!("{key:?} must be an array, not {other}"))),
        }
    };
    let canonical_values = strings("canonicalValues")?;
    let reference_types = strings("referenceTypes")?;
    let sub_attributes: &'static [Attribute] = match (ty, obj.get("subAttributes")) {
        (Type::Complex, Some(Value::Array(subs))) => {
            if parent.is_some() {
                return Err(err(
                    "a sub-attribute cannot be complex (one level of subAttributes)".into(),
                ));
            }
            Box::leak(read_attributes(subs, Some(name))?.into_boxed_slice())
        }
        (Type::Complex, _) => return Err(err("a complex attribute needs subAttributes".into())),
        (_, None | Some(Value::Null)) => &[],
        (_, Some(_)) => {
            return Err(err("only a complex attribute has subAttributes".into()));
        }
    };
    if uniqueness != Uniqueness::None
        && (parent.is_some()
            || flag("multiValued")?
            || !matches!(
                ty,
                Type::String | Type::Reference | Type::Integer | Type::Boolean
            ))
    {
        return Err(err(
            "uniqueness applies to single-valued string, reference, integer or boolean \
             attributes of the schema itself"
                .into(),
        ));
    }
    Ok(Attribute {
        name: leak(name),
        role: Role::Document,
        indexed: false,
        ty,
        multi_valued: flag("multiValued")?,
        required: flag("required")?,
        case_exact: flag("caseExact")?,
        mutability,
        returned,
        uniqueness,
        canonical_values,
        reference_types,
        sub_attributes,
        description: leak(optional_text(obj, "description", &full)?.unwrap_or("")),
        // A provider's own attributes are in the page's full list.
        summary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOM: &str = r#"{
        "id": "urn:ietf:params:scim:schemas:extension:acme:2.0:User",
        "name": "AcmeUser",
        "description": "Acme's attributes",
        "attributes": [
            {"name": "badgeNumber", "type": "string", "uniqueness": "server"},
            {"name": "clearance", "type": "integer"},
            {"name": "hired", "type": "dateTime", "mutability": "immutable"},
            {"name": "sites", "type": "complex", "multiValued": true, "subAttributes": [
                {"name": "value", "type": "string"},
                {"name": "type", "type": "string", "canonicalValues": ["hq", "lab"]}
            ]}
        ]
    }"#;

    #[test]
    fn a_schema_representation_reads_into_the_model_types() {
        let p = parse(CUSTOM, &["BADGENUMBER".to_string()]).unwrap_or_else(|e| panic!("{e}"));
        let s = p.schema;
        assert_eq!(s.id, "urn:ietf:params:scim:schemas:extension:acme:2.0:User");
        assert_eq!(s.name, "AcmeUser");
        assert_eq!(p.indexed, ["badgeNumber"]);
        let badge = s.attribute("badgenumber").map(|a| (a.ty, a.uniqueness));
        assert_eq!(badge, Some((Type::String, Uniqueness::Server)));
        let sites = s
            .attribute("sites")
            .map(|a| (a.multi_valued, a.sub_attributes.len()));
        assert_eq!(sites, Some((true, 2)));
        assert_eq!(
            s.attribute("hired").map(|a| a.mutability),
            Some(Mutability::Immutable)
        );
        // What /Schemas serves is what was registered, in RFC form.
        let json = s.to_json();
        assert_eq!(
            json["attributes"][3]["subAttributes"][1]["canonicalValues"][1],
            "lab"
        );
        // (The store interns what this reads: see `store::schemas`.)
    }

    #[test]
    fn the_microsoft_validator_and_non_ietf_urns_are_accepted() {
        for urn in [
            "urn:msfttest:cloud:scim:schemas:extension:custom:2.0:User",
            "urn:ietf:params:scim:schemas:extension:msfttest:User",
            "urn:salesforce:schemas:extension:18CHARORGID",
        ] {
            let text =
                format!(r#"{{"id": "{urn}", "attributes": [{{"name": "a", "type": "string"}}]}}"#);
            let p = parse(&text, &[]).unwrap_or_else(|e| panic!("{urn}: {e}"));
            assert_eq!(p.schema.name, urn, "the name defaults to the URN");
        }
    }

    #[test]
    fn errors_name_the_line_or_the_attribute() {
        let cases: &[(&str, &str)] = &[
            (
                "{\n  \"id\": \"urn:a:b\",\n  \"attributes\": [,]\n}",
                "line 3",
            ),
            (r#"{"id": "nope", "attributes": []}"#, "is not a URN"),
            (
                r#"{"id": "urn:ietf:params:scim:schemas:core:2.0:User", "attributes": [{"name": "a", "type": "string"}]}"#,
                "built in",
            ),
            (r#"{"id": "urn:a:b", "attributes": []}"#, "is empty"),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "text"}]}"#,
                "attribute a: type \"text\"",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "9a", "type": "string"}]}"#,
                "attributes[0]",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string"}, {"name": "A", "type": "string"}]}"#,
                "A: declared twice",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "c", "type": "complex"}]}"#,
                "c: a complex attribute needs",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "c", "type": "complex", "subAttributes": [{"name": "d", "type": "complex", "subAttributes": [{"name": "e", "type": "string"}]}]}]}"#,
                "c.d: a sub-attribute cannot be complex",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string", "mutability": "sometimes"}]}"#,
                "attribute a: mutability",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string", "colour": "red"}]}"#,
                "unknown characteristic \"colour\"",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string", "multiValued": "yes"}]}"#,
                "must be true or false",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string", "multiValued": true, "uniqueness": "server"}]}"#,
                "single-valued",
            ),
            (
                r#"{"id": "urn:a:b", "attributes": [{"name": "a", "type": "string"}], "version": 2}"#,
                "unknown key \"version\"",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, &[]).err().unwrap_or_default();
            assert!(e.contains(want), "{text}: {e:?} does not say {want:?}");
        }
        let e = parse(CUSTOM, &["sites".to_string()])
            .err()
            .unwrap_or_default();
        assert!(e.contains("single-valued"), "{e}");
        let e = parse(CUSTOM, &["nope".to_string()])
            .err()
            .unwrap_or_default();
        assert!(e.contains("no such attribute"), "{e}");
    }

    mod round_trip {
        //! Random schemas and documents: a registered definition reads back as written (what
        //! `/Schemas` serves), and a document's extension object is stored byte for byte as
        //! sent. `PROPTEST_CASES=20000 cargo test --release --lib round_trip` runs it longer.
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use crate::scim::resource::prepare;
        use crate::scim::schema::{Model, Registered, ResourceKind, Unknown};

        const TYPES: &[&str] = &[
            "string",
            "boolean",
            "integer",
            "decimal",
            "dateTime",
            "reference",
            "binary",
        ];

        fn simple() -> impl Strategy<Value = Value> {
            (
                "[a-z][a-zA-Z0-9_-]{0,12}",
                prop::sample::select(TYPES),
                any::<bool>(),
                any::<bool>(),
                prop::sample::select(&["readWrite", "immutable", "writeOnly", "readOnly"][..]),
                prop::sample::select(&["default", "always", "request", "never"][..]),
            )
                .prop_map(|(name, ty, multi, exact, mutability, returned)| {
                    json!({"name": name, "type": ty, "multiValued": multi, "description": "d",
                           "required": false, "caseExact": exact, "mutability": mutability,
                           "returned": returned, "uniqueness": "none"})
                })
        }

        fn attribute() -> impl Strategy<Value = Value> {
            prop_oneof![
                3 => simple(),
                1 => ("[a-z][a-zA-Z0-9]{0,8}", any::<bool>(), prop::collection::vec(simple(), 1..4))
                    .prop_map(|(name, multi, subs)| {
                        let subs: Vec<Value> = subs.into_iter().map(|mut s| {
                            s["multiValued"] = false.into();
                            s
                        }).collect();
                        json!({"name": name, "type": "complex", "multiValued": multi, "description": "d",
                               "required": false, "caseExact": false, "mutability": "readWrite",
                               "returned": "default", "uniqueness": "none", "subAttributes": subs})
                    }),
            ]
        }

        fn distinct(list: Vec<Value>) -> Vec<Value> {
            let mut seen = std::collections::HashSet::new();
            list.into_iter()
                .filter(|a| seen.insert(a["name"].as_str().unwrap_or_default().to_lowercase()))
                .map(|mut a| {
                    if let Some(subs) = a.get("subAttributes").and_then(Value::as_array).cloned() {
                        a["subAttributes"] = Value::Array(distinct(subs));
                    }
                    a
                })
                .collect()
        }

        fn value_for(ty: &str, seed: u32) -> Value {
            match ty {
                "boolean" => Value::Bool(seed.is_multiple_of(2)),
                "integer" => json!(seed as i64 - 1000),
                "decimal" => json!(f64::from(seed) / 8.0),
                "dateTime" => json!(format!(
                    "20{:02}-0{}-1{}T0{}:30:00.{}Z",
                    seed % 100,
                    1 + seed % 9,
                    seed % 10,
                    seed % 10,
                    seed % 1000
                )),
                "reference" => json!(format!("https://x.example/{seed}")),
                "binary" => json!("AAEC"),
                _ => json!(format!(
                    "Ünïcode \"{seed}\" \\ {}",
                    "é".repeat((seed % 5) as usize)
                )),
            }
        }

        /// A value for every writable attribute of the schema.
        fn document(attrs: &[Value], seed: u32) -> Map<String, Value> {
            let mut out = Map::new();
            for (i, a) in attrs.iter().enumerate() {
                let seed = seed.wrapping_add(i as u32 * 7919);
                if a["mutability"] == "readOnly" || a["mutability"] == "writeOnly" {
                    continue;
                }
                let one = match a["type"].as_str().unwrap_or_default() {
                    "complex" => {
                        let subs = a["subAttributes"].as_array().cloned().unwrap_or_default();
                        Value::Object(document(&subs, seed))
                    }
                    ty => value_for(ty, seed),
                };
                if one.as_object().is_some_and(Map::is_empty) {
                    continue;
                }
                let v = if a["multiValued"] == true {
                    json!([one])
                } else {
                    one
                };
                out.insert(a["name"].as_str().unwrap_or_default().to_string(), v);
            }
            out
        }

        proptest! {
            #[test]
            fn definitions_and_documents_round_trip(
                attrs in prop::collection::vec(attribute(), 1..8),
                suffix in "[A-Za-z0-9]{1,10}",
                seed in any::<u32>(),
            ) {
                let attrs = distinct(attrs);
                let urn = format!("urn:ietf:params:scim:schemas:extension:{suffix}:2.0:User");
                let definition = json!({"id": urn, "name": suffix, "description": "random", "attributes": attrs});
                let parsed = super::super::parse(&definition.to_string(), &[]).map_err(TestCaseError::fail)?;
                // What /Schemas serves is the definition, every characteristic as written.
                let served = parsed.schema.to_json();
                prop_assert_eq!(&served["id"], &definition["id"]);
                prop_assert_eq!(&served["attributes"], &definition["attributes"]);
                // A document's extension object is kept byte for byte.
                let model = Model::for_provider(1, Unknown::Reject, &[Registered {
                    kind: ResourceKind::User, schema: parsed.schema, indexed: Vec::new() }]);
                let ext = document(&attrs, seed);
                prop_assume!(!ext.is_empty());
                let body = json!({"userName": "u", urn.clone(): ext});
                let prepared = prepare(model.get(ResourceKind::User), &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let stored = serde_json::to_string(&prepared.doc[&urn]).unwrap_or_default();
                prop_assert_eq!(stored, serde_json::to_string(&body[&urn]).unwrap_or_default());
            }
        }
    }
}
