//! What admins do, from the command line or the console: add, change and remove providers,
//! register and remove schemas, create, rotate and revoke credentials, set LDAP settings, keep
//! admin accounts and sign in to the console. Each use case runs inside the caller's write
//! transaction and writes its audit record there, so the record exists exactly when the
//! change committed, whichever door it came through.

use std::net::IpAddr;

use chrono::Utc;
use rusqlite::Connection;

use crate::scim::schema::Unknown;
use crate::scim::{ProviderKind, ResourceKind, ScimPasswords};
use crate::store::admins::{self, Admin};
use crate::store::audit::{self, Entry};
use crate::store::credentials::{Credential, CredentialKind};
use crate::store::ldap_accounts::{self, Account, NewAccount};
use crate::store::providers::{self, Provider, Usage};
use crate::store::schemas::{self, Stored};
use crate::store::tokens::{self, TokenInfo};
use crate::store::{Error, Result};

use super::credentials::{Issue, Minted, Rotation};

/// Who acts, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    name: String,
    client: Option<String>,
}

impl Actor {
    /// The person at the command line: the user `sudo` ran for, else the login user.
    pub(crate) fn command_line() -> Actor {
        let user = ["SUDO_USER", "USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .or_else(user_of_this_process)
            .unwrap_or_else(|| "unknown".into());
        Actor {
            name: format!("cli:{user}"),
            client: None,
        }
    }

    /// An admin signed in to the console (or trying to), from `client`.
    pub(crate) fn console(admin: &str, client: Option<IpAddr>) -> Actor {
        Actor {
            name: format!("console:{admin}"),
            client: client.map(|c| c.to_string()),
        }
    }
}

/// The name of the user this process runs as (from `/etc/passwd`), or `uid N`, where the
/// environment names nobody (a service, `cron`, a container).
fn user_of_this_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let named = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid.to_string()).then(|| name.to_string())
    });
    Some(named.unwrap_or_else(|| format!("uid {uid}")))
}

/// Writes one audit record, timed now.
pub(super) fn audit(
    c: &Connection,
    by: &Actor,
    action: &str,
    provider: Option<&str>,
    target: &str,
    detail: &str,
) -> Result<()> {
    audit::record(
        c,
        &Entry {
            at: Utc::now().timestamp_millis(),
            actor: &by.name,
            client: by.client.as_deref(),
            action,
            provider,
            target,
            detail,
        },
    )
}

pub(crate) fn add_provider(
    c: &Connection,
    by: &Actor,
    name: &str,
    description: &str,
    kind: ProviderKind,
    now: i64,
) -> Result<Provider> {
    let p = providers::insert(c, name, description, kind, now)?;
    audit(
        c,
        by,
        "provider added",
        Some(&p.name),
        &p.name,
        &format!("type {}", p.kind),
    )?;
    Ok(p)
}

/// The provider named `name`, added first when it does not exist (the quick trial).
pub(crate) fn ensure_provider(
    c: &Connection,
    by: &Actor,
    name: &str,
    description: &str,
    kind: ProviderKind,
    now: i64,
) -> Result<Provider> {
    match providers::get(c, name)? {
        Some(p) => Ok(p),
        None => add_provider(c, by, name, description, kind, now),
    }
}

/// What `set_provider` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderChanges {
    pub(crate) description: Option<String>,
    pub(crate) kind: Option<ProviderKind>,
    pub(crate) unknown_attributes: Option<Unknown>,
    pub(crate) activity_values: Option<bool>,
    pub(crate) scim_passwords: Option<ScimPasswords>,
}

/// Changes a provider's settings; returns it as it now is and how many stored passwords went
/// (a switch to `ignore` removes them).
pub(crate) fn set_provider(
    c: &Connection,
    by: &Actor,
    name: &str,
    changes: &ProviderChanges,
) -> Result<(Provider, usize)> {
    let mut said = Vec::new();
    if let Some(u) = changes.unknown_attributes {
        schemas::set_unknown(c, name, u)?;
        said.push(format!("unknown attributes {}", u.as_str()));
    }
    if let Some(v) = changes.activity_values {
        providers::set_activity_values(c, name, v)?;
        said.push(format!("activity values {}", if v { "on" } else { "off" }));
    }
    let mut removed = 0;
    if let Some(policy) = changes.scim_passwords {
        removed = providers::set_scim_passwords(c, name, policy)?;
        said.push(format!("SCIM passwords {}", policy.as_str()));
        if removed > 0 {
            said.push(format!("{removed} stored passwords removed"));
        }
    }
    if let Some(k) = changes.kind {
        said.push(format!("type {k}"));
    }
    if let Some(d) = &changes.description {
        said.push(format!("description {d:?}"));
    }
    let p = providers::update(c, name, changes.description.as_deref(), changes.kind)?;
    audit(
        c,
        by,
        "provider changed",
        Some(&p.name),
        &p.name,
        &said.join("; "),
    )?;
    Ok((p, removed))
}

