//! The top of a User's or Group's page: a summary of the attributes the schema model marks
//! for it (status, names, emails and phones by type, title, department, manager as a link,
//! externalId), read from the served document; and a group's members a page at a time.

use std::collections::HashMap;

use maud::{Markup, html};
use serde_json::Value;

use super::urlencode;
use crate::scim::schema::{Attribute, ResourceType, Role};

/// The ids a document's summary references (a manager), to be named by the caller.
pub(crate) fn referenced(rt: &ResourceType, doc: &Value) -> Vec<String> {
    rt.summary()
        .into_iter()
        .filter(|(_, a)| a.role == Role::Reference)
        .filter_map(|(urn, a)| {
            let v = match urn {
                None => doc.get(a.name),
                Some(u) => doc.get(u).and_then(|e| e.get(a.name)),
            }?;
            let main = a.default_sub().map_or("value", |s| s.name);
            v.get(main).and_then(Value::as_str).map(str::to_string)
        })
        .collect()
}

/// One value of a summary attribute, as text or a link (`names`: referenced ids' names).
fn shown(attr: &Attribute, v: &Value, pbase: &str, names: &HashMap<String, String>) -> Markup {
    match v {
        Value::String(s) => html! { (s) },
        Value::Bool(b) => html! { (b) },
        Value::Number(n) => html! { (n.to_string()) },
        Value::Array(items) => html! {
            ul.values { @for item in items { li { (shown(attr, item, pbase, names)) } } }
        },
        Value::Object(o) => {
            let main = attr.default_sub().map_or("value", |a| a.name);
            let value = o.get(main).and_then(Value::as_str).unwrap_or_default();
            // What else the value says, as an identity provider sent it: its type, a name.
            let also: Vec<String> = attr
                .sub_attributes
                .iter()
                .filter(|s| s.name != main && s.ty == crate::scim::schema::Type::String)
                .filter_map(|s| o.get(s.name).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let primary = o.get("primary").and_then(Value::as_bool) == Some(true);
            html! {
                @if attr.role == Role::Reference && !value.is_empty() {
                    a href={(pbase) "/Users/" (urlencode(value))} {
                        (names.get(value).or(also.first()).map_or(value, String::as_str))
                    }
                } @else {
                    (value)
                    @if !also.is_empty() { " (" (also.join(", ")) ")" }
                }
                @if primary { " — primary" }
            }
        }
        Value::Null => html! {},
    }
}

/// The summary of a served document of type `rt`; `pbase` is the provider's console path.
pub(crate) fn summary(
    rt: &ResourceType,
    doc: &Value,
    pbase: &str,
    names: &HashMap<String, String>,
) -> Markup {
    let active = doc.as_object().map(|o| rt.is_active(o));
    html! {
        dl.facts.summary-card {
            // The badge says the attribute's own name when it holds, "deactivated" when not.
            @if let Some(name) = rt.active_name() {
                dt { "Status" }
                dd {
                    @match active {
                        Some(false) => span.badge.bad { "deactivated" },
                        _ => span.badge.ok { (name) },
                    }
                }
            }
            @for (urn, attr) in rt.summary() {
                @let v = match urn {
                    None => doc.get(attr.name),
                    Some(u) => doc.get(u).and_then(|e| e.get(attr.name)),
                };
                @if let Some(v) = v.filter(|v| !v.is_null() && v.as_str() != Some("")) {
                    dt { (attr.name) }
                    dd { (shown(attr, v, pbase, names)) }
                }
            }
        }
    }
}
