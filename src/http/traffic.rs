//! Requests per identity provider, counted in memory and added to `provider_traffic` by the
//! server's periodic flush (a write per request would cost every read a transaction).

use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct providers counted in one interval; requests naming more are not counted.
const KEYS: usize = 4096;

#[derive(Default)]
pub(crate) struct Traffic {
    counts: Mutex<HashMap<String, (u64, i64)>>,
}

impl Traffic {
    /// Counts one authenticated request of `provider` at `at_ms`.
    pub(crate) fn count(&self, provider: &str, at_ms: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = counts.get_mut(provider) {
            c.0 += 1;
            c.1 = c.1.max(at_ms);
        } else if counts.len() < KEYS {
            counts.insert(provider.to_string(), (1, at_ms));
        }
    }

    /// The counts since the last call: (provider, requests, last request in unix ms).
    pub(crate) fn take(&self) -> Vec<(String, u64, i64)> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        counts.into_iter().map(|(p, (n, at))| (p, n, at)).collect()
    }
}
