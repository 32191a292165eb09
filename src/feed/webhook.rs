//! A feed's messages in the Standard Webhooks form: a JSON body holding a batch of events, an
//! id and a timestamp, and `v1,<base64 HMAC-SHA256>` signatures of `{id}.{timestamp}.{body}`
//! under the feed's `whsec_<base64>` secrets, so receivers can check them with the
//! specification's own libraries. Pure: the caller brings the time and the randomness.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::store::feeds::Event;

/// How a signing secret starts.
pub(crate) const SECRET_PREFIX: &str = "whsec_";

/// A secret from 32 random bytes.
pub(crate) fn secret_of(random: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(random))
}

/// The HMAC key a secret holds.
pub(crate) fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("a signing secret starts with {SECRET_PREFIX}"))?;
    B64.decode(encoded)
        .map_err(|e| format!("a signing secret is {SECRET_PREFIX} and base64: {e}"))
}

/// One signature of a message: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub(crate) fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", B64.encode(ctx.sign().as_ref()))
}

/// The `webhook-signature` header: a signature under each secret (two while a rotation
/// overlaps), space-separated.
pub(crate) fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let mut out = Vec::new();
    for s in secrets {
        out.push(signature(&key_of(s)?, id, timestamp, body));
    }
    Ok(out.join(" "))
}

/// A message's id: the feed and the range of events it carries, the same on every retry (a
/// receiver that saw it already can tell).
pub(crate) fn message_id(feed_id: i64, first: i64, last: i64) -> String {
    format!("msg_{feed_id}_{first}_{last}")
}

/// A message's body: `type`, `timestamp` (RFC 3339) and `data` with the provider and its
/// events in order, which `events` writes (JSON objects separated by commas) in about `size`
/// bytes (room for them is made at once: a message of a thousand events grown by doubling
/// would copy itself a dozen times into fresh pages).
pub(crate) fn body(
    provider: &str,
    timestamp: &str,
    size: usize,
    events: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + provider.len() + timestamp.len() + size);
    out.extend_from_slice(br#"{"type":"scim.events","timestamp":"#);
    string(&mut out, timestamp);
    out.extend_from_slice(br#","data":{"provider":"#);
    string(&mut out, provider);
    out.extend_from_slice(br#","events":["#);
    events(&mut out);
    out.extend_from_slice(b"]}}");
    out
}

/// Appends one event as a message carries it: `seq`, `time` (RFC 3339, milliseconds),
/// `resourceType`, `id`, `externalId`, `operation`, `changed` and `version`. A feed that sends
/// the resource adds it with `with_resource`.
pub(crate) fn event(out: &mut Vec<u8>, e: &Event) {
    let time = chrono::DateTime::from_timestamp_millis(e.at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    out.extend_from_slice(br#"{"seq":"#);
    number(out, e.seq);
    out.extend_from_slice(br#","time":"#);
    string(out, &time);
    out.extend_from_slice(br#","resourceType":"#);
    string(out, e.kind.name());
    out.extend_from_slice(br#","id":"#);
    string(out, &e.resource_id);
    out.push(b',');
    string(out, crate::scim::events::EXTERNAL_ID);
    out.push(b':');
    match &e.external_id {
        Some(x) => string(out, x),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","operation":"#);
    string(out, e.op.as_str());
    // The names are stored as the JSON array the change record wrote: carried as they are.
    out.extend_from_slice(br#","changed":"#);
    match e.changed.trim() {
        names if names.starts_with('[') && names.ends_with(']') => {
            out.extend_from_slice(names.as_bytes())
        }
        _ => out.extend_from_slice(b"[]"),
    }
    out.extend_from_slice(br#","version":"W/\""#);
    number(out, e.version);
    out.extend_from_slice(br#"\""}"#);
}

/// Appends an event `event` wrote with the resource as it stands now beside its other members.
pub(crate) fn with_resource(out: &mut Vec<u8>, event: &[u8], resource: &Value) {
    out.extend_from_slice(event.strip_suffix(b"}").unwrap_or(event));
    out.extend_from_slice(br#","resource":"#);
    // Writing into a Vec does not fail.
    serde_json::to_writer(&mut *out, resource).ok();
    out.push(b'}');
}

/// Appends `n` in decimal.
fn number(out: &mut Vec<u8>, n: i64) {
    use std::io::Write;
    // Writing into a Vec does not fail.
    write!(out, "{n}").ok();
}

/// The room `event` takes for `e`, near enough (its fixed part, a time, and its texts).
pub(crate) fn event_size(e: &Event) -> usize {
    170 + e.resource_id.len() + e.external_id.as_ref().map_or(0, String::len) + e.changed.len()
}

/// Appends `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bad_ones_are_named() {
        let s = secret_of(&[7; 32]);
        assert!(s.starts_with("whsec_"));
        assert_eq!(key_of(&s).unwrap(), vec![7; 32]);
        assert!(key_of("abc").unwrap_err().contains("whsec_"));
        assert!(key_of("whsec_!!").unwrap_err().contains("base64"));
    }

    #[test]
    fn a_signature_is_the_hmac_of_id_timestamp_and_body() {
        // HMAC-SHA256 with key "key" of "msg_1.1700000000.{}", checked against
        // Python's hmac module: base64 of the digest.
        let sig = signature(b"key", "msg_1", 1_700_000_000, b"{}");
        assert_eq!(sig, "v1,XaXLFEFQ69Q4+demDWPEv5ydXczDW2mM5crCUEFcFBA=");
        let both =
            signature_header(&[&secret_of(&[1; 32]), &secret_of(&[2; 32])], "m", 1, b"x").unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn a_body_carries_each_event_as_json_with_its_resource_when_given() {
        let mut e = Event {
            seq: 7,
            at: 1_700_000_000_123,
            kind: crate::scim::ResourceKind::User,
            resource_id: "u\"1".into(),
            external_id: None,
            op: crate::scim::events::Op::Patch,
            changed: r#"["title","urn:x:y:z"]"#.into(),
            version: 3,
            method: None,
        };
        let mut plain = Vec::new();
        event(&mut plain, &e);
        e.external_id = Some("x\\1".into());
        e.changed = "not json".into();
        let mut other = Vec::new();
        event(&mut other, &e);
        let resource = serde_json::json!({"id": "u\"1", "active": true});
        let body = body("entra", "2026-12-07T10:00:00.000Z", 0, |out| {
            out.extend_from_slice(&plain);
            out.push(b',');
            with_resource(out, &other, &resource);
        });
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "type": "scim.events",
                "timestamp": "2026-12-07T10:00:00.000Z",
                "data": {"provider": "entra", "events": [
                    {"seq": 7, "time": "2023-11-14T22:13:20.123Z", "resourceType": "User",
                     "id": "u\"1", "externalId": null, "operation": "patch",
                     "changed": ["title", "urn:x:y:z"], "version": "W/\"3\""},
                    {"seq": 7, "time": "2023-11-14T22:13:20.123Z", "resourceType": "User",
                     "id": "u\"1", "externalId": "x\\1", "operation": "patch",
                     "changed": [], "version": "W/\"3\"",
                     "resource": {"id": "u\"1", "active": true}},
                ]},
            })
        );
    }
}
