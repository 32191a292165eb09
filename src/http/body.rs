//! The body of a SCIM write or search: a JSON document sent as `application/scim+json` or
//! `application/json` (or without a Content-Type), read within `max_body_size`, and parsed
//! strictly — an object with the same key twice is refused, so scimd and a proxy in front of it
//! can never disagree about what was sent.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// A request body parsed as described above.
pub(crate) struct ScimJson(pub Value);

impl std::ops::Deref for ScimJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl FromRequest for ScimJson {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ScimJson, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media = check_media_type(req);
        let (limit, timeout) = req
            .app_data::<web::Data<super::AppState>>()
            .map_or((usize::MAX, Duration::MAX), |s| {
                (s.config.max_body_size, s.config.body_timeout)
            });
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            media?;
            // A client that declares a body and sends it slowly, or never, must not keep its
            // connection and a worker's attention forever.
            let bytes = tokio::time::timeout(timeout, bytes)
                .await
                .map_err(|_| Error::BodyTimeout(timeout.as_secs()))?;
            let bytes = bytes.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => Error::PayloadTooLarge(limit),
                _ => Error::invalid_syntax(format!("unreadable request body: {e}")),
            })?;
            parse_strict(&bytes).map(ScimJson)
        })
    }
}

/// A body must be JSON: `application/scim+json` or `application/json` (or any
/// `application/*+json`), in UTF-8. A request without a Content-Type is read as JSON too.
fn check_media_type(req: &HttpRequest) -> Result<(), Error> {
    let unsupported = |what: String| Error::UnsupportedMediaType(what);
    let mime = match req.mime_type() {
        Ok(None) => return Ok(()),
        Ok(Some(m)) => m,
        Err(_) => return Err(unsupported("the Content-Type header is malformed".into())),
    };
    let json = mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"));
    if !json {
        return Err(unsupported(format!(
            "the body must be application/scim+json or application/json, not {mime}"
        )));
    }
    match mime.get_param("charset") {
        Some(c) if !c.as_str().eq_ignore_ascii_case("utf-8") => Err(unsupported(format!(
            "the body must be UTF-8, not charset={c}"
        ))),
        _ => Ok(()),
    }
}

/// Parses JSON text, refusing an object that has the same key twice.
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| Error::invalid_syntax(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A JSON value whose objects have no repeated key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// Arbitrary bytes never panic the parser; JSON text without repeated keys parses to
        /// what serde_json makes of it.
        #[test]
        fn strict_parsing_never_panics_and_agrees_with_serde_json(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            keys in proptest::collection::vec("[a-z]{1,3}", 0..6),
            nested in any::<bool>(),
        ) {
            let _ = parse_strict(&bytes);
            let mut object = Map::new();
            for (i, k) in keys.iter().enumerate() {
                object.insert(k.clone(), json!(i));
            }
            let value = if nested { json!({"outer": [object.clone(), object]}) } else { Value::Object(object) };
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(parse_strict(&text).unwrap(), value);
        }
    }

    #[test]
    fn strict_parsing_equals_serde_json_but_refuses_repeated_keys() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"x\u00e9"],"c":{"d":{}}}"#,
            r#"[]"#,
            r#""s""#,
            r#"18446744073709551615"#,
        ] {
            let lax: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse_strict(text.as_bytes()).unwrap(), lax, "{text}");
        }
        let keys: Vec<String> = parse_strict(br#"{"z":1,"a":2}"#)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["z", "a"], "key order is kept");
        for text in [
            r#"{"userName":"a","userName":"b"}"#,
            r#"{"x":{"k":1,"k":1}}"#,
            r#"[{"k":1},{"k":2,"k":3}]"#,
        ] {
            assert!(parse_strict(text.as_bytes()).is_err(), "{text}");
        }
        // Different keys that differ only in case are left to the schema (it refuses them too).
        assert_eq!(
            parse_strict(br#"{"a":1,"A":2}"#).unwrap(),
            json!({"a": 1, "A": 2})
        );
        assert!(parse_strict(b"{} x").is_err(), "trailing text");
    }
}