/// Removes a provider with its credentials; one holding users or groups only `with_data`.
pub(crate) fn remove_provider(
    c: &Connection,
    by: &Actor,
    name: &str,
    with_data: bool,
) -> Result<Usage> {
    let p = providers::require(c, name)?;
    let usage = providers::remove(c, name, with_data)?;
    audit(
        c,
        by,
        "provider removed",
        Some(&p.name),
        &p.name,
        &format!(
            "with its credentials, {} users and {} groups",
            usage.users, usage.groups
        ),
    )?;
    Ok(usage)
}

pub(crate) fn add_schema(
    c: &Connection,
    by: &Actor,
    provider: &str,
    kind: ResourceKind,
    definition: &str,
    indexed: &[String],
    now: i64,
) -> Result<Stored> {
    let s = schemas::add(c, provider, kind, definition, indexed, now)?;
    let mut detail = format!("for {}", s.kind.endpoint());
    if !s.indexed.is_empty() {
        detail.push_str(&format!("; indexed {}", s.indexed.join(", ")));
    }
    audit(c, by, "schema added", Some(&s.provider), &s.urn, &detail)?;
    Ok(s)
}

/// Removes a registered schema (with the values resources hold, only `with_values`); returns
/// its URN as registered and how many resources changed.
pub(crate) fn remove_schema(
    c: &Connection,
    by: &Actor,
    provider: &str,
    urn: &str,
    with_values: bool,
    now: &str,
) -> Result<(String, usize)> {
    let s = schemas::require(c, provider, urn)?;
    let changed = schemas::remove(c, provider, urn, with_values, now)?;
    audit(
        c,
        by,
        "schema removed",
        Some(&s.provider),
        &s.urn,
        &format!("values deleted from {changed} resources"),
    )?;
    Ok((s.urn, changed))
}

