//! Sign-in with an identity provider and application passwords, as use cases the console and
//! the command line call inside their unit of work: the provider's OpenID Connect client, who
//! a signed-in person is (a provisioned user found by a claim), whether they get the admin
//! pages, and the application passwords each user makes, lists and revokes for themselves.
//! Each change leaves its record: admins' in the audit log, users' in the provider's activity.

use rusqlite::Connection;

use super::admin::{Actor, audit};
use super::credentials::Minted;
use crate::scim::schema::Model;
use crate::scim::{ResourceKind, filter};
use crate::store::credentials::{Credential, CredentialKind};
use crate::store::sign_in::{self, NewAppPassword, OidcSettings};
use crate::store::{Error, Result, activity, members, providers, search};

/// Application passwords one person may have at once (not revoked, not expired).
pub(crate) const MAX_APP_PASSWORDS: usize = 20;

/// An application password without an expiry lasts until then (9999-12-31).
pub(crate) const NEVER: i64 = 253_402_300_799;

/// Stores a provider's OpenID Connect client (`provider oidc set`); the secret is not written
/// to the audit record.
pub(crate) fn set_oidc(c: &Connection, by: &Actor, s: &OidcSettings) -> Result<()> {
    sign_in::set_settings(c, s)?;
    let detail = format!(
        "issuer {}; client {}; {} = {}{}",
        s.issuer,
        s.client_id,
        s.match_claim,
        s.match_attribute,
        s.admin_group
            .as_deref()
            .map(|g| format!("; admin group {g}"))
            .unwrap_or_default()
    );
    audit(
        c,
        by,
        "OpenID Connect sign-in set",
        Some(&s.provider),
        "",
        &detail,
    )
}

/// Removes a provider's OpenID Connect client and the sessions it started.
pub(crate) fn unset_oidc(c: &Connection, by: &Actor, provider: &str) -> Result<()> {
    let p = providers::require(c, provider)?;
    if !sign_in::unset_settings(c, p.id)? {
        return Err(Error::NotFound(format!(
            "identity provider {} has no OpenID Connect sign-in",
            p.name
        )));
    }
    audit(
        c,
        by,
        "OpenID Connect sign-in removed",
        Some(&p.name),
        "",
        "",
    )
}

/// A provisioned user a claim named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) user_name: String,
    pub(crate) active: bool,
}

/// The users of provider `pid` whose `attribute` equals `value` (at most two: one is an answer,
/// two an ambiguity). `attribute` is any filterable User attribute of the provider's model
/// (`userName`, `externalId`, `emails.value`, an extension's attribute).
pub(crate) fn people(
    c: &Connection,
    model: &Model,
    pid: i64,
    (attribute, value): (&str, &str),
) -> Result<Vec<Person>> {
    let quoted = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
    let rt = model.get(ResourceKind::User);
    let ast = filter::parse(&format!("{attribute} eq {quoted}"))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let cond =
        crate::store::query::condition(rt, "", &ast).map_err(|e| Error::Invalid(e.to_string()))?;
    let paging = search::Paging::Index {
        offset: 0,
        order: None,
    };
    let page = search::search(c, pid, ResourceKind::User, Some(&cond), paging, 2)?;
    let mut found = Vec::new();
    for row in page.items.iter() {
        if let Some((user_name, active)) = sign_in::user_state(c, row.seq)? {
            found.push(Person {
                id: row.id.to_string(),
                seq: row.seq,
                user_name,
                active,
            });
        }
    }
    Ok(found)
}

/// Whether the user with row key `seq` is a member, directly or through nested groups, of the
/// group whose displayName is `group` (compared without case).
pub(crate) fn in_group(c: &Connection, seq: i64, group: &str) -> Result<bool> {
    let (names, _) = members::group_seqs_of_many(c, &[seq])?;
    Ok(names.iter().any(|(_, _, name)| {
        name.as_deref()
            .is_some_and(|n| crate::scim::fold(n) == crate::scim::fold(group))
    }))
}

/// What the activity log says a person did, from where.
pub(crate) struct Doing<'a> {
    pub(crate) provider_id: i64,
    pub(crate) user: (&'a str, &'a str),
    pub(crate) client: Option<std::net::IpAddr>,
}

fn record(
    c: &Connection,
    d: &Doing<'_>,
    (action, credential, detail): (activity::Action, &str, String),
) -> Result<()> {
    activity::record_person(
        c,
        d.provider_id,
        &activity::PersonRecord {
            action,
            user_id: d.user.0,
            user_name: d.user.1,
            credential,
            client: d.client.map(|ip| ip.to_string()),
            detail,
        },
    )
}

/// Starts the session of a person who signed in (cookie and CSRF token are fresh random
/// values) and records it.
pub(crate) fn signed_in(
    c: &Connection,
    d: &Doing<'_>,
    (cookie, csrf, now): (&str, &str, i64),
    admin: bool,
) -> Result<()> {
    let client = d
        .client
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    sign_in::start_session(c, (d.provider_id, d.user.0), cookie, csrf, &client, now)?;
    let detail = match admin {
        true => "with the admin pages (member of the admin group)".to_string(),
        false => String::new(),
    };
    record(c, d, (activity::Action::SignedIn, "", detail))
}

/// A sign-in that found no user to let in (not provisioned, deactivated, ambiguous).
pub(crate) fn sign_in_refused(c: &Connection, d: &Doing<'_>, why: &str) -> Result<()> {
    record(c, d, (activity::Action::SignInRefused, "", why.to_string()))
}

/// Stores a minted application password for the signed-in user.
pub(crate) fn create_app_password(
    c: &Connection,
    d: &Doing<'_>,
    minted: &Minted,
    (description, created, expires): (&str, i64, i64),
) -> Result<Credential> {
    let made = sign_in::add_app_password(
        c,
        &NewAppPassword {
            id: &minted.id,
            provider_id: d.provider_id,
            owner: d.user.0,
            hash: &minted.hash,
            fingerprint: &minted.fingerprint,
            description,
            created,
            expires,
        },
        MAX_APP_PASSWORDS,
    )?;
    record(
        c,
        d,
        (
            activity::Action::AppPasswordCreated,
            &made.id,
            description.to_string(),
        ),
    )?;
    Ok(made)
}

/// Revokes one of the user's own application passwords (another user's is not found).
pub(crate) fn revoke_own(c: &Connection, d: &Doing<'_>, id: &str, now: i64) -> Result<Credential> {
    let found = crate::store::credentials::get(c, CredentialKind::AppPassword, id)?
        .filter(|k| k.provider_id == d.provider_id && k.owner.as_deref() == Some(d.user.0));
    if found.is_none() {
        return Err(Error::NotFound(format!(
            "you have no application password {id}"
        )));
    }
    let revoked = crate::store::credentials::revoke(c, CredentialKind::AppPassword, id, now)?;
    record(
        c,
        d,
        (
            activity::Action::AppPasswordRevoked,
            id,
            revoked.description.clone(),
        ),
    )?;
    Ok(revoked)
}
