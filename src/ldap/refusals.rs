//! Refused LDAP binds, counted instead of logged and recorded one by one: a flood of wrong
//! passwords or made-up names must fill neither the disk (through the log) nor the activity
//! log. The first refusal of each (provider, name) in an interval is logged as it happens, its
//! DN shortened; at the end of each interval the counts are logged once and written to the
//! activity log as one record per (provider, name), with the reasons and addresses seen.
//! Memory is bounded: past `KEYS` distinct keys, the rest are counted together.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

/// Distinct (provider, name) pairs counted separately in one interval.
const KEYS: usize = 1024;
/// Reasons and addresses kept per key (the count goes on past them).
const KEPT: usize = 4;
/// Characters of a DN shown in the log.
const DN_SHOWN: usize = 120;

/// One interval's refusals of one name.
#[derive(Default, Clone, Debug, PartialEq)]
pub(crate) struct Refused {
    pub(crate) count: u64,
    pub(crate) reasons: BTreeSet<&'static str>,
    pub(crate) addresses: BTreeSet<IpAddr>,
}

#[derive(Default)]
pub(crate) struct BindRefusals {
    counts: Mutex<HashMap<(String, String), Refused>>,
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

impl BindRefusals {
    /// Counts one refused bind of `name` (a service account's name, `uid=USERNAME`, or
    /// `(unknown names)`) of `provider`; logs it when it is the first of its key in this
    /// interval.
    pub(crate) fn count(
        &self,
        provider: &str,
        name: &str,
        dn: &str,
        peer: IpAddr,
        reason: &'static str,
    ) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (provider.to_ascii_lowercase(), name.to_string());
        if counts.len() >= KEYS && !counts.contains_key(&key) {
            key = (String::new(), "(others)".into());
        }
        let first = !counts.contains_key(&key);
        let r = counts.entry(key).or_default();
        r.count += 1;
        if r.reasons.len() < KEPT {
            r.reasons.insert(reason);
        }
        if r.addresses.len() < KEPT {
            r.addresses.insert(peer);
        }
        if first {
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

    /// Logs the counts of the interval that ends now, starts the next, and returns them as
    /// ((provider, name), refusals) for the activity log.
    pub(crate) fn take(&self) -> Vec<((String, String), Refused)> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        let mut keys: Vec<_> = counts.into_iter().collect();
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

/// The activity records of an interval's refusals: (provider, name, count, detail).
pub(crate) fn records(
    taken: Vec<((String, String), Refused)>,
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
    fn refusals_are_counted_per_name_with_a_bounded_number_of_keys() {
        let r = BindRefusals::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..3000 {
            r.count("P", &format!("n{i}"), "dn", ip, "wrong password");
            r.count("P", "n0", "dn", ip, "no such name");
        }
        let taken = r.take();
        assert_eq!(taken.len(), KEYS + 1);
        let n0 = &taken
            .iter()
            .find(|((p, n), _)| p == "p" && n == "n0")
            .unwrap()
            .1;
        assert_eq!(n0.count, 3001);
        assert_eq!(n0.reasons.len(), 2);
        let others = &taken.iter().find(|((_, n), _)| n == "(others)").unwrap().1;
        assert_eq!(others.count, 3000 - KEYS as u64);
        assert!(r.take().is_empty());
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
