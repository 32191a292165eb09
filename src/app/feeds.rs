//! The change feed's use cases, the same at every door: add a feed (its signing secret or key
//! is made here; a webhook secret is shown once), pause, resume, remove, replay from an event
//! and rotate the secret or key. Each runs in the caller's write transaction and writes its
//! audit record there.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use rusqlite::Connection;

use super::admin::{Actor, audit};
use crate::feed::{set, webhook};
use crate::scim::events::Op;
use crate::store::feeds::{self, Feed, NewFeed};
use crate::store::{Error, Result, providers};

/// What `add` is given.
pub(crate) struct FeedSpec {
    pub(crate) name: String,
    pub(crate) provider: String,
    /// None: the receiver pulls (a feed of SETs only).
    pub(crate) url: Option<String>,
    pub(crate) format: Format,
    /// A SET's `aud` (default: the receiver's URL, or the feed's name when it pulls).
    pub(crate) audience: Option<String>,
    pub(crate) ops: Vec<String>,
    pub(crate) full: bool,
    pub(crate) ca_file: Option<String>,
    /// `feed_allow_http`: plain HTTP to any host.
    pub(crate) allow_http: bool,
}

/// What a feed sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Standard Webhooks messages (JSON, HMAC-signed).
    Webhook,
    /// Security Event Tokens (RFC 9967), signed with ES256.
    Set,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Webhook => "webhook",
            Format::Set => "set",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Format> {
        [Format::Webhook, Format::Set]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// A new signing secret (`whsec_` and 32 random bytes in base64) or key (P-256, PKCS#8 in
    /// base64).
    pub(crate) fn new_secret(self) -> Result<String> {
        match self {
            Format::Webhook => {
                let mut random = [0u8; 32];
                OsRng.fill_bytes(&mut random);
                Ok(webhook::secret_of(&random))
            }
            Format::Set => set::new_key().map_err(Error::Internal),
        }
    }
}

/// The operations a comma-separated list names (all without one); an unknown one is refused,
/// naming those there are.
pub(crate) fn parse_ops(text: Option<&str>) -> std::result::Result<Vec<String>, String> {
    let all = || Op::ALL.map(Op::as_str).join(", ");
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Op::ALL.iter().map(|o| o.as_str().to_string()).collect());
    };
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let op = Op::parse(word)
            .ok_or_else(|| format!("{word:?} is not an operation a feed delivers: {}", all()))?
            .as_str()
            .to_string();
        if !out.contains(&op) {
            out.push(op);
        }
    }
    Ok(out)
}

/// A receiver's URL as a feed takes it: absolute, HTTPS, or plain HTTP to loopback (to any
/// host with `allow_http`).
pub(crate) fn check_url(url: &str, allow_http: bool) -> std::result::Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if uri.host().is_none() {
        return Err(format!("{url:?} is not an absolute URL"));
    }
    if !crate::outbound::allowed_url(&uri, allow_http) {
        return Err(format!(
            "{url} is not HTTPS: a feed's receiver is reached over HTTPS (plain HTTP only on \
             127.0.0.0/8 or ::1, or anywhere with feed_allow_http = \"on\")"
        ));
    }
    Ok(())
}

/// Where a SET feed's public keys are published on a server reached at `public_base`.
pub(crate) fn jwks_url(public_base: &str, feed: &str) -> String {
    format!("{public_base}/feeds/{feed}/jwks.json")
}

/// Where a pulled feed is polled (RFC 8936), under its provider's SCIM base URL.
pub(crate) fn poll_url(public_base: &str, f: &Feed) -> String {
    format!(
        "{}/Feeds/{}",
        super::scim_base(public_base, &f.provider),
        f.name
    )
}

/// Where a feed's events go, as every door names it: the receiver's URL, or that it pulls.
pub(crate) fn receiver(f: &Feed) -> &str {
    f.url.as_deref().unwrap_or("pulled by the receiver")
}

/// What a feed is doing, as every door names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Paused,
    /// Failed for `feed_failing_after` in a row since (unix ms); still trying.
    Failing(i64),
    /// Failed since (unix ms), not yet for `feed_failing_after`.
    Retrying(i64),
    /// Its receiver pulls; nothing failing.
    Pulled,
    Delivering,
}

impl State {
    pub(crate) fn of(f: &Feed) -> State {
        match (f.paused, f.failing_since) {
            (true, _) => State::Paused,
            (false, Some(since)) if f.failing_noted => State::Failing(since),
            (false, Some(since)) => State::Retrying(since),
            (false, None) if f.url.is_none() => State::Pulled,
            (false, None) => State::Delivering,
        }
    }

    /// "failing since <time>", with the caller's way of writing a time (unix seconds).
    pub(crate) fn text(self, time: impl Fn(i64) -> String) -> String {
        match self {
            State::Paused => "paused".into(),
            State::Failing(ms) => format!("failing since {}", time(ms / 1000)),
            State::Retrying(ms) => format!("retrying since {}", time(ms / 1000)),
            State::Pulled => "waiting to be pulled".into(),
            State::Delivering => "delivering".into(),
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    match ok {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "{name:?} is not a feed name: 1 to 64 letters, digits, '-', '_' or '.'"
        ))),
    }
}

