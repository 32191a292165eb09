//! Refused authentications (401, 429), counted instead of logged one by one: a flood of bad
//! tokens must not fill the disk through the log. The first refusal of each (provider, token
//! id) in an interval is logged as it happens; the counts are logged once per interval and at
//! shutdown. Memory is bounded: past `KEYS` distinct keys, the rest are counted together.

use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct (provider, token id) pairs counted separately in one interval.
const KEYS: usize = 1024;

#[derive(Default)]
pub(crate) struct Refusals {
    counts: Mutex<HashMap<(String, String), Counts>>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    unauthorized: u64,
    throttled: u64,
}

impl Refusals {
    /// Counts one refused request; logs it when it is the first of its key in this interval.
    pub(crate) fn count(&self, provider: &str, token: &str, status: u16, detail: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (provider.to_string(), token.to_string());
        if counts.len() >= KEYS && !counts.contains_key(&key) {
            key = ("-".into(), "(others)".into());
        }
        let first = !counts.contains_key(&key);
        let c = counts.entry(key).or_default();
        match status {
            429 => c.throttled += 1,
            _ => c.unauthorized += 1,
        }
        if first {
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

    /// Logs the counts of the interval that ends now, starts the next, and returns them as
    /// (provider, token id, refused with 401, refused with 429) for the activity log.
    pub(crate) fn log_totals(&self) -> Vec<(String, String, u64, u64)> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        let mut keys: Vec<_> = counts.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(keys.len());
        for ((provider, token), c) in keys {
            tracing::warn!(
                provider = %provider,
                token = %token,
                unauthorized = c.unauthorized,
                throttled = c.throttled,
                "authentication refusals in the last interval"
            );
            out.push((provider, token, c.unauthorized, c.throttled));
        }
        out
    }
}