fn token_detail(t: &TokenInfo) -> String {
    let mut d = format!(
        "expires {}",
        chrono::DateTime::from_timestamp(t.expires, 0).map_or_else(String::new, |d| d
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    if t.read_only {
        d.push_str("; read-only");
    }
    if !t.description.is_empty() {
        d.push_str(&format!("; {:?}", t.description));
    }
    d
}

/// Stores a token minted before the transaction.
pub(crate) fn create_token(
    c: &Connection,
    by: &Actor,
    minted: &Minted,
    provider: &Provider,
    plan: &Issue,
) -> Result<TokenInfo> {
    let t = super::credentials::create(c, minted, provider.id, plan)?;
    audit(
        c,
        by,
        "token created",
        Some(&t.provider),
        &t.id,
        &token_detail(&t),
    )?;
    Ok(t)
}

/// Carries out a planned rotation; returns the new token and the old one as it now is.
pub(crate) fn rotate_token(
    c: &Connection,
    by: &Actor,
    minted: &Minted,
    provider: &Provider,
    plan: &Rotation,
) -> Result<(TokenInfo, TokenInfo)> {
    let (new, old) = super::credentials::rotate(c, minted, provider.id, plan)?;
    let until = chrono::DateTime::from_timestamp(old.expires, 0).map_or_else(String::new, |d| {
        d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    audit(
        c,
        by,
        "token rotated",
        Some(&old.provider),
        &old.id,
        &format!(
            "replaced by {}, which {}; the old one works until {until}",
            new.id,
            token_detail(&new)
        ),
    )?;
    Ok((new, old))
}

/// Revokes a credential of `kind` (a token or an LDAP service account) at `now`.
pub(crate) fn revoke(
    c: &Connection,
    by: &Actor,
    kind: CredentialKind,
    id: &str,
    now: i64,
) -> Result<Credential> {
    let revoked = match kind {
        CredentialKind::Token => tokens::revoke(c, id, now)?,
        CredentialKind::LdapAccount => ldap_accounts::revoke(c, id, now)?,
        CredentialKind::AppPassword => {
            let k = crate::store::credentials::revoke(c, kind, id, now)?;
            // The user's own activity shows it too.
            crate::store::activity::record_person(
                c,
                k.provider_id,
                &crate::store::activity::PersonRecord {
                    action: crate::store::activity::Action::AppPasswordRevoked,
                    user_id: k.owner.as_deref().unwrap_or_default(),
                    user_name: "",
                    credential: &k.id,
                    client: by.client.clone(),
                    detail: format!("{} (revoked by {})", k.description, by.name),
                },
            )?;
            k
        }
    };
    audit(
        c,
        by,
        &format!("{} revoked", kind.noun()),
        Some(&revoked.provider),
        &revoked.id,
        &revoked.name,
    )?;
    Ok(revoked)
}

pub(crate) fn add_ldap_account(c: &Connection, by: &Actor, a: &NewAccount<'_>) -> Result<Account> {
    let made = ldap_accounts::add(c, a)?;
    let expires = chrono::DateTime::from_timestamp(made.expires, 0).map_or_else(String::new, |d| {
        d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    audit(
        c,
        by,
        "LDAP account created",
        Some(&made.provider),
        &made.id,
        &format!("name {}; expires {expires}", made.name),
    )?;
    Ok(made)
}

/// Maps `ldap_attr` of the provider's entries of `kind` to `scim_path` (checked by the
/// caller).
pub(crate) fn set_mapping(
    c: &Connection,
    by: &Actor,
    provider: &str,
    (kind, ldap_attr): (ResourceKind, &str),
    scim_path: &str,
) -> Result<()> {
    ldap_accounts::set_mapping(c, provider, kind, ldap_attr, scim_path)?;
    audit(
        c,
        by,
        "LDAP attribute mapped",
        Some(provider),
        ldap_attr,
        &format!("{} from {scim_path}", kind.endpoint()),
    )
}

pub(crate) fn remove_mapping(
    c: &Connection,
    by: &Actor,
    provider: &str,
    (kind, ldap_attr): (ResourceKind, &str),
) -> Result<()> {
    ldap_accounts::remove_mapping(c, provider, kind, ldap_attr)?;
    audit(
        c,
        by,
        "LDAP attribute unmapped",
        Some(provider),
        ldap_attr,
        kind.endpoint(),
    )
}

/// Sets (or with `None` removes) a provider's base DN.
pub(crate) fn set_base(
    c: &Connection,
    by: &Actor,
    provider: &str,
    base: Option<&str>,
) -> Result<()> {
    ldap_accounts::set_base(c, provider, base)?;
    audit(
        c,
        by,
        "LDAP base DN set",
        Some(provider),
        base.unwrap_or("(the default)"),
        "",
    )
}

/// Gives a provider POSIX identities (or with `None` takes them away).
pub(crate) fn set_posix(
    c: &Connection,
    by: &Actor,
    provider: &str,
    posix: Option<&crate::scim::posix::Posix>,
) -> Result<()> {
    ldap_accounts::set_posix(c, provider, posix)?;
    let detail = match posix {
        None => "off".to_string(),
        Some(x) => format!(
            "on: numbers from {} to {}, home {}, shell {}, primary group {}",
            x.first_id,
            x.last_id,
            x.home,
            x.shell,
            x.primary_gid
                .map_or_else(|| "private".to_string(), |g| g.to_string())
        ),
    };
    audit(
        c,
        by,
        "LDAP POSIX identities set",
        Some(provider),
        provider,
        &detail,
    )
}

pub(crate) fn add_admin(
    c: &Connection,
    by: &Actor,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<Admin> {
    let a = admins::add(c, name, password_hash, now)?;
    audit(c, by, "admin added", None, &a.name, "")?;
    Ok(a)
}

/// The first admin account of a new installation, when there is none yet (the quick trial);
/// whether it was added.
pub(crate) fn add_first_admin(
    c: &Connection,
    by: &Actor,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool> {
    if admins::count(c)? > 0 {
        return Ok(false);
    }
    add_admin(c, by, name, password_hash, now).map(|_| true)
}

/// A new password for an admin account; its console sessions end.
pub(crate) fn set_admin_password(
    c: &Connection,
    by: &Actor,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<Admin> {
    let a = admins::set_password(c, name, password_hash, now)?;
    audit(
        c,
        by,
        "admin password changed",
        None,
        &a.name,
        "console sessions ended",
    )?;
    Ok(a)
}

/// Removes an admin account; with `keep_one`, never the last one.
pub(crate) fn remove_admin(
    c: &Connection,
    by: &Actor,
    name: &str,
    keep_one: bool,
) -> Result<Admin> {
    let a = admins::remove(c, name, keep_one)?;
    audit(
        c,
        by,
        "admin removed",
        None,
        &a.name,
        "console sessions ended",
    )?;
    Ok(a)
}

/// A console session that starts: the cookie and CSRF secrets are stored hashed.
pub(crate) struct SignIn<'a> {
    pub(crate) admin_id: i64,
    pub(crate) cookie: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) at: i64,
}

pub(crate) fn sign_in(c: &Connection, by: &Actor, s: &SignIn<'_>) -> Result<()> {
    let client = by.client.as_deref().unwrap_or("-");
    admins::start_session(c, s.admin_id, s.cookie, s.csrf, client, s.at)?;
    audit(c, by, "console login", None, "", "")
}

/// A refused console login (wrong name or password); `by` names the account tried, if it
/// could be one.
pub(crate) fn sign_in_refused(c: &Connection, by: &Actor) -> Result<()> {
    audit(
        c,
        by,
        "console login refused",
        None,
        "",
        "wrong account name or password",
    )
}

pub(crate) fn sign_out(c: &Connection, by: &Actor, cookie: &str) -> Result<()> {
    admins::end_session(c, cookie)?;
    audit(c, by, "console logout", None, "", "")
}

/// The audit log, newest first (see `audit::list`).
pub(crate) fn log(
    c: &Connection,
    provider: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<audit::Record>> {
    if let Some(p) = provider
        && providers::get(c, p)?.is_none()
        && audit::list(c, Some(p), None, 1)?.is_empty()
    {
        return Err(Error::NotFound(format!("no provider named {p:?}")));
    }
    audit::list(c, provider, before, limit)
}
