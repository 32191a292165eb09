//! Counts, per identity provider, the non-standard request shapes scimd accepted, and makes
//! them visible in the logs: once when first seen, on the request's access-log line, and as
//! totals with every cleanup run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::{HttpMessage, HttpRequest};

use crate::scim::quirks::{Quirk, Quirks};

#[derive(Default)]
pub struct QuirkCounter {
    counts: Mutex<BTreeMap<(String, Quirk), u64>>,
}

/// The quirks of one request, for its access-log line.
#[derive(Debug, Clone, Copy)]
pub struct Used(pub Quirks);

impl QuirkCounter {
    /// Counts the quirks a request of `provider` used.
    pub fn record(&self, req: &HttpRequest, provider: &str, quirks: Quirks) {
        if quirks.is_empty() {
            return;
        }
        let previous = req.extensions().get::<Used>().map(|u| u.0);
        let mut all = previous.unwrap_or_default();
        all.merge(quirks);
        req.extensions_mut().insert(Used(all));
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for q in quirks.iter() {
            let n = counts.entry((provider.to_string(), q)).or_insert(0);
            *n += 1;
            if *n == 1 {
                tracing::info!(
                    provider = %provider,
                    quirk = %q.name(),
                    "accepted a non-standard request shape from this identity provider (first time since start)"
                );
            }
        }
    }

    /// Logs the totals since start, one line per provider.
    pub fn log_totals(&self) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_provider: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((provider, q), n) in counts.iter() {
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
}

/// The names of the quirks on the access-log line, or "-".
pub fn names(req: &HttpRequest) -> String {
    match req.extensions().get::<Used>() {
        Some(Used(q)) if !q.is_empty() => q.iter().map(Quirk::name).collect::<Vec<_>>().join(","),
        _ => "-".to_string(),
    }
}
