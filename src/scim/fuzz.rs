//! Property-based fuzzing of what reads untrusted input: the filter parser, the PATCH engine and
//! request validation. Inputs are generated from the grammar's own vocabulary mixed with
//! arbitrary text, so most of them get past the first token. Nothing may panic; whatever is
//! accepted must hold together (a filter that parses checks or fails cleanly, a PATCH result is
//! validated like a PUT). The suite runs proptest's default 256 cases per property; run longer
//! by hand with `PROPTEST_CASES=100000 cargo test --release --lib fuzz`.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::filter;
use super::patch;
use super::resource::prepare;
use super::schema::ResourceKind;

const WORDS: &[&str] = &[
    "userName",
    "emails",
    "value",
    "type",
    "primary",
    "members",
    "groups",
    "manager",
    "meta",
    "created",
    "lastModified",
    "id",
    "externalId",
    "name",
    "givenName",
    "active",
    "password",
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "eq",
    "ne",
    "co",
    "sw",
    "ew",
    "gt",
    "ge",
    "lt",
    "le",
    "pr",
    "and",
    "or",
    "not",
    "(",
    ")",
    "[",
    "]",
    ".",
    ":",
    "\"",
    "\\",
    "\"x\"",
    "true",
    "false",
    "null",
    "1",
    "-2.5e3",
    "\"work\"",
    " ",
    "  ",
    "\u{0}",
    "é",
    "𝄞",
];

/// Text made of grammar words and arbitrary pieces.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "\\PC{0,6}",
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.join(" "))
}

/// An arbitrary JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "-?[0-9]{1,4}\\.[0-9]{1,3}".prop_map(|s| json!(s.parse::<f64>().unwrap_or(0.5))),
        text().prop_map(Value::String),
        proptest::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(WORDS).prop_map(str::to_string),
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn a_user() -> Map<String, Value> {
    let v = json!({
        "userName": "u@x", "active": true, "name": {"givenName": "G"},
        "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}
    });
    v.as_object().cloned().unwrap_or_default()
}

proptest! {
    #[test]
    fn filters_parse_check_and_evaluate_without_panicking(t in text()) {
        let user = ResourceKind::User.builtin();
        if let Ok((f, _)) = filter::parse_noting(&t) {
            if filter::check(user, &f).is_ok() {
                let _ = filter::matches(user, &f, &Value::Object(a_user()));
            }
            let _ = filter::prune(ResourceKind::Group.builtin(), &f);
        }
    }

    #[test]
    fn patches_apply_and_validate_without_panicking(
        ops in proptest::collection::vec(
            (
                proptest::sample::select(&["add", "replace", "remove", "Add", "REPLACE", "x"][..]),
                proptest::option::of(text()),
                proptest::option::of(json_value()),
            ),
            1..6,
        ),
        group in any::<bool>(),
    ) {
        let ops: Vec<Value> = ops
            .into_iter()
            .map(|(op, path, value)| {
                let mut o = json!({"op": op});
                if let Some(p) = path { o["path"] = Value::String(p); }
                if let Some(v) = value { o["value"] = v; }
                o
            })
            .collect();
        let (rt, doc) = if group {
            (ResourceKind::Group.builtin(), json!({"displayName": "g"}).as_object().cloned().unwrap_or_default())
        } else {
            (ResourceKind::User.builtin(), a_user())
        };
        if let Ok(ops) = patch::parse_request(&json!({"Operations": ops})) {
            let _ = patch::password_in(rt, &ops);
            if let Ok(out) = patch::apply(rt, &doc, &ops) {
                let _ = prepare(rt, &Value::Object(out.doc));
            }
        }
    }

    #[test]
    fn request_bodies_validate_without_panicking(body in json_value(), group in any::<bool>()) {
        let kind = if group { ResourceKind::Group } else { ResourceKind::User };
        if let Ok(p) = prepare(kind.builtin(), &body) {
            // What validation keeps validates again unchanged.
            let again = prepare(kind.builtin(), &Value::Object(p.doc.clone()));
            prop_assert!(again.is_ok(), "{:?}", again.err());
        }
    }
}