/// Adds a feed with a new secret or key, which it returns beside the feed; it delivers the
/// changes committed from now on.
pub(crate) fn add(c: &Connection, by: &Actor, spec: &FeedSpec, now: i64) -> Result<(Feed, String)> {
    check_name(&spec.name)?;
    match (&spec.url, spec.format) {
        (Some(url), _) => check_url(url, spec.allow_http).map_err(Error::Invalid)?,
        (None, Format::Set) => {}
        (None, Format::Webhook) => {
            return Err(Error::Invalid(
                "a webhook feed needs the receiver's URL; a receiver that pulls takes Security \
                 Event Tokens (format set)"
                    .into(),
            ));
        }
    }
    let p = providers::require(c, &spec.provider)?;
    let audience = match (&spec.audience, &spec.url) {
        _ if spec.format == Format::Webhook => None,
        (Some(a), _) => Some(a.clone()),
        (None, Some(url)) => Some(url.clone()),
        (None, None) => Some(spec.name.clone()),
    };
    let secret = spec.format.new_secret()?;
    let f = feeds::add(
        c,
        &NewFeed {
            name: &spec.name,
            provider_id: p.id,
            url: spec.url.as_deref(),
            format: spec.format.as_str(),
            audience: audience.as_deref(),
            ops: &spec.ops,
            full: spec.full,
            ca_file: spec.ca_file.as_deref(),
            secret: &secret,
            now,
        },
    )?;
    audit(
        c,
        by,
        "feed added",
        Some(&p.name),
        &f.name,
        &format!(
            "{} {} ({}{})",
            f.format,
            f.url
                .as_deref()
                .map_or_else(|| "pulled".to_string(), |u| format!("to {u}")),
            f.ops.join(","),
            if f.full { ", full" } else { "" }
        ),
    )?;
    Ok((f, secret))
}

pub(crate) fn set_paused(c: &Connection, by: &Actor, name: &str, paused: bool) -> Result<Feed> {
    let f = feeds::set_paused(c, name, paused)?;
    let action = if paused {
        "feed paused"
    } else {
        "feed resumed"
    };
    audit(c, by, action, Some(&f.provider), &f.name, "")?;
    Ok(f)
}

pub(crate) fn remove(c: &Connection, by: &Actor, name: &str) -> Result<Feed> {
    let f = feeds::remove(c, name)?;
    audit(c, by, "feed removed", Some(&f.provider), &f.name, "")?;
    Ok(f)
}

/// Delivers again from event `from` (inclusive).
pub(crate) fn replay(c: &Connection, by: &Actor, name: &str, from: i64) -> Result<Feed> {
    let f = feeds::set_position(c, name, from.saturating_sub(1))?;
    audit(
        c,
        by,
        "feed replayed",
        Some(&f.provider),
        &f.name,
        &format!("from event {from}"),
    )?;
    Ok(f)
}

/// A new secret or key; the old one signs (a webhook's) or is published (a SET key) beside it
/// until `old_until` (unix seconds).
pub(crate) fn rotate(
    c: &Connection,
    by: &Actor,
    name: &str,
    old_until: i64,
) -> Result<(Feed, String)> {
    let format = Format::parse(&feeds::require(c, name)?.format).unwrap_or(Format::Webhook);
    let secret = format.new_secret()?;
    let f = feeds::rotate_secret(c, name, &secret, old_until)?;
    let what = match f.format.as_str() {
        "set" => "feed key rotated",
        _ => "feed secret rotated",
    };
    audit(c, by, what, Some(&f.provider), &f.name, "")?;
    Ok((f, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_checked_and_urls_must_be_https_or_loopback() {
        assert_eq!(parse_ops(None).unwrap().len(), 7);
        assert_eq!(
            parse_ops(Some("Create, delete,create")).unwrap(),
            ["create", "delete"]
        );
        assert!(
            parse_ops(Some("update"))
                .unwrap_err()
                .contains("create, replace")
        );
        assert!(check_url("https://hooks.example.com/scim", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", false).is_ok());
        assert!(
            check_url("http://hooks.example.com/x", false)
                .unwrap_err()
                .contains("feed_allow_http")
        );
        assert!(check_url("http://hooks.example.com/x", true).is_ok());
        assert!(check_url("ftp://hooks.example.com/x", true).is_err());
        assert!(check_url("/relative", true).is_err());
        assert!(Format::Webhook.new_secret().unwrap().starts_with("whsec_"));
        let key = Format::Set.new_secret().unwrap();
        assert!(set::SigningKey::load(&key).is_ok());
        assert_eq!(Format::parse(" SET "), Some(Format::Set));
        assert_eq!(Format::parse("json"), None);
    }
}
