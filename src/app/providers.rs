//! What the command line and the console show about identity providers: one summary per
//! provider for lists and the dashboard, and one overview for a provider's own page, each read
//! in one snapshot so the figures agree with each other.

use rusqlite::Connection;

use crate::store::activity::{self, Status};
use crate::store::credentials::{self, Credential, CredentialKind};
use crate::store::ldap_accounts::{self, Traffic};
use crate::store::providers::{self, Provider, Usage};
use crate::store::schemas::{self, Stored};
use crate::store::{Result, Snapshot};

/// A provider with its size and recent activity.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) provider: Provider,
    pub(crate) usage: Usage,
    pub(crate) status: Status,
}

/// Every provider, by name, with its size and recent activity at `now_ms`.
/// Every provider's summary at `now_ms` (`hours`: the counts of settled hours kept so far).
pub(crate) fn summaries(
    c: &Connection,
    now_ms: i64,
    hours: Option<&activity::HourCounts>,
) -> Result<Vec<Summary>> {
    in_snapshot(c, |c| {
        providers::list(c)?
            .into_iter()
            .map(|provider| {
                Ok(Summary {
                    usage: providers::usage(c, provider.id)?,
                    status: activity::status(c, (provider.id, provider.created), now_ms, hours)?,
                    provider,
                })
            })
            .collect()
    })
}

/// Everything a provider's own page shows.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    pub(crate) summary: Summary,
    /// Its credentials of every kind: tokens first (newest first), then LDAP service accounts.
    pub(crate) credentials: Vec<Credential>,
    pub(crate) extensions: Vec<Stored>,
    /// LDAP binds and searches per account over the last 24 hours, busiest first.
    pub(crate) ldap_traffic: Vec<Traffic>,
    /// Its LDAP tree: the base DN (its own or the default), its own attributes (entries of this
    /// type, LDAP name, SCIM path) and its POSIX identities.
    pub(crate) ldap_base: String,
    pub(crate) ldap_mappings: Vec<(crate::scim::ResourceKind, String, String)>,
    pub(crate) posix: Option<crate::scim::posix::Posix>,
    /// Sign-in with the provider, when set.
    pub(crate) sign_in: Option<crate::store::sign_in::OidcSettings>,
    /// The userName of each application password's owner, by owner id.
    pub(crate) owners: std::collections::HashMap<String, String>,
    /// Its change feeds, and the number of its last event.
    pub(crate) feeds: Vec<crate::store::feeds::Feed>,
    pub(crate) feed_last: i64,
}

impl Overview {
    /// Its credentials of one kind.
    pub(crate) fn of_kind(&self, kind: CredentialKind) -> impl Iterator<Item = &Credential> {
        self.credentials.iter().filter(move |k| k.kind == kind)
    }
}

/// The overview of the provider called `name` (or `NotFound`) at `now_ms`.
pub(crate) fn overview(
    c: &Connection,
    name: &str,
    now_ms: i64,
    hours: Option<&activity::HourCounts>,
) -> Result<Overview> {
    in_snapshot(c, |c| {
        let provider = providers::require(c, name)?;
        let pid = provider.id;
        let credentials = credentials::list(c, None, Some(pid))?;
        let owner_ids: Vec<&str> = credentials
            .iter()
            .filter_map(|k| k.owner.as_deref())
            .collect();
        let owners = crate::store::resources::names_by_id(
            c,
            pid,
            crate::scim::ResourceKind::User,
            &owner_ids,
        )?;
        Ok(Overview {
            feeds: crate::store::feeds::of_provider(c, pid)?,
            feed_last: crate::store::feeds::last_seq(c, pid)?,
            sign_in: crate::store::sign_in::settings(c, &provider.name)?,
            owners,
            credentials,
            extensions: schemas::list(c, Some(&provider.name))?,
            ldap_traffic: ldap_accounts::traffic(c, pid, now_ms)?,
            ldap_base: ldap_accounts::base_of(c, pid)?
                .unwrap_or_else(|| crate::scim::directory::base_dn(&provider.name)),
            ldap_mappings: ldap_accounts::mappings(c, pid)?,
            posix: ldap_accounts::posix(c, pid)?,
            summary: Summary {
                usage: providers::usage(c, pid)?,
                status: activity::status(c, (pid, provider.created), now_ms, hours)?,
                provider,
            },
        })
    })
}

/// Runs `f` in one read transaction, so its several reads see one state of the database (in
/// the caller's transaction when one is open).
fn in_snapshot<T>(c: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    if !c.is_autocommit() {
        return f(c);
    }
    let snapshot = Snapshot::begin(c)?;
    f(&snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::store::ldap_accounts::NewAccount;
    use crate::store::tokens::{self, NewTokenRow};

    #[test]
    fn an_overview_holds_every_kind_of_credential_and_the_ldap_traffic() {
        let c = crate::store::test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Entra, 0).unwrap();
        providers::insert(&c, "q", "", ProviderKind::Generic, 0).unwrap();
        tokens::insert(
            &c,
            &NewTokenRow {
                id: "t1",
                provider_id: p.id,
                secret_hash: "h",
                fingerprint: None,
                description: "entra",
                read_only: false,
                created: 1,
                expires: 100,
            },
        )
        .unwrap();
        let account = NewAccount {
            id: "a1",
            provider: "p",
            name: "grafana",
            secret_hash: "h",
            fingerprint: None,
            created: 2,
            expires: 100,
        };
        ldap_accounts::add(&c, &account).unwrap();
        ldap_accounts::add_traffic(&c, &[(p.id, "grafana".into(), 3, 1, 7, 5_000)]).unwrap();

        let o = overview(&c, "P", 10_000, None).unwrap();
        assert_eq!(o.summary.provider.name, "p");
        let ids = |kind| o.of_kind(kind).map(|k| k.id.as_str()).collect::<Vec<_>>();
        assert_eq!(ids(CredentialKind::Token), ["t1"]);
        assert_eq!(ids(CredentialKind::LdapAccount), ["a1"]);
        assert_eq!((o.ldap_traffic.len(), o.ldap_traffic[0].searches), (1, 7));
        assert!(matches!(
            overview(&c, "nobody", 0, None),
            Err(crate::store::Error::NotFound(_))
        ));
        let names: Vec<_> = summaries(&c, 0, None)
            .unwrap()
            .into_iter()
            .map(|s| s.provider.name)
            .collect();
        assert_eq!(names, ["p", "q"]);
    }
}
