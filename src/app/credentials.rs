//! Credentials that callers present (SCIM bearer tokens today): when a new one expires, how it
//! is minted (argon2, before any transaction), created, rotated with an overlap and revoked.
//! The command line and the console both call these, so the rules and their wording (which
//! names no command-line flag) are the same at both doors.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use crate::auth::{Secret, TokenState, Verifier, token};
use crate::config;
use crate::store::tokens::{self, NewTokenRow, TokenInfo};

/// How long a new credential is valid, as an operator gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Validity<'a> {
    /// A duration such as `90d`.
    For(&'a str),
    /// A date (`2027-03-01`, midnight UTC) or an RFC 3339 time.
    Until(&'a str),
}

/// The expiry (unix seconds) of a credential created at `now`: in the future, and at most
/// `max_lifetime` (`token_max_lifetime`) away.
pub(crate) fn expiry(
    validity: Validity<'_>,
    now: DateTime<Utc>,
    max_lifetime: Duration,
) -> Result<i64, String> {
    let at = match validity {
        Validity::For(v) => {
            let too_long = || format!("a validity of {v:?} is too long");
            let d = config::parse_duration(v)?;
            let d = chrono::Duration::from_std(d).map_err(|_| too_long())?;
            now.checked_add_signed(d).ok_or_else(too_long)?
        }
        Validity::Until(s) => parse_date(s)?,
    };
    if at <= now {
        return Err(format!(
            "the token would expire at {}, which is not in the future",
            at.to_rfc3339()
        ));
    }
    let max = chrono::Duration::from_std(max_lifetime).unwrap_or(chrono::Duration::MAX);
    if at - now > max {
        return Err(format!(
            "tokens may be valid for at most {} (token_max_lifetime); ask for less or raise the limit",
            config::format_duration(max_lifetime)
        ));
    }
    Ok(at.timestamp())
}

/// A date (`2027-03-01`, midnight UTC) or an RFC 3339 time.
pub(crate) fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is not a date such as 2027-03-01 or 2027-03-01T12:00:00Z"))
}

/// A new token's id and argon2 hash, made before the transaction that stores it; the secret
/// itself (`scimd_<id>_<secret>`, shown once) is handed back beside it and never stored.
/// The same for every machine-made secret (an LDAP service account's password is the bare
/// secret, without the `scimd_<id>_` around it), with the fingerprint that refuses a wrong one
/// before argon2.
pub(crate) struct Minted {
    pub(crate) id: String,
    pub(crate) hash: String,
    pub(crate) fingerprint: String,
}

impl Minted {
    fn of(new: &token::NewToken, hash: String) -> Minted {
        Minted {
            id: new.id.clone(),
            fingerprint: token::fingerprint(&new.id, &new.secret),
            hash,
        }
    }

    /// Mints on the calling thread (the command line).
    pub(crate) fn here() -> Result<(Minted, Secret), String> {
        let (minted, new) = Minted::bare_here()?;
        Ok((minted, new.full))
    }

    /// Mints on the verifier's argon2 threads (a server, whose workers must not block).
    pub(crate) async fn on(verifier: &Verifier) -> Result<(Minted, Secret), String> {
        let (minted, new) = Minted::bare_on(verifier).await?;
        Ok((minted, new.full))
    }

    /// `here`, handing back both forms of the secret.
    pub(crate) fn bare_here() -> Result<(Minted, token::NewToken), String> {
        let new = token::generate();
        let hash = token::hash(&new.secret)?;
        Ok((Minted::of(&new, hash), new))
    }

    /// `on`, handing back both forms of the secret.
    pub(crate) async fn bare_on(verifier: &Verifier) -> Result<(Minted, token::NewToken), String> {
        let new = token::generate();
        let hash = verifier.hash(new.secret.expose().to_string()).await?;
        Ok((Minted::of(&new, hash), new))
    }

    fn row<'a>(&'a self, provider_id: i64, plan: &'a Issue) -> NewTokenRow<'a> {
        NewTokenRow {
            id: &self.id,
            provider_id,
            secret_hash: &self.hash,
            fingerprint: Some(&self.fingerprint),
            description: &plan.description,
            read_only: plan.read_only,
            created: plan.created,
            expires: plan.expires,
        }
    }
}

/// What a new token is: its description, scope and validity.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub(crate) description: String,
    pub(crate) read_only: bool,
    pub(crate) created: i64,
    pub(crate) expires: i64,
}

/// Stores a minted token for a provider (run in the writer's transaction).
pub(crate) fn create(
    c: &Connection,
    minted: &Minted,
    provider_id: i64,
    plan: &Issue,
) -> crate::store::Result<TokenInfo> {
    tokens::create(c, &minted.row(provider_id, plan))
}

/// A rotation decided before the transaction: the new token's plan, and until when the old one
/// keeps working.
#[derive(Debug, Clone)]
pub(crate) struct Rotation {
    pub(crate) old: TokenInfo,
    pub(crate) new: Issue,
    pub(crate) old_until: i64,
}

