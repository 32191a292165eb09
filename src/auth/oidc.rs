//! OpenID Connect sign-in, as a relying party of a provider's issuer: discovery, the
//! authorization code flow with PKCE (S256), `state` and `nonce`, the ID token's checks and
//! UserInfo. The protocol and every signature check are the `openidconnect` crate's; this
//! module chooses what it allows (asymmetric algorithms only, a small clock leeway, `azp`,
//! the issuer over verified TLS or plain HTTP on loopback only) and turns the result into the
//! claims the console matches a provisioned user with.
//!
//! HTTP here is blocking (ureq): callers run these functions off the async workers.

use std::time::Duration;

use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdToken, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl,
    JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    Scope, SignatureVerificationError,
};
use serde_json::{Map, Value};

use crate::store::sign_in::OidcSettings;

/// Clock difference tolerated between scimd and the issuer (`exp`, `iat`).
const LEEWAY: i64 = 60;
/// How long an ID token may have been issued before it arrives.
const MAX_AGE: i64 = 10 * 60;
/// The most an issuer's answer may hold (discovery, keys, tokens, UserInfo).
const MAX_BODY: u64 = 1 << 20;
/// Every request to the issuer gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Signature algorithms an ID token may use: public-key ones only. `none` and the HMAC
/// algorithms (whose key would be the client secret, or, in a classic attack, the public key)
/// are refused.
const ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a request to the issuer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error(
        "{0} is plain HTTP to a host that is not loopback: an issuer is reached over HTTPS \
         (plain HTTP only on 127.0.0.0/8 or ::1)"
    )]
    NotHttps(String),
    #[error("{0}")]
    Transport(#[from] ureq::Error),
}

/// The HTTP client for one issuer: verified TLS against the system's roots or the configured
/// CA, no redirects (a redirect could lead a server-side request anywhere), a timeout, a size
/// limit, and plain HTTP only to loopback.
pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(ca_pem: Option<&str>) -> Result<Http, String> {
        Ok(Http {
            agent: crate::outbound::agent(ca_pem, TIMEOUT)?,
        })
    }

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        check_scheme(request.uri())?;
        let answer = self.agent.run(request)?;
        let (parts, mut body) = answer.into_parts();
        let bytes = body.with_config().limit(MAX_BODY).read_to_vec()?;
        Ok(HttpResponse::from_parts(parts, bytes))
    }

    fn client(&self) -> impl Fn(HttpRequest) -> Result<HttpResponse, HttpError> + '_ {
        move |r| self.call(r)
    }
}

/// Plain HTTP only to a loopback address (a trial, a test); everything else over HTTPS.
fn check_scheme(uri: &openidconnect::http::Uri) -> Result<(), HttpError> {
    match crate::outbound::allowed(uri.scheme_str(), uri.host().unwrap_or_default()) {
        true => Ok(()),
        false => Err(HttpError::NotHttps(uri.to_string())),
    }
}

/// Checks an issuer URL as `provider oidc set` takes it: absolute, HTTPS or loopback HTTP, no
/// query or fragment.
pub(crate) fn check_issuer(issuer: &str) -> Result<(), String> {
    let uri: openidconnect::http::Uri = issuer
        .parse()
        .map_err(|_| format!("{issuer:?} is not a URL"))?;
    if uri.host().is_none() || uri.query().is_some() || issuer.contains('#') {
        return Err(format!(
            "{issuer:?} is not an issuer URL such as https://login.microsoftonline.com/<tenant>/v2.0"
        ));
    }
    check_scheme(&uri).map_err(|e| e.to_string())
}

/// An issuer's discovery document and keys.
#[derive(Clone)]
pub(crate) struct Issuer {
    metadata: CoreProviderMetadata,
}

impl Issuer {
    /// Reads `<issuer>/.well-known/openid-configuration` and the keys it names.
    pub(crate) fn discover(http: &Http, issuer: &str) -> Result<Issuer, String> {
        let url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover(&url, &http.client())
            .map_err(|e| format!("discovery at {issuer} failed: {}", chain(&e)))?;
        Ok(Issuer { metadata })
    }

