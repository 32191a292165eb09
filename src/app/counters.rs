//! What the server counts in memory between flushes, instead of writing or logging each event:
//! requests per provider, refused authentications, LDAP traffic per account, refused LDAP
//! binds and the non-standard request shapes accepted. Each is a `Tally`; `flush` logs the
//! interval's totals and writes them to the activity tables in one transaction, once per
//! `activity_interval` and at shutdown. A flood of bad tokens or made-up names fills neither
//! the disk (through the log) nor memory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::tally::Tally;
use crate::scim::quirks::{Quirk, Quirks};
use crate::store::{self, Store};

/// Distinct keys counted separately in one interval, per tally.
const REFUSAL_KEYS: usize = 1024;
const PROVIDER_KEYS: usize = 4096;
const LDAP_ACCOUNTS: usize = 4096;
/// Reasons and addresses kept per refused bind name (the count goes on past them).
const KEPT: usize = 4;
/// Characters of a DN shown in the log.
const DN_SHOWN: usize = 120;

/// Refused requests of one (provider, token id): with 401, with 429.
#[derive(Default, Clone, Copy)]
struct Refused {
    unauthorized: u64,
    throttled: u64,
}

/// One interval's refused binds of one name.
#[derive(Default, Clone, Debug, PartialEq)]
pub(crate) struct RefusedBinds {
    pub(crate) count: u64,
    pub(crate) reasons: BTreeSet<&'static str>,
    pub(crate) addresses: BTreeSet<IpAddr>,
}

/// What an LDAP account did: a bind, a refused bind, a search.
#[derive(Clone, Copy)]
pub(crate) enum LdapEvent {
    Bind = 0,
    FailedBind = 1,
    Search = 2,
}

/// Binds, failed binds, searches; the last of them in unix ms.
type LdapCounted = ([u64; 3], i64);

pub(crate) struct Counters {
    /// Authenticated requests per provider: (requests, last unix ms).
    requests: Tally<String, (u64, i64)>,
    refusals: Tally<(String, String), Refused>,
    ldap: Tally<(i64, String), LdapCounted>,
    bind_refusals: Tally<(String, String), RefusedBinds>,
    /// Since start, never taken: logged as totals with every cleanup run.
    quirks: Tally<(String, Quirk), u64>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            requests: Tally::new(PROVIDER_KEYS, None),
            refusals: Tally::new(REFUSAL_KEYS, Some(("-".into(), "(others)".into()))),
            ldap: Tally::new(LDAP_ACCOUNTS, None),
            bind_refusals: Tally::new(REFUSAL_KEYS, Some((String::new(), "(others)".into()))),
            quirks: Tally::new(usize::MAX, None),
        }
    }
}

/// A DN as the log shows it: at most `DN_SHOWN` characters, then how many more there were.
pub(crate) fn shortened(dn: &str) -> String {
    match dn.char_indices().nth(DN_SHOWN) {
        None => dn.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &dn[..cut],
            dn[cut..].chars().count()
        ),
    }
}

impl Counters {
    /// Counts one authenticated request of `provider` at `at_ms`.
    pub(crate) fn request(&self, provider: &str, at_ms: i64) {
        self.requests.add(provider, str::to_string, |c| {
            c.0 += 1;
            c.1 = c.1.max(at_ms);
        });
    }

    /// Counts one refused request (401 or 429); logs it when it is the first of its
    /// (provider, token id) in this interval.
    pub(crate) fn refusal(&self, provider: &str, token: &str, status: u16, detail: &str) {
        let key = (provider.to_string(), token.to_string());
        let first = self.refusals.add(&key, Clone::clone, |c| match status {
            429 => c.throttled += 1,
            _ => c.unauthorized += 1,
        });
        if first == Some(true) {
            tracing::warn!(
                provider = %provider,
                token = %token,
                status,
                detail = %detail,
                "authentication refused (further refusals of this token are counted, and \
                 logged as totals once a minute)"
            );
        }
    }

    /// Counts what an LDAP account of a provider did.
    pub(crate) fn ldap(&self, provider_id: i64, account: &str, event: LdapEvent) {
        let now = chrono::Utc::now().timestamp_millis();
        let key = (provider_id, account.to_string());
        self.ldap.add(&key, Clone::clone, |c| {
            c.0[event as usize] += 1;
            c.1 = now;
        });
    }

    /// Counts one refused bind of `name` (a service account's name, `uid=USERNAME`, or
    /// `(unknown names)`) of `provider`; logs it when it is the first of its key in this
    /// interval.
    pub(crate) fn bind_refusal(
        &self,
        provider: &str,
        name: &str,
        dn: &str,
        peer: IpAddr,
        reason: &'static str,
    ) {
        let key = (provider.to_ascii_lowercase(), name.to_string());
        let first = self.bind_refusals.add(&key, Clone::clone, |r| {
            r.count += 1;
            if r.reasons.len() < KEPT {
                r.reasons.insert(reason);
            }
            if r.addresses.len() < KEPT {
                r.addresses.insert(peer);
            }
        });
        if first == Some(true) {
            tracing::info!(
                %peer,
                provider,
                dn = %shortened(dn),
                reason,
                "LDAP bind refused (further refusals of this name are counted and logged as \
                 totals once a minute)"
            );
        }
    }

