//! A feed's events as Security Event Tokens (RFC 8417) of the SCIM profile (RFC 9967): one
//! signed JWT per event (ES256, `typ` `secevent+jwt`), the resource named by a `sub_id` of
//! format `scim`, and the `prov:*` events the change stands for (a patch that deactivated a
//! user is `prov:patch:*` and `prov:deactivate` in one token). The signing key is a P-256
//! key kept as PKCS#8; receivers verify with the public half, published as a JWKS (RFC 7517)
//! whose key ids are RFC 7638 thumbprints. Pure: the caller brings times and randomness.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Map, Value, json};

use crate::scim::events::Op;

/// The SET media type of RFC 8417, as the `typ` header and (with `application/`) the
/// Content-Type of a push (RFC 8935).
pub(crate) const TYP: &str = "secevent+jwt";

/// The prefix of every SCIM event URI (RFC 9967 §2).
const PROV: &str = "urn:ietf:params:scim:event:prov:";

/// The events a feed of SETs sends, as `ServiceProviderConfig` lists them.
pub(crate) fn event_uris() -> Vec<String> {
    let mut out = Vec::new();
    for verb in ["create", "put", "patch"] {
        for mode in ["notice", "full"] {
            out.push(format!("{PROV}{verb}:{mode}"));
        }
    }
    for verb in ["delete", "activate", "deactivate"] {
        out.push(format!("{PROV}{verb}"));
    }
    out
}

/// A signing key: the key pair and its public half as a JWK.
pub(crate) struct SigningKey {
    pair: EcdsaKeyPair,
    jwk: Value,
    kid: String,
}

/// A new P-256 key, as a feed stores it (its PKCS#8 document in base64).
pub(crate) fn new_key() -> Result<String, String> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| "making a signing key failed".to_string())?;
    Ok(B64.encode(doc.as_ref()))
}

