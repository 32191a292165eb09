//! `provider oidc set|show|unset` and `app-password list|revoke`.

use anyhow::{anyhow, bail};

use super::{fmt_time, open};
use crate::app::admin::Actor;
use crate::app::sign_in::NEVER;
use crate::auth::oidc::{self, Http, Issuer};
use crate::cli::{AppPasswordCommand, OidcCommand};
use crate::config::Config;
use crate::scim::{ResourceKind, filter};
use crate::store::credentials::CredentialKind;
use crate::store::sign_in::{self, OidcSettings};
use crate::store::{OpenMode, providers, schemas};

/// Reads a secret from a file; one trailing line break is not part of it.
fn secret_from(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("reading the client secret from {}: {e}", path.display()))?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        bail!("{} holds no client secret", path.display());
    }
    Ok(secret.to_string())
}

pub(super) fn oidc_command(config: &Config, cmd: OidcCommand) -> anyhow::Result<()> {
    match cmd {
        OidcCommand::Set {
            name,
            issuer,
            client_id,
            client_secret_file,
            ca_file,
            matching,
            admin_group,
            no_admin_group,
        } => {
            let store = open(config, OpenMode::MustExist)?;
            let looked_up = name.clone();
            let (p, old, model) = store.call(move |c| {
                let p = providers::require(c, &looked_up)?;
                let old = sign_in::settings(c, &p.name)?;
                let model = schemas::model(c, p.id)?;
                Ok((p, old, model))
            })?;
            let need = |what: Option<String>, old: Option<&str>, flag: &str| {
                what.or_else(|| old.map(str::to_string)).ok_or_else(|| {
                    anyhow!(
                        "{flag} is needed the first time sign-in is set for {}",
                        p.name
                    )
                })
            };
            let issuer = need(
                issuer.map(|i| i.trim_end_matches('/').to_string()),
                old.as_ref().map(|o| o.issuer.as_str()),
                "--issuer",
            )?;
            oidc::check_issuer(&issuer).map_err(|e| anyhow!(e))?;
            let client_id = need(
                client_id,
                old.as_ref().map(|o| o.client_id.as_str()),
                "--client-id",
            )?;
            let client_secret = match &client_secret_file {
                Some(path) => secret_from(path)?,
                None => need(
                    None,
                    old.as_ref().map(|o| o.client_secret.as_str()),
                    "--client-secret-file",
                )?,
            };
            let ca_pem = match &ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| anyhow!("reading {}: {e}", path.display()))?,
                ),
                None => old.as_ref().and_then(|o| o.ca_pem.clone()),
            };
            let (match_claim, match_attribute) = match &matching {
                Some(m) => {
                    let (claim, attr) = m.split_once('=').ok_or_else(|| {
                        anyhow!("--match takes CLAIM=SCIM_ATTRIBUTE, such as sub=externalId")
                    })?;
                    (claim.trim().to_string(), attr.trim().to_string())
                }
                // The default: the person's login name is the user's unique name.
                None => old.as_ref().map_or_else(
                    || {
                        let name = model.get(ResourceKind::User).name_attribute();
                        ("preferred_username".to_string(), name.to_string())
                    },
                    |o| (o.match_claim.clone(), o.match_attribute.clone()),
                ),
            };
            if match_claim.is_empty() {
                bail!("--match needs a claim name before '='");
            }
            // The attribute must be one a filter can compare: what sign-in looks users up by.
            let rt = model.get(ResourceKind::User);
            filter::parse(&format!("{match_attribute} eq \"x\""))
                .map_err(|e| e.to_string())
                .and_then(|f| crate::store::query::condition(rt, "", &f).map_err(|e| e.to_string()))
                .map_err(|e| {
                    anyhow!("--match: {match_attribute} is not a User attribute to match: {e}")
                })?;
            let admin_group = match (admin_group, no_admin_group) {
                (Some(g), _) if g.trim().is_empty() => bail!("--admin-group needs a group name"),
                (Some(g), _) => Some(g),
                (None, true) => None,
                (None, false) => old.as_ref().and_then(|o| o.admin_group.clone()),
            };
            let settings = OidcSettings {
                provider_id: p.id,
                provider: p.name.clone(),
                issuer,
                client_id,
                client_secret,
                ca_pem,
                match_claim,
                match_attribute,
                admin_group,
                changed: chrono::Utc::now().timestamp_millis(),
            };
            // Tried before it is stored: a typo in the issuer or a CA that does not fit is
            // found now, not when the first person signs in.
            let found = Http::new(settings.ca_pem.as_deref())
                .and_then(|http| Issuer::discover(&http, &settings.issuer));
            if let Err(e) = &found {
                eprintln!(
                    "warning: {e}\n         (stored anyway; sign-in works once the issuer answers)"
                );
            }
            let stored = settings.clone();
            store.write_blocking(move |c| {
                crate::app::sign_in::set_oidc(c, &Actor::command_line(), &stored)
            })?;
            println!(
                "sign-in with {} is set{}",
                p.name,
                if found.is_ok() {
                    " (the issuer answered discovery)"
                } else {
                    ""
                }
            );
            show(config, &settings);
        }
        OidcCommand::Show { name } => {
            let store = open(config, OpenMode::MustExist)?;
            let looked_up = name.clone();
            let s = store.call(move |c| {
                let p = providers::require(c, &looked_up)?;
                sign_in::settings(c, &p.name)
            })?;
            match s {
                Some(s) => show(config, &s),
                None => bail!(
                    "identity provider {name} has no sign-in: set one with `scimd provider oidc \
                     set {name} --issuer URL --client-id ID --client-secret-file PATH`"
                ),
            }
        }
        OidcCommand::Unset { name } => {
            let store = open(config, OpenMode::MustExist)?;
            let unset = name.clone();
            store.write_blocking(move |c| {
                crate::app::sign_in::unset_oidc(c, &Actor::command_line(), &unset)
            })?;
            println!("sign-in with {name} is off; its sessions have ended");
        }
    }
    Ok(())
}