/// Plans replacing `old` at `now`: only an active token can be rotated; the new one is valid
/// for `valid_for`, else as long as `old` was (at most `max_lifetime`); `old` keeps working
/// for `overlap`.
pub(crate) fn plan_rotation(
    old: TokenInfo,
    valid_for: Option<Duration>,
    overlap: Duration,
    now: DateTime<Utc>,
    max_lifetime: Duration,
) -> Result<Rotation, String> {
    let at = now.timestamp();
    if let Some(new) = &old.replaced_by {
        return Err(format!(
            "token {} was rotated already and is replaced by {new}: rotate {new} instead",
            old.id
        ));
    }
    match old.state(at) {
        TokenState::Active => {}
        TokenState::Revoked => {
            return Err(format!(
                "token {} is revoked; create a new token instead",
                old.id
            ));
        }
        TokenState::Expired => {
            return Err(format!(
                "token {} has expired; create a new token instead",
                old.id
            ));
        }
    }
    let lifetime = valid_for.unwrap_or_else(|| {
        Duration::from_secs(u64::try_from(old.expires - old.created).unwrap_or(0)).min(max_lifetime)
    });
    let expires = expiry(
        Validity::For(&config::format_duration(lifetime)),
        now,
        max_lifetime,
    )?;
    let old_until = at.saturating_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX));
    let new = Issue {
        description: old.description.clone(),
        read_only: old.read_only,
        created: at,
        expires,
    };
    Ok(Rotation {
        old,
        new,
        old_until,
    })
}

/// Carries out a planned rotation (run in the writer's transaction): the new token, and the
/// old one as it now is.
pub(crate) fn rotate(
    c: &Connection,
    minted: &Minted,
    provider_id: i64,
    plan: &Rotation,
) -> crate::store::Result<(TokenInfo, TokenInfo)> {
    tokens::rotate(
        c,
        &plan.old.id,
        &minted.row(provider_id, &plan.new),
        plan.old_until,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn token(created: i64, expires: i64, revoked: Option<i64>) -> TokenInfo {
        TokenInfo {
            id: "0123456789abcdef".into(),
            kind: crate::store::credentials::CredentialKind::Token,
            provider_id: 1,
            provider: "p".into(),
            name: String::new(),
            description: "d".into(),
            read_only: false,
            created,
            expires,
            revoked,
            last_used: None,
            replaced_by: None,
            owner: None,
        }
    }

    #[test]
    fn expiry_is_in_the_future_and_within_the_maximum() {
        let at = now().timestamp();
        assert_eq!(
            expiry(Validity::For("1d"), now(), 400 * DAY),
            Ok(at + 86_400)
        );
        assert_eq!(
            expiry(Validity::Until("2026-06-02"), now(), 400 * DAY),
            Ok(at + 86_400)
        );
        let past = expiry(Validity::Until("2001-01-01"), now(), 400 * DAY).unwrap_err();
        assert!(past.contains("not in the future"), "{past}");
        let long = expiry(Validity::For("500d"), now(), 400 * DAY).unwrap_err();
        assert!(long.contains("token_max_lifetime"), "{long}");
        let huge = expiry(Validity::For("999999999999d"), now(), 400 * DAY).unwrap_err();
        assert!(!huge.contains("--"), "no flag names in the core: {huge}");
        let bad = expiry(Validity::Until("tomorrow"), now(), 400 * DAY).unwrap_err();
        assert!(bad.contains("is not a date"), "{bad}");
    }

    #[test]
    fn only_an_active_token_is_rotated_and_the_new_one_lasts_as_long() {
        let at = now().timestamp();
        let plan = plan_rotation(
            token(at - 10 * 86_400, at + 20 * 86_400, None),
            None,
            DAY,
            now(),
            400 * DAY,
        )
        .unwrap();
        assert_eq!(plan.new.expires, at + 30 * 86_400);
        assert_eq!(plan.old_until, at + 86_400);
        let revoked = plan_rotation(token(at - 10, at + 10, Some(at - 1)), None, DAY, now(), DAY);
        assert!(revoked.unwrap_err().contains("is revoked"));
        let expired = plan_rotation(token(at - 10, at - 1, None), None, DAY, now(), DAY);
        assert!(expired.unwrap_err().contains("has expired"));
        let forever = plan_rotation(
            token(at - 10, at + 10, None),
            None,
            Duration::MAX,
            now(),
            DAY,
        )
        .unwrap();
        assert_eq!(forever.old_until, i64::MAX, "an overlap too long saturates");
        let mut replaced = token(at - 10, at + 10, None);
        replaced.replaced_by = Some("fedcba9876543210".into());
        let twice = plan_rotation(replaced, None, DAY, now(), DAY).unwrap_err();
        assert!(twice.contains("rotate fedcba9876543210 instead"), "{twice}");
    }
}