impl SigningKey {
    /// The key a feed stored with `new_key`.
    pub(crate) fn load(stored: &str) -> Result<SigningKey, String> {
        let pkcs8 = B64
            .decode(stored.trim())
            .map_err(|e| format!("a feed's signing key is not base64: {e}"))?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| format!("a feed's signing key is not a P-256 key: {e}"))?;
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]));
        // RFC 7638: the digest of the required members, in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64URL.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": kid,
        });
        Ok(SigningKey { pair, jwk, kid })
    }

    #[cfg(test)]
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact JWS of `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "ES256", "typ": TYP, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "signing a security event token failed".to_string())?;
        Ok(format!("{signing_input}.{}", B64URL.encode(sig.as_ref())))
    }
}

/// The JWKS of `keys` (the current key first, a rotated-out one while it is still published).
pub(crate) fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// One change, as its token tells it.
pub(crate) struct Change<'a> {
    pub(crate) op: Op,
    /// The request's method (PUT for a replace), when the store kept it.
    pub(crate) method: Option<&'a str>,
    pub(crate) changed: &'a [String],
    /// `W/"n"`.
    pub(crate) version: String,
    /// The resource as it stands now, for a feed that sends it (None when it is gone).
    pub(crate) data: Option<Value>,
}

/// The `events` claim of a change: the provisioning event (with the resource in `data` when
/// there is one, else the changed attributes' names in `attributes`) and, for a change of
/// activation, `prov:activate` or `prov:deactivate` beside it.
pub(crate) fn events(change: Change<'_>) -> Value {
    let mut events = Map::new();
    let verb = match change.op {
        Op::Delete => {
            events.insert(format!("{PROV}delete"), json!({}));
            return Value::Object(events);
        }
        Op::Create => "create",
        Op::Replace => "put",
        Op::Patch => "patch",
        Op::Activate | Op::Deactivate | Op::Members => match change.method {
            Some(m) if m.eq_ignore_ascii_case("PUT") => "put",
            _ => "patch",
        },
    };
    let mut payload = Map::new();
    let mode = match change.data {
        Some(data) => {
            payload.insert("data".into(), data);
            "full"
        }
        None => {
            payload.insert("attributes".into(), json!(change.changed));
            "notice"
        }
    };
    payload.insert("version".into(), json!(change.version));
    events.insert(format!("{PROV}{verb}:{mode}"), Value::Object(payload));
    match change.op {
        Op::Activate => events.insert(format!("{PROV}activate"), json!({})),
        Op::Deactivate => events.insert(format!("{PROV}deactivate"), json!({})),
        _ => None,
    };
    Value::Object(events)
}

/// Who issues a token, for whom, and which one it is.
pub(crate) struct Envelope<'a> {
    /// The provider's SCIM base URL.
    pub(crate) iss: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) jti: &'a str,
    /// The change's transaction: the same in every feed's token of it.
    pub(crate) txn: &'a str,
    /// Unix seconds of the commit.
    pub(crate) iat: i64,
    /// The resource's path under the base URL (`/Users/<id>`).
    pub(crate) uri: &'a str,
    pub(crate) external_id: Option<&'a str>,
}

/// The claims of one token (RFC 8417 §2.2, RFC 9967 §2.1): no `sub`, no `exp`.
pub(crate) fn claims(e: &Envelope<'_>, events: Value) -> Value {
    let mut sub_id = json!({"format": "scim", "uri": e.uri});
    if let Some(ext) = e.external_id {
        sub_id[crate::scim::schema::EXTERNAL_ID.name] = json!(ext);
    }
    json!({
        "iss": e.iss,
        "aud": e.aud,
        "jti": e.jti,
        "txn": e.txn,
        "iat": e.iat,
        "sub_id": sub_id,
        "events": events,
    })
}

/// A token's id: the feed and the event, the same each time the event is sent again.
pub(crate) fn jti(feed_id: i64, seq: i64) -> String {
    format!("{feed_id}-{seq}")
}

/// The event a token id of this feed names.
pub(crate) fn seq_of(feed_id: i64, jti: &str) -> Option<i64> {
    let (feed, seq) = jti.split_once('-')?;
    match feed.parse::<i64>().ok()? == feed_id {
        true => seq.parse().ok(),
        false => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    fn part(token: &str, i: usize) -> Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn a_token_verifies_with_the_published_key_and_names_its_kid() {
        let stored = new_key().unwrap();
        let key = SigningKey::load(&stored).unwrap();
        let token = key.sign(&json!({"jti": "1-1"})).unwrap();
        let header = part(&token, 0);
        assert_eq!(header["typ"], TYP);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.kid());
        assert_eq!(part(&token, 1), json!({"jti": "1-1"}));
        // Verify as a receiver would: the public point rebuilt from the JWK's x and y.
        let jwk = &jwks(&[&key])["keys"][0];
        let mut point = vec![4u8];
        point.extend(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(B64URL.decode(jwk["y"].as_str().unwrap()).unwrap());
        let (input, sig) = token.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &B64URL.decode(sig).unwrap())
            .unwrap();
        // The same key loads to the same kid; another key has another.
        assert_eq!(SigningKey::load(&stored).unwrap().kid(), key.kid());
        let other = SigningKey::load(&new_key().unwrap()).unwrap();
        assert_ne!(other.kid(), key.kid());
        assert!(SigningKey::load("not base64!").is_err());
        assert!(SigningKey::load(&B64.encode(b"not a key")).is_err());
    }

    fn change(op: Op, method: Option<&'static str>, data: Option<Value>) -> Value {
        events(Change {
            op,
            method,
            changed: &["active".to_string()],
            version: "W/\"2\"".into(),
            data,
        })
    }

    #[test]
    fn each_change_is_the_events_rfc_9967_names() {
        let v = change(Op::Create, Some("POST"), None);
        assert_eq!(
            v,
            json!({"urn:ietf:params:scim:event:prov:create:notice":
                   {"attributes": ["active"], "version": "W/\"2\""}})
        );
        let v = change(Op::Replace, Some("PUT"), Some(json!({"id": "x"})));
        assert_eq!(
            v["urn:ietf:params:scim:event:prov:put:full"]["data"],
            json!({"id": "x"})
        );
        let v = change(Op::Deactivate, Some("PATCH"), None);
        let names: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "urn:ietf:params:scim:event:prov:patch:notice",
                "urn:ietf:params:scim:event:prov:deactivate"
            ]
        );
        let v = change(Op::Activate, Some("PUT"), None);
        assert!(v["urn:ietf:params:scim:event:prov:put:notice"].is_object());
        assert!(v["urn:ietf:params:scim:event:prov:activate"].is_object());
        let v = change(Op::Members, Some("PATCH"), None);
        assert!(v["urn:ietf:params:scim:event:prov:patch:notice"].is_object());
        assert_eq!(
            change(Op::Delete, Some("DELETE"), None),
            json!({"urn:ietf:params:scim:event:prov:delete": {}})
        );
        // Every event a token can carry is advertised.
        let all = event_uris();
        for op in Op::ALL {
            for method in ["PUT", "PATCH"] {
                for key in change(op, Some(method), None).as_object().unwrap().keys() {
                    assert!(all.contains(key), "{key}");
                }
            }
        }
    }

    #[test]
    fn claims_carry_a_scim_subject_and_token_ids_read_back() {
        let e = Envelope {
            iss: "https://scim.example.com/scim/v2/entra",
            aud: "https://hr.example.com/events",
            jti: &jti(3, 41),
            txn: "entra:41",
            iat: 1_700_000_000,
            uri: "/Users/abc",
            external_id: Some("e-1"),
        };
        let c = claims(&e, json!({}));
        assert_eq!(
            c["sub_id"],
            json!({"format": "scim", "uri": "/Users/abc", "externalId": "e-1"})
        );
        assert_eq!(c["jti"], "3-41");
        assert!(c.get("sub").is_none() && c.get("exp").is_none());
        assert_eq!(seq_of(3, "3-41"), Some(41));
        assert_eq!(seq_of(4, "3-41"), None);
        assert_eq!(seq_of(3, "41"), None);
        assert_eq!(seq_of(3, "3-x"), None);
    }
}
