//! Token format `scimd_<id>_<secret>`, secret generation, hashing and the token's state.
//!
//! The id lets the server find the token's row without scanning; the `scimd_` prefix lets
//! secret scanners recognise a leaked token. Only an argon2id hash of the secret is stored.

use std::fmt;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

pub(crate) const PREFIX: &str = "scimd_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token secret. Its `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret presented in another form than a token (an LDAP bind's password).
    pub(crate) fn from_text(text: &str) -> Secret {
        Secret(text.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A freshly made token: its id, and the full text handed to the operator once.
pub struct NewToken {
    pub id: String,
    pub full: Secret,
    pub secret: Secret,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes as hex (also console session cookies and CSRF tokens: 32).
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    OsRng.fill_bytes(&mut buf);
    hex(&buf)
}

pub fn generate() -> NewToken {
    let id = random_hex(ID_BYTES);
    let secret = random_hex(SECRET_BYTES);
    NewToken {
        full: Secret(format!("{PREFIX}{id}_{secret}")),
        id,
        secret: Secret(secret),
    }
}

/// Splits a presented token into its id and secret; `None` if it is not a scimd token.
pub(crate) fn parse(text: &str) -> Option<(&str, Secret)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, len: usize| {
        s.len() == len * 2
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !is_hex(id, ID_BYTES) || !is_hex(secret, SECRET_BYTES) {
        return None;
    }
    Some((id, Secret(secret.to_string())))
}

/// The fingerprint stored beside a machine-made secret's hash (see migration 18): 64 bits of
/// a keyed BLAKE2s digest of the credential's id and secret, in hex.
pub fn fingerprint(id: &str, secret: &Secret) -> String {
    use blake2::{Blake2s256, Digest};
    let d = Blake2s256::new()
        .chain_update(b"scimd credential fingerprint\0")
        .chain_update(id.as_bytes())
        .chain_update([0u8])
        .chain_update(secret.0.as_bytes())
        .finalize();
    hex(&d[..8])
}

/// Whether `secret` may be the one whose fingerprint is `stored`: a mismatch refuses it
/// without argon2; `None` (a credential older than fingerprints) always may.
pub(crate) fn may_match(stored: Option<&str>, id: &str, secret: &Secret) -> bool {
    stored.is_none_or(|f| {
        let mine = fingerprint(id, secret);
        // Constant time is not needed against a fingerprint, but costs nothing.
        mine.len() == f.len()
            && mine
                .bytes()
                .zip(f.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    })
}

/// An argon2id PHC string of the secret (argon2's default cost: 19 MiB, 2 passes).
pub fn hash(secret: &Secret) -> Result<String, String> {
    hash_str(&secret.0)
}

/// An argon2id PHC string of any secret text (token secrets, user passwords).
pub(crate) fn hash_str(secret: &str) -> Result<String, String> {
    let fail = |e: &dyn fmt::Display| format!("argon2 hashing failed: {e}");
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            secret.as_bytes(),
            salt_bytes,
            &mut out,
            working_memory(params.block_count()),
        )
        .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Checks a secret against a stored PHC string. Costs one full argon2 run.
pub(crate) fn verify(secret: &Secret, phc: &str) -> bool {
    verify_str(&secret.0, phc)
}

pub(crate) fn verify_str(secret: &str, phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(h.algorithm), Params::try_from(&h))
    else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = working_memory(params.block_count());
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret.as_bytes(), salt_bytes, &mut out, blocks)
        .is_err()
    {
        return false;
    }
    // Output compares in constant time.
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// argon2's working memory (19 MiB at the default cost), allocated so that it goes back to the
/// system when the run ends. glibc serves a large allocation from its own mapping and unmaps it
/// when freed, but then raises that size threshold (up to 32 MiB) so later 19 MiB runs come
/// from per-thread heaps that keep the memory; under a stream of wrong secrets that held over
/// 150 MiB. A reservation above 32 MiB always gets its own mapping; only the pages argon2
/// writes become resident.
fn working_memory(blocks: usize) -> Vec<Block> {
    const OWN_MAPPING: usize = (33 << 20) / Block::SIZE;
    let mut memory = Vec::with_capacity(blocks.max(OWN_MAPPING));
    memory.resize(blocks, Block::default());
    memory
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// A token is usable while `now < expires` and it was never revoked. Times are unix seconds.
pub(crate) fn state(expires: i64, revoked: Option<i64>, now: i64) -> TokenState {
    if revoked.is_some() {
        TokenState::Revoked
    } else if now >= expires {
        TokenState::Expired
    } else {
        TokenState::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let t = generate();
        let full = t.full.expose().to_string();
        assert!(full.starts_with("scimd_"));
        let (id, secret) = parse(&full).unwrap();
        assert_eq!(id, t.id);
        assert_eq!(secret, t.secret);
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(generate().full, t.full);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let t = generate();
        let full = t.full.expose();
        let cases = [
            String::new(),
            "scimd_".into(),
            full.replace("scimd_", "scimx_"),
            full[..full.len() - 1].to_string(),
            format!("{full}0"),
            full.to_uppercase(),
            full.replacen('_', "-", 2),
            format!("scimd_{}", t.id),
        ];
        for case in cases {
            assert!(parse(&case).is_none(), "{case:?} parsed");
        }
    }

    #[test]
    fn hashes_are_standard_argon2id_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Ours verify with the argon2 crate's own verifier...
        let phc = hash_str("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // ...and hashes stored before (made by the crate's own hasher, also with other costs)
        // verify with ours.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_str("battery staple", &theirs));
        assert!(!verify_str("battery stapler", &theirs));
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"x", &salt)
        .unwrap()
        .to_string();
        assert!(verify_str("x", &cheap) && !verify_str("y", &cheap));
        assert!(!verify_str("x", "not a phc string"));
    }

    #[test]
    fn a_fingerprint_tells_the_right_secret_from_others() {
        let t = generate();
        let f = fingerprint(&t.id, &t.secret);
        assert_eq!(f.len(), 16);
        assert!(may_match(Some(&f), &t.id, &t.secret));
        assert!(!may_match(Some(&f), &t.id, &generate().secret));
        assert!(
            !may_match(Some(&f), "00000000000000ff", &t.secret),
            "keyed by the id"
        );
        assert!(
            may_match(None, &t.id, &generate().secret),
            "older credentials"
        );
    }

    #[test]
    fn secrets_never_print() {
        let t = generate();
        assert_eq!(format!("{:?} {}", t.full, t.secret), "*** ***");
    }

    #[test]
    fn hash_verifies_only_the_right_secret() {
        let t = generate();
        let phc = hash(&t.secret).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(t.secret.expose()));
        assert!(verify(&t.secret, &phc));
        assert!(!verify(&generate().secret, &phc));
        assert!(!verify(&t.secret, "not a hash"));
    }

    #[test]
    fn state_follows_expiry_and_revocation() {
        assert_eq!(state(100, None, 99), TokenState::Active);
        assert_eq!(state(100, None, 100), TokenState::Expired);
        assert_eq!(state(100, None, 101), TokenState::Expired);
        assert_eq!(state(100, Some(50), 60), TokenState::Revoked);
        assert_eq!(state(100, Some(50), 200), TokenState::Revoked);
    }
}
