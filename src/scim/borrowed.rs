//! A stored document read without copying it: a JSON tree whose strings point into the text
//! (unless they hold an escape) and whose objects are short lists looked up in order. The
//! directory builds thousands of entries a second from stored documents and reads a handful of
//! attributes from each; parsing them into `serde_json::Value` (an owned string per key and
//! value, a hashed map per object) was half the CPU of a paged read of every entry.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value borrowed from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the text's order; a name given twice is found at its first place.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses a whole document.
    pub(crate) fn parse(text: &'a str) -> serde_json::Result<Json<'a>> {
        serde_json::from_str(text)
    }

    /// The member `name` of an object (names compared exactly, as stored documents spell
    /// them); `None` for anything else.
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Name(name)) = map.next_key()? {
            members.push((name, map.next_value()?));
        }
        Ok(Json::Object(members))
    }
}

/// An object member's name, borrowed when the text holds it as it is.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads_and_borrows_plain_strings() {
        let text = r#"{"userName":"al\"ice","active":false,"n":-3,"f":1.5,"big":18446744073709551615,
            "none":null,"emails":[{"value":"a@x","primary":true},{"value":"b@x"}],
            "name":{"givenName":"Alice","tab\tkey":"v"}}"#;
        let doc = Json::parse(text).unwrap();
        assert_eq!(doc.get("userName").and_then(Json::as_str), Some("al\"ice"));
        assert_eq!(doc.get("active").and_then(Json::as_bool), Some(false));
        assert_eq!(doc.get("n"), Some(&Json::Number((-3).into())));
        assert_eq!(doc.get("big"), Some(&Json::Number(u64::MAX.into())));
        assert_eq!(
            doc.get("f"),
            Some(&Json::Number(serde_json::Number::from_f64(1.5).unwrap()))
        );
        assert_eq!(doc.get("none"), Some(&Json::Null));
        let emails = doc.get("emails").and_then(Json::as_array).unwrap();
        assert_eq!(emails.len(), 2);
        assert_eq!(emails[1].get("value").and_then(Json::as_str), Some("b@x"));
        assert_eq!(emails[0].get("primary").and_then(Json::as_bool), Some(true));
        let name = doc.get("name").unwrap();
        assert!(matches!(name, Json::Object(_)));
        assert_eq!(name.get("tab\tkey").and_then(Json::as_str), Some("v"));
        // A string without an escape points into the text; one with an escape is a copy.
        assert!(matches!(
            name.get("givenName"),
            Some(Json::Str(Cow::Borrowed("Alice")))
        ));
        assert!(matches!(
            doc.get("userName"),
            Some(Json::Str(Cow::Owned(_)))
        ));
        // Not an object, or no such member.
        assert_eq!(doc.get("userName").and_then(|u| u.get("x")), None);
        assert_eq!(doc.get("missing"), None);
        assert!(Json::parse("{\"a\":").is_err());
    }
}
