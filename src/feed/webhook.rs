//! A feed's messages in the Standard Webhooks form: a JSON body holding a batch of events, an
//! id and a timestamp, and `v1,<base64 HMAC-SHA256>` signatures of `{id}.{timestamp}.{body}`
//! under the feed's `whsec_<base64>` secrets, so receivers can check them with the
//! specification's own libraries. Pure: the caller brings the time and the randomness.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

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
/// events in order.
pub(crate) fn body<E: Serialize>(provider: &str, timestamp: &str, events: &E) -> Vec<u8> {
    #[derive(Serialize)]
    struct Data<'a, E> {
        provider: &'a str,
        events: &'a E,
    }
    #[derive(Serialize)]
    struct Message<'a, E> {
        r#type: &'static str,
        timestamp: &'a str,
        data: Data<'a, E>,
    }
    let m = Message {
        r#type: "scim.events",
        timestamp,
        data: Data { provider, events },
    };
    serde_json::to_vec(&m).unwrap_or_default()
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
}