    /// Counts the quirks a request of `provider` used; logs each the first time it is seen.
    pub(crate) fn quirks(&self, provider: &str, quirks: Quirks) {
        for q in quirks.iter() {
            let key = (provider.to_string(), q);
            if self.quirks.add(&key, Clone::clone, |n| *n += 1) == Some(true) {
                tracing::info!(
                    provider = %provider,
                    quirk = %q.name(),
                    "accepted a non-standard request shape from this identity provider (first \
                     time since start)"
                );
            }
        }
    }

    /// Logs the quirks accepted since start, one line per provider.
    pub(crate) fn log_quirk_totals(&self) {
        let mut by_provider: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut counts = self.quirks.snapshot();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        for ((provider, q), n) in counts {
            by_provider
                .entry(provider)
                .or_default()
                .push(format!("{}={n}", q.name()));
        }
        for (provider, list) in by_provider {
            tracing::info!(
                provider = %provider,
                quirks = %list.join(" "),
                "non-standard request shapes accepted since start"
            );
        }
    }

    /// Ends the interval: logs the refusals' totals and writes every count to the activity
    /// tables in one transaction.
    pub(crate) async fn flush(&self, store: &Store) {
        let refused = self.refusal_totals();
        let requests: Vec<(String, u64, i64)> = self
            .requests
            .take()
            .into_iter()
            .map(|(p, (n, at))| (p, n, at))
            .collect();
        let ldap: Vec<_> = self
            .ldap
            .take()
            .into_iter()
            .map(|((pid, account), ([b, f, s], at))| (pid, account, b, f, s, at))
            .collect();
        let binds = bind_records(self.bind_refusal_totals());
        if refused.is_empty() && requests.is_empty() && ldap.is_empty() && binds.is_empty() {
            return;
        }
        let res = store
            .write(move |c| -> store::Result<()> {
                store::activity::record_auth_failures(c, &refused)?;
                store::activity::record_bind_refusals(c, &binds)?;
                store::activity::add_traffic(c, &requests)?;
                store::ldap_accounts::add_traffic(c, &ldap)
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "could not write the interval's counts to the activity log");
        }
    }

    /// Logs the refused requests of the interval that ends now and returns them as
    /// (provider, token id, refused with 401, refused with 429).
    fn refusal_totals(&self) -> Vec<(String, String, u64, u64)> {
        let mut keys = self.refusals.take();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.into_iter()
            .map(|((provider, token), c)| {
                tracing::warn!(
                    provider = %provider,
                    token = %token,
                    unauthorized = c.unauthorized,
                    throttled = c.throttled,
                    "authentication refusals in the last interval"
                );
                (provider, token, c.unauthorized, c.throttled)
            })
            .collect()
    }

    /// Logs the refused binds of the interval that ends now and returns them.
    fn bind_refusal_totals(&self) -> Vec<((String, String), RefusedBinds)> {
        let mut keys = self.bind_refusals.take();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for ((provider, name), r) in &keys {
            tracing::warn!(
                provider = %provider,
                name = %shortened(name),
                refused = r.count,
                "LDAP bind refusals in the last interval"
            );
        }
        keys
    }
}

/// The activity records of an interval's refused binds: (provider, name, count, detail).
fn bind_records(
    taken: Vec<((String, String), RefusedBinds)>,
) -> Vec<(String, String, u64, String)> {
    taken
        .into_iter()
        .filter(|((provider, _), _)| !provider.is_empty())
        .map(|((provider, name), r)| {
            let reasons: Vec<&str> = r.reasons.into_iter().collect();
            let addresses: Vec<String> = r.addresses.iter().map(IpAddr::to_string).collect();
            let detail = format!(
                "LDAP bind of {} refused {} time{}: {}; from {}",
                shortened(&name),
                r.count,
                if r.count == 1 { "" } else { "s" },
                reasons.join(", "),
                addresses.join(", ")
            );
            (provider, shortened(&name), r.count, detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_binds_are_counted_per_name_with_a_bounded_number_of_keys() {
        let c = Counters::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..3000 {
            c.bind_refusal("P", &format!("n{i}"), "dn", ip, "wrong password");
            c.bind_refusal("P", "n0", "dn", ip, "no such name");
        }
        let taken = c.bind_refusal_totals();
        assert_eq!(taken.len(), REFUSAL_KEYS + 1);
        let n0 = &taken
            .iter()
            .find(|((p, n), _)| p == "p" && n == "n0")
            .unwrap()
            .1;
        assert_eq!(n0.count, 3001);
        assert_eq!(n0.reasons.len(), 2);
        let others = &taken.iter().find(|((_, n), _)| n == "(others)").unwrap().1;
        assert_eq!(others.count, 3000 - REFUSAL_KEYS as u64);
        assert!(c.bind_refusal_totals().is_empty());
        let records = bind_records(taken);
        assert_eq!(
            records.len(),
            REFUSAL_KEYS,
            "(others) has no provider to record under"
        );
    }

    #[test]
    fn refused_requests_are_counted_by_status() {
        let c = Counters::default();
        c.refusal("p", "t", 401, "bad");
        c.refusal("p", "t", 401, "bad");
        c.refusal("p", "t", 429, "slow down");
        assert_eq!(
            c.refusal_totals(),
            [("p".to_string(), "t".to_string(), 2, 1)]
        );
    }

    #[test]
    fn long_dns_are_shortened_for_the_log() {
        assert_eq!(shortened("cn=x"), "cn=x");
        let long = format!("cn={}", "é".repeat(900_000));
        let shown = shortened(&long);
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with("(899883 more characters)"), "{shown}");
    }
}