fn show(config: &Config, s: &OidcSettings) {
    println!("provider:      {}", s.provider);
    println!("issuer:        {}", s.issuer);
    println!("client id:     {}", s.client_id);
    println!("client secret: (set; never shown)");
    println!(
        "trusts:        {}",
        if s.ca_pem.is_some() {
            "the CA file given (--ca-file)"
        } else {
            "the system's root certificates"
        }
    );
    println!(
        "matches:       claim {} = {}",
        s.match_claim, s.match_attribute
    );
    println!(
        "admin group:   {}",
        s.admin_group.as_deref().unwrap_or("(none: /me only)")
    );
    println!(
        "redirect URI:  {}/oidc/callback  (register it with the identity provider)",
        config.console_url()
    );
    println!("sign-in link:  {}/login", config.console_url());
}

pub(super) fn app_password_command(config: &Config, cmd: AppPasswordCommand) -> anyhow::Result<()> {
    let store = open(config, OpenMode::MustExist)?;
    match cmd {
        AppPasswordCommand::List { provider, user } => {
            let rows = store.call(move |c| {
                let pid = provider
                    .as_deref()
                    .map(|p| providers::require(c, p))
                    .transpose()?
                    .map(|p| p.id);
                let owner = match (&user, pid) {
                    (Some(u), Some(pid)) => Some(
                        sign_in::user_id_by_name(c, pid, u)?
                            .ok_or_else(|| crate::store::Error::NotFound(format!("no user {u}")))?,
                    ),
                    _ => None,
                };
                let list = sign_in::app_passwords(c, pid, owner.as_deref())?;
                let names = list
                    .iter()
                    .map(|k| {
                        let owner = k.owner.clone().unwrap_or_default();
                        let name = crate::store::resources::names_by_id(
                            c,
                            k.provider_id,
                            ResourceKind::User,
                            &[owner.as_str()],
                        )?
                        .remove(&owner)
                        .unwrap_or_else(|| format!("(deleted user {owner})"));
                        Ok(name)
                    })
                    .collect::<crate::store::Result<Vec<String>>>()?;
                Ok(list.into_iter().zip(names).collect::<Vec<_>>())
            })?;
            if rows.is_empty() {
                println!("no application passwords");
                return Ok(());
            }
            let now = chrono::Utc::now().timestamp();
            println!(
                "{:<16}  {:<12}  {:<28}  {:<24}  {:<9}  {:<23}  LAST USED",
                "ID", "PROVIDER", "USER", "NAME", "STATE", "EXPIRES"
            );
            for (k, user) in rows {
                println!(
                    "{:<16}  {:<12}  {:<28}  {:<24}  {:<9}  {:<23}  {}",
                    k.id,
                    k.provider,
                    user,
                    k.description,
                    k.state(now).as_str(),
                    if k.expires >= NEVER {
                        "never".to_string()
                    } else {
                        fmt_time(k.expires)
                    },
                    k.last_used.map_or_else(|| "never".to_string(), fmt_time)
                );
            }
        }
        AppPasswordCommand::Revoke { id } => {
            let now = chrono::Utc::now().timestamp();
            let k = store.write_blocking(move |c| {
                crate::app::admin::revoke(
                    c,
                    &Actor::command_line(),
                    CredentialKind::AppPassword,
                    &id,
                    now,
                )
            })?;
            println!(
                "revoked application password {} ({}) of identity provider {}",
                k.id, k.description, k.provider
            );
        }
    }
    Ok(())
}
