//! Paged results (RFC 2696): a search's page size and where it goes on, carried between
//! requests in a cookie that is opaque (the position is masked) and authenticated (it works
//! only for the search it was handed out for, to the one who asked, in this process).

use ldap3_proto::control::LdapControl;

use crate::app::directory::Position;

/// The paged-results control of a search.
pub(super) struct Paging {
    /// Entries per page; `None` when the client sent size 0 (no paging).
    pub(super) size: Option<i64>,
    /// Where this page starts.
    pub(super) from: Position,
    /// Entries sent on the search's earlier pages (a size limit counts them all, RFC 2696 §3).
    pub(super) sent: i64,
    /// What the cookie is bound to: the search and who asked for it.
    context: String,
}

/// A cookie this server did not hand out for this search.
pub(super) struct ForeignCookie;

impl Paging {
    /// The search's paged-results control, if it has one; `context` names the search and the
    /// one asking (a cookie goes on only that search).
    pub(super) fn of(
        controls: &[LdapControl],
        context: impl FnOnce() -> String,
    ) -> Result<Option<Paging>, ForeignCookie> {
        let Some((size, cookie)) = controls.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie)),
            _ => None,
        }) else {
            return Ok(None);
        };
        let context = context();
        let (from, sent) = match cookie.is_empty() {
            true => (Position::default(), 0),
            false => parse_cookie(cookie, &context).ok_or(ForeignCookie)?,
        };
        Ok(Some(Paging {
            size: Some(size).filter(|s| *s > 0),
            from,
            sent,
            context,
        }))
    }

    /// The control of the answer's last message: a cookie for `next` (with `sent` entries
    /// sent so far, this page's included), or an empty one when the search is complete.
    pub(super) fn answer(&self, next: Option<Position>, sent: i64) -> LdapControl {
        LdapControl::SimplePagedResults {
            size: 0,
            cookie: next
                .map(|at| cookie_of(at, sent, &self.context))
                .unwrap_or_default(),
        }
    }
}

/// The key paging cookies are sealed with: random, made once per process (a restart ends
/// the searches being paged, as it ends their connections).
fn cookie_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        key
    })
}

/// `N` bytes (at most 32) of a keyed BLAKE2s digest of `parts`, told apart by `label`.
fn sealed<const N: usize>(label: &[u8], parts: &[&[u8]]) -> [u8; N] {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new()
        .chain_update(cookie_key())
        .chain_update(label);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&h.finalize()[..N]);
    out
}

/// A paging cookie: where the search goes on, opaque (the position is masked) and
/// authenticated (a tag over the position and `context`, the search and who asked for it).
fn cookie_of(Position { phase, after }: Position, sent: i64, context: &str) -> Vec<u8> {
    let mut plain = [0u8; 24];
    plain[..8].copy_from_slice(&(phase as u64).to_be_bytes());
    plain[8..16].copy_from_slice(&after.to_be_bytes());
    plain[16..].copy_from_slice(&sent.to_be_bytes());
    let tag: [u8; 16] = sealed(b"tag", &[context.as_bytes(), &plain]);
    let mask: [u8; 24] = sealed(b"mask", &[&tag]);
    let mut cookie = tag.to_vec();
    cookie.extend(plain.iter().zip(mask).map(|(p, m)| p ^ m));
    cookie
}

/// The position and count a cookie of `cookie_of` holds, if it was made by this process for
/// `context`.
fn parse_cookie(c: &[u8], context: &str) -> Option<(Position, i64)> {
    if c.len() != 40 {
        return None;
    }
    let tag: [u8; 16] = c[..16].try_into().ok()?;
    let mask: [u8; 24] = sealed(b"mask", &[&tag]);
    let mut plain = [0u8; 24];
    for (i, (m, k)) in c[16..].iter().zip(mask).enumerate() {
        plain[i] = m ^ k;
    }
    let want: [u8; 16] = sealed(b"tag", &[context.as_bytes(), &plain]);
    let same = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return None;
    }
    let phase = u64::from_be_bytes(plain[..8].try_into().ok()?);
    let after = i64::from_be_bytes(plain[8..16].try_into().ok()?);
    let sent = i64::from_be_bytes(plain[16..].try_into().ok()?);
    let at = Position {
        phase: usize::try_from(phase).ok()?,
        after,
    };
    Some((at, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let at = Position {
            phase: 1,
            after: 42,
        };
        let cookie = cookie_of(at, 7, "search a");
        assert_eq!(parse_cookie(&cookie, "search a"), Some((at, 7)));
        // Opaque: the position is not in it as text or as bytes.
        assert!(!cookie.windows(8).any(|w| w == 42i64.to_be_bytes()));
        // Another search, or another position written in, is refused.
        assert_eq!(parse_cookie(&cookie, "search b"), None);
        let mut forged = cookie.clone();
        forged[39] ^= 1;
        assert_eq!(parse_cookie(&forged, "search a"), None);
        assert_eq!(parse_cookie(b"scimd:1:42", "search a"), None);
        assert_eq!(parse_cookie(b"other", "search a"), None);
    }
}