    /// Fetches the issuer's keys again (a token names a key id not seen before: the issuer
    /// rotated its keys).
    fn refresh_keys(&mut self, http: &Http) -> Result<(), String> {
        let keys = JsonWebKeySet::fetch(self.metadata.jwks_uri(), &http.client())
            .map_err(|e| format!("fetching the issuer's keys failed: {}", chain(&e)))?;
        self.metadata = self.metadata.clone().set_jwks(keys);
        Ok(())
    }

    fn client(&self, s: &OidcSettings, redirect: &str) -> Result<Client, String> {
        let redirect = RedirectUrl::new(redirect.to_string()).map_err(|e| e.to_string())?;
        let client = CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(s.client_id.clone()),
            Some(ClientSecret::new(s.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        // client_secret_basic unless the issuer names only client_secret_post.
        let methods = self.metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            m.contains(&CoreClientAuthMethod::ClientSecretPost)
                && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }
}

/// What a sign-in started keeps until its callback: never shown to the browser but `state`.
pub(crate) struct Pending {
    pub(crate) state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

/// Starts a sign-in: the issuer's authorization URL to send the browser to, and what the
/// callback needs.
pub(crate) fn start(
    issuer: &Issuer,
    s: &OidcSettings,
    redirect: &str,
) -> Result<(String, Pending), String> {
    let client = issuer.client(s, redirect)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = Pending {
        state: state.secret().clone(),
        nonce,
        verifier,
    };
    Ok((url.to_string(), pending))
}

/// Why a sign-in did not complete: what the person is told, and what the log says.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) shown: &'static str,
    pub(crate) logged: String,
}

fn failed(shown: &'static str, logged: impl Into<String>) -> Failed {
    Failed {
        shown,
        logged: logged.into(),
    }
}

/// Completes a sign-in: exchanges `code` (with the PKCE verifier), checks the ID token, and
/// returns its claims, with those it lacks read from UserInfo when `wanted` is among them.
pub(crate) fn finish(
    http: &Http,
    issuer: &mut Issuer,
    s: &OidcSettings,
    redirect: &str,
    (pending, code): (Pending, &str),
    wanted: &str,
) -> Result<Map<String, Value>, Failed> {
    const ISSUER: &str = "The identity provider's answer could not be used; the log says why.";
    let client = issuer.client(s, redirect).map_err(|e| failed(ISSUER, e))?;
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| failed(ISSUER, e.to_string()))?
        .set_pkce_verifier(pending.verifier)
        .request(&http.client())
        .map_err(|e| failed(ISSUER, format!("the token request failed: {}", chain(&e))))?;
    let id_token = answer
        .extra_fields()
        .id_token()
        .ok_or_else(|| failed(ISSUER, "the token answer holds no ID token"))?
        .clone();
    let now = chrono::Utc::now().timestamp();
    let mut claims = match verify(issuer, s, &id_token, &pending.nonce, now) {
        Err(Rejected::UnknownKey) => {
            issuer.refresh_keys(http).map_err(|e| failed(ISSUER, e))?;
            verify(issuer, s, &id_token, &pending.nonce, now)
        }
        other => other,
    }
    .map_err(|e| failed(ISSUER, e.to_string()))?;
    if !claims.contains_key(wanted) {
        // Conformant issuers keep profile claims out of the ID token in the code flow.
        let client = issuer.client(s, redirect).map_err(|e| failed(ISSUER, e))?;
        let subject = openidconnect::SubjectIdentifier::new(
            claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        if let Ok(request) = client.user_info(answer.access_token().clone(), Some(subject)) {
            let info: CoreUserInfoClaims = request.request(&http.client()).map_err(|e| {
                failed(
                    ISSUER,
                    format!("the UserInfo request failed: {}", chain(&e)),
                )
            })?;
            if let Ok(Value::Object(more)) = serde_json::to_value(&info) {
                for (k, v) in more {
                    claims.entry(k).or_insert(v);
                }
            }
        }
    }
    Ok(claims)
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Signed with a key the cached key set does not have (fetch the keys again, once).
    #[error("the ID token is signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the ID token was refused: {0}")]
    Invalid(String),
}

/// Checks an ID token against the issuer's keys and the client: signature (public-key
/// algorithms only), `iss`, `aud`, `azp`, `exp` and `iat` (with `LEEWAY`), `nonce`. Returns
/// every claim of its payload.
pub(crate) fn verify(
    issuer: &Issuer,
    s: &OidcSettings,
    id_token: &CoreIdToken,
    nonce: &Nonce,
    now: i64,
) -> Result<Map<String, Value>, Rejected> {
    let client = issuer
        .client(s, "http://127.0.0.1/")
        .map_err(Rejected::Invalid)?;
    let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(ALGORITHMS)
        // `exp` is compared with this time: a token expired less than LEEWAY ago still passes.
        .set_time_fn(move || at(now - LEEWAY))
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            if iat > now + LEEWAY {
                Err(format!("issued in the future ({iat})"))
            } else if iat < now - MAX_AGE - LEEWAY {
                Err(format!("issued too long ago ({iat})"))
            } else {
                Ok(())
            }
        });
    let checked = id_token.claims(&verifier, nonce).map_err(|e| match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => Rejected::UnknownKey,
        other => Rejected::Invalid(chain(&other)),
    })?;
    // More than one audience needs an azp naming this client; an azp always must.
    let audiences = checked.audiences();
    match checked.authorized_party() {
        Some(azp) if azp.as_str() != s.client_id => {
            return Err(Rejected::Invalid(format!(
                "azp {:?} is not this client",
                azp.as_str()
            )));
        }
        None if audiences.len() > 1 => {
            return Err(Rejected::Invalid(
                "several audiences and no azp".to_string(),
            ));
        }
        _ => {}
    }
    // The signature covers the whole payload: read every claim of it (`oid`, `groups`, ...),
    // not only those the crate models.
    let text = id_token.to_string();
    let payload = text
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .ok_or_else(|| Rejected::Invalid("the payload is not a JSON object".into()))?;
    Ok(payload)
}

