//! The one in-memory counter behind everything the server counts between flushes (requests per
//! provider, refused authentications, LDAP binds and searches, refused binds, accepted quirks):
//! a map from a key to its counts, bounded in keys so a flood of made-up names cannot grow
//! memory, taken whole by the one periodic flush (`Counters::flush`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Counts of type `V` by key `K`, at most `keys` keys between takes. Past that, new keys are
/// counted under `overflow` when there is one, and not at all otherwise.
pub(crate) struct Tally<K, V> {
    map: Mutex<HashMap<K, V>>,
    keys: usize,
    overflow: Option<K>,
}

impl<K: Eq + Hash + Clone, V: Default> Tally<K, V> {
    pub(crate) fn new(keys: usize, overflow: Option<K>) -> Tally<K, V> {
        Tally {
            map: Mutex::default(),
            keys,
            overflow,
        }
    }

    /// Adds to the counts of `key` with `f`; the key is made (allocated) only when it is new.
    /// Returns whether this was the first addition to its key since the last take (callers
    /// log that one), or `None` when the key was not counted.
    pub(crate) fn add<Q>(
        &self,
        key: &Q,
        make: impl FnOnce(&Q) -> K,
        f: impl FnOnce(&mut V),
    ) -> Option<bool>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get_mut(key) {
            f(v);
            return Some(false);
        }
        let key = if map.len() < self.keys {
            make(key)
        } else {
            self.overflow.clone()?
        };
        let first = !map.contains_key::<K>(&key);
        f(map.entry(key).or_default());
        Some(first)
    }

    /// The counts since the last take, ending the interval.
    pub(crate) fn take(&self) -> Vec<(K, V)> {
        let map = std::mem::take(&mut *self.map.lock().unwrap_or_else(|e| e.into_inner()));
        map.into_iter().collect()
    }

    /// The counts so far, without ending the interval.
    pub(crate) fn snapshot(&self) -> Vec<(K, V)>
    where
        V: Clone,
    {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_the_rest_counted_together() {
        let t: Tally<String, u64> = Tally::new(3, Some("(others)".into()));
        for i in 0..10 {
            t.add(&format!("k{i}") as &str, str::to_string, |n| *n += 1);
        }
        assert_eq!(
            t.add("k0", str::to_string, |n| *n += 1),
            Some(false),
            "a known key is not new"
        );
        let mut taken = t.take();
        taken.sort();
        assert_eq!(
            taken,
            [
                ("(others)".to_string(), 7),
                ("k0".to_string(), 2),
                ("k1".to_string(), 1),
                ("k2".to_string(), 1),
            ]
        );
        assert!(t.take().is_empty(), "a take starts the next interval");
    }

    #[test]
    fn without_an_overflow_key_new_keys_are_dropped_past_the_bound() {
        let t: Tally<String, u64> = Tally::new(1, None);
        assert_eq!(t.add("a", str::to_string, |n| *n += 1), Some(true));
        assert_eq!(t.add("b", str::to_string, |n| *n += 1), None);
        assert_eq!(t.snapshot(), [("a".to_string(), 1)]);
        assert_eq!(t.snapshot().len(), 1, "a snapshot keeps the counts");
    }
}
