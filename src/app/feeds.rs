//! The change feed's use cases, the same at every door: add a feed (its signing secret is
//! made here and shown once), pause, resume, remove, replay from an event and rotate the
//! secret. Each runs in the caller's write transaction and writes its audit record there.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use rusqlite::Connection;

use super::admin::{Actor, audit};
use crate::feed::webhook;
use crate::scim::events::Op;
use crate::store::feeds::{self, Feed, NewFeed};
use crate::store::{Error, Result, providers};

/// What `add` is given.
pub(crate) struct FeedSpec {
    pub(crate) name: String,
    pub(crate) provider: String,
    pub(crate) url: String,
    pub(crate) ops: Vec<String>,
    pub(crate) full: bool,
    pub(crate) ca_file: Option<String>,
}

/// A new signing secret (`whsec_` and 32 random bytes in base64).
pub(crate) fn new_secret() -> String {
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    webhook::secret_of(&random)
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

/// A receiver's URL as a feed takes it: absolute, HTTPS, or plain HTTP to loopback.
pub(crate) fn check_url(url: &str) -> std::result::Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let Some(host) = uri.host() else {
        return Err(format!("{url:?} is not an absolute URL"));
    };
    if !crate::outbound::allowed(uri.scheme_str(), host) {
        return Err(format!(
            "{url} is not HTTPS: a feed's receiver is reached over HTTPS (plain HTTP only on \
             127.0.0.0/8 or ::1)"
        ));
    }
    Ok(())
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

/// Adds a feed with `secret`; it delivers the changes committed from now on.
pub(crate) fn add(
    c: &Connection,
    by: &Actor,
    spec: &FeedSpec,
    secret: &str,
    now: i64,
) -> Result<Feed> {
    check_name(&spec.name)?;
    check_url(&spec.url).map_err(Error::Invalid)?;
    let p = providers::require(c, &spec.provider)?;
    let f = feeds::add(
        c,
        &NewFeed {
            name: &spec.name,
            provider_id: p.id,
            url: &spec.url,
            ops: &spec.ops,
            full: spec.full,
            ca_file: spec.ca_file.as_deref(),
            secret,
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
            "to {} ({}{})",
            f.url,
            f.ops.join(","),
            if f.full { ", full" } else { "" }
        ),
    )?;
    Ok(f)
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

/// A new secret; the old one signs beside it until `old_until` (unix seconds).
pub(crate) fn rotate(
    c: &Connection,
    by: &Actor,
    name: &str,
    secret: &str,
    old_until: i64,
) -> Result<Feed> {
    let f = feeds::rotate_secret(c, name, secret, old_until)?;
    audit(c, by, "feed secret rotated", Some(&f.provider), &f.name, "")?;
    Ok(f)
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
        assert!(check_url("https://hooks.example.com/scim").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(
            check_url("http://hooks.example.com/x")
                .unwrap_err()
                .contains("HTTPS")
        );
        assert!(check_url("/relative").is_err());
        assert!(new_secret().starts_with("whsec_"));
    }
}