/// A claim's value as text (a string, or a number or boolean written out).
pub(crate) fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    const ISSUER_URL: &str = "https://issuer.example";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 key with its id.
    struct Key {
        kid: &'static str,
        pair: EcdsaKeyPair,
    }

    impl Key {
        fn new(kid: &'static str) -> Key {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("a P-256 key");
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("the key parses");
            Key { kid, pair }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                   "x": b64(&point[1..33]), "y": b64(&point[33..65])})
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("signing");
            format!("{input}.{}", b64(sig.as_ref()))
        }

        fn token(&self, claims: &Value) -> String {
            self.sign(
                &json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
                claims,
            )
        }
    }

    fn issuer_with(keys: &[&Key]) -> Issuer {
        let metadata = json!({
            "issuer": ISSUER_URL,
            "authorization_endpoint": format!("{ISSUER_URL}/auth"),
            "token_endpoint": format!("{ISSUER_URL}/token"),
            "jwks_uri": format!("{ISSUER_URL}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        });
        let metadata: CoreProviderMetadata =
            serde_json::from_value(metadata).expect("metadata parses");
        let jwks: JsonWebKeySet<_> = serde_json::from_value(
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
        )
        .expect("keys parse");
        Issuer {
            metadata: metadata.set_jwks(jwks),
        }
    }

    fn settings() -> OidcSettings {
        OidcSettings {
            provider_id: 1,
            provider: "contoso".into(),
            issuer: ISSUER_URL.into(),
            client_id: "scimd".into(),
            client_secret: "client secret".into(),
            ca_pem: None,
            match_claim: "preferred_username".into(),
            match_attribute: "userName".into(),
            admin_group: None,
            changed: 0,
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({"iss": ISSUER_URL, "aud": "scimd", "sub": "u-1", "nonce": "n-1",
               "iat": NOW - 5, "exp": NOW + 300, "preferred_username": "ann@contoso.com",
               "oid": "0f2c"})
    }

    fn check(issuer: &Issuer, token: &str) -> Result<Map<String, Value>, Rejected> {
        let token: CoreIdToken = match token.parse() {
            Ok(t) => t,
            Err(e) => return Err(Rejected::Invalid(format!("does not parse: {e}"))),
        };
        verify(issuer, &settings(), &token, &Nonce::new("n-1".into()), NOW)
    }

    fn refused(issuer: &Issuer, token: &str) -> String {
        match check(issuer, token) {
            Err(Rejected::Invalid(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_well_signed_token_gives_every_claim() {
        let key = Key::new("k1");
        let issuer = issuer_with(&[&key]);
        let got = check(&issuer, &key.token(&claims())).expect("accepted");
        assert_eq!(
            claim_text(&got, "preferred_username").as_deref(),
            Some("ann@contoso.com")
        );
        assert_eq!(claim_text(&got, "oid").as_deref(), Some("0f2c"));
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let (key, other) = (Key::new("k1"), Key::new("k1"));
        let issuer = issuer_with(&[&key]);
        refused(&issuer, &other.token(&claims()));
        // A payload changed after signing.
        let good = key.token(&claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut changed = claims();
        changed["preferred_username"] = json!("admin@contoso.com");
        let forged = b64(changed.to_string().as_bytes());
        parts[1] = &forged;
        refused(&issuer, &parts.join("."));
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let key = Key::new("k1");
        let issuer = issuer_with(&[&key]);
        let body = b64(claims().to_string().as_bytes());
        let none = format!("{}.{body}.", b64(br#"{"alg":"none"}"#));
        assert!(check(&issuer, &none).is_err());
        // HMAC keyed with the client secret, and with the public key's bytes (the classic
        // confusion attack): refused whatever the key.
        for secret in [b"client secret".as_slice(), key.pair.public_key().as_ref()] {
            let header = b64(br#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#);
            let input = format!("{header}.{body}");
            let mac = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
                input.as_bytes(),
            );
            assert!(check(&issuer, &format!("{input}.{}", b64(mac.as_ref()))).is_err());
        }
    }

    #[test]
    fn issuer_audience_azp_times_and_nonce_are_checked() {
        let key = Key::new("k1");
        let issuer = issuer_with(&[&key]);
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            key.token(&c)
        };
        refused(&issuer, &with("iss", json!("https://evil.example")));
        refused(&issuer, &with("aud", json!("another-client")));
        // Another audience beside this client is not trusted, azp or not.
        refused(&issuer, &with("aud", json!(["scimd", "another-client"])));
        let mut both = claims();
        both["aud"] = json!(["scimd", "another-client"]);
        both["azp"] = json!("scimd");
        refused(&issuer, &key.token(&both));
        // An azp must name this client.
        refused(&issuer, &with("azp", json!("another-client")));
        assert!(check(&issuer, &with("azp", json!("scimd"))).is_ok());
        refused(&issuer, &with("exp", json!(NOW - LEEWAY - 1)));
        assert!(
            check(&issuer, &with("exp", json!(NOW - 10))).is_ok(),
            "within the leeway"
        );
        refused(&issuer, &with("iat", json!(NOW + LEEWAY + 30)));
        refused(&issuer, &with("iat", json!(NOW - MAX_AGE - LEEWAY - 1)));
        refused(&issuer, &with("nonce", json!("n-2")));
    }

    #[test]
    fn an_unknown_key_id_asks_for_the_keys_again() {
        let (old, new) = (Key::new("k1"), Key::new("k2"));
        let before = issuer_with(&[&old]);
        assert_eq!(
            check(&before, &new.token(&claims())),
            Err(Rejected::UnknownKey)
        );
        // After the keys were fetched again (the issuer rotated): accepted.
        let after = issuer_with(&[&old, &new]);
        assert!(check(&after, &new.token(&claims())).is_ok());
    }

    #[test]
    fn issuers_are_https_or_loopback() {
        assert!(check_issuer("https://login.example.com/tenant/v2.0").is_ok());
        assert!(check_issuer("http://127.0.0.1:3000").is_ok());
        assert!(check_issuer("http://[::1]:3000/oidc").is_ok());
        assert!(check_issuer("http://login.example.com").is_err());
        assert!(check_issuer("http://10.0.0.1").is_err());
        assert!(check_issuer("https://x.example/?a=b").is_err());
        assert!(check_issuer("not a url").is_err());
    }
}
