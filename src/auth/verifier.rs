//! Verifies presented secrets without paying argon2 on every request.
//!
//! argon2id costs tens of milliseconds and ~19 MiB per run. A secret that verified once is
//! remembered as a keyed digest of (token id, stored hash, secret), so only that exact secret
//! matches later, and only while the stored hash is the same (a user's password that its
//! identity provider replaced stops matching at once);
//! the token row itself (expiry, revocation) is still read on every request by the caller.
//! Secrets that failed are remembered too (a bounded set); concurrent requests presenting the
//! same secret wait for one verification instead of each running argon2; and argon2 runs only on
//! a few dedicated threads. New secrets presented for one token id from one client address are
//! verified at a bounded rate (a burst, then one per second): someone guessing secrets for a
//! known token id gets 429 instead of running argon2 for every guess, so a flood of bad tokens
//! cannot exhaust CPU or memory. The budget is the client's own, so the token's real holder
//! gets through during a flood even when its secret is not remembered yet (after a restart, a
//! new token): token ids are not secret, addresses cannot be spoofed over TCP.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::{Blake2s256, Digest};
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::token::{self, Secret};

type Key = [u8; 32];

/// How many failed (id, secret) pairs are remembered before the set starts over.
const FAILED_CAPACITY: usize = 4096;
/// `last_used` is written at most this often per token (seconds).
const LAST_USED_GRANULARITY: i64 = 60;
/// Secrets not seen before that one token id may have verified at once...
const NEW_SECRETS_BURST: f64 = 10.0;
/// ...and then one per this interval.
const NEW_SECRET_EVERY: Duration = Duration::from_secs(1);
/// Binds with new secrets that one client address may have checked at once, whatever names
/// they are for (LDAP binds, where unknown names cost argon2 too)...
const ADDRESS_BURST: f64 = 50.0;
/// ...and then one per this interval.
const ADDRESS_EVERY: Duration = Duration::from_millis(100);

/// How often a budget gets one back: `every`, or in debug builds never when
/// `TEST_BUDGETS_NO_REFILL` is set, so a test of where a budget runs out does not depend on how
/// fast the machine checks secrets.
fn refill(every: Duration) -> Duration {
    #[cfg(debug_assertions)]
    {
        static FROZEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *FROZEN.get_or_init(|| std::env::var_os("TEST_BUDGETS_NO_REFILL").is_some()) {
            return Duration::from_secs(365 * 86_400);
        }
    }
    every
}

/// Whose secret is checked, which decides the budgets it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// A random token secret presented over SCIM: a budget of new secrets per token id.
    Token,
    /// A random secret bound with over LDAP (a service account): budgets per name and
    /// address, and per address across names.
    Random,
    /// A person's own password: as `Random`, and once a budget is spent even a password that
    /// was verified before is throttled, so a guesser cannot tell the right one by its answer.
    Chosen,
}

/// The outcome of checking a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    Invalid,
    /// Not checked: too many new secrets for this token id lately. Retry shortly.
    Throttled,
}

/// A token bucket of verifications of new secrets for one token id.
struct Budget {
    left: f64,
    at: Instant,
    /// What it holds at most, refilled one per `every`.
    burst: f64,
    every: Duration,
}

impl Budget {
    /// What is left at `now`, refilled since `at`.
    fn left_at(&self, now: Instant) -> f64 {
        let refill = now.duration_since(self.at).as_secs_f64() / self.every.as_secs_f64();
        (self.left + refill).min(self.burst)
    }
}

pub(crate) struct Verifier {
    key: Key,
    verified: Mutex<HashMap<String, Key>>,
    failed: Mutex<HashSet<Key>>,
    last_used: Mutex<HashMap<String, i64>>,
    in_flight: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    argon2: Mutex<mpsc::Sender<Argon2Job>>,
    budgets: Mutex<HashMap<String, Budget>>,
    /// An argon2id hash of nothing anyone knows, made on first use: what a bind is checked
    /// against when there is nothing to check (no such name, no password), so that answer
    /// costs what a wrong password costs.
    dummy: tokio::sync::OnceCell<String>,
    /// Presented secrets checked with argon2 since start (`/metrics`): what a flood of wrong
    /// secrets costs, and what one bind or request costs.
    verifications: std::sync::atomic::AtomicU64,
}

type Argon2Job = Box<dyn FnOnce() + Send>;

/// Starts `n` threads that run argon2 jobs one at a time each.
fn argon2_threads(n: usize) -> mpsc::Sender<Argon2Job> {
    let (tx, rx) = mpsc::channel::<Argon2Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n.max(1) {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("scimd-argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match lock(&rx).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start an argon2 thread");
        }
    }
    tx
}

impl Verifier {
    /// `concurrency` bounds simultaneous argon2 runs (and so their memory: ~19 MiB each).
    pub(crate) fn new(concurrency: usize) -> Verifier {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Verifier {
            key,
            verified: Mutex::default(),
            failed: Mutex::default(),
            last_used: Mutex::default(),
            in_flight: Mutex::default(),
            argon2: Mutex::new(argon2_threads(concurrency)),
            budgets: Mutex::default(),
            dummy: tokio::sync::OnceCell::new(),
            verifications: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Presented secrets checked with argon2 since start.
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes one verification of a new secret from the token id's budget, if any is left.
    fn spend(&self, id: &str, now: Instant) -> bool {
        self.spend_from(id, now, NEW_SECRETS_BURST, refill(NEW_SECRET_EVERY))
    }

    /// Whether the budget `id` (or the address's, `address`) has nothing left at `now`.
    fn spent(&self, id: &str, address: Option<&str>, now: Instant) -> bool {
        let budgets = lock(&self.budgets);
        let empty = |key: &str| budgets.get(key).is_some_and(|b| b.left_at(now) < 1.0);
        empty(id) || address.is_some_and(empty)
    }

    /// Takes one from budget `id` (`burst` at most, refilled one per `every`), if any is left.
    fn spend_from(&self, id: &str, now: Instant, burst: f64, every: Duration) -> bool {
        let mut budgets = lock(&self.budgets);
        if budgets.len() >= FAILED_CAPACITY && !budgets.contains_key(id) {
            // Budgets that have refilled since are forgotten; if a flood of distinct ids leaves
            // none of those, the oldest half goes, so the map stays bounded.
            budgets.retain(|_, b| b.left_at(now) < b.burst);
            if budgets.len() >= FAILED_CAPACITY {
                let mut ats: Vec<Instant> = budgets.values().map(|b| b.at).collect();
                ats.sort_unstable();
                let cut = ats[ats.len() / 2];
                budgets.retain(|_, b| b.at > cut);
            }
        }
        let b = budgets.entry(id.to_string()).or_insert(Budget {
            left: burst,
            at: now,
            burst,
            every,
        });
        b.left = b.left_at(now);
        b.at = now;
        if b.left >= 1.0 {
            b.left -= 1.0;
            true
        } else {
            false
        }
    }

    fn digest(&self, id: &str, phc: &str, secret: &Secret) -> Key {
        Blake2s256::new()
            .chain_update(self.key)
            .chain_update(id.as_bytes())
            .chain_update([0u8])
            .chain_update(phc.as_bytes())
            .chain_update([0u8])
            .chain_update(secret.expose().as_bytes())
            .finalize()
            .into()
    }

    fn remembered(&self, id: &str, d: &Key) -> Option<bool> {
        if lock(&self.verified).get(id) == Some(d) {
            return Some(true);
        }
        if lock(&self.failed).contains(d) {
            return Some(false);
        }
        None
    }

    /// Runs `f` on an argon2 thread and returns its result.
    async fn on_argon2_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Argon2Job = Box::new(move || {
            let _ = tx.send(f());
        });
        lock(&self.argon2).send(job).ok()?;
        rx.await.ok()
    }

    /// Whether `secret` is the one whose argon2id hash is `phc` (or, for a secret not seen before
    /// when this token id has had too many of those lately, that it was not checked).
    /// Checks `secret` for token `id` against its stored argon2 `phc`; `client` is the
    /// address the request came from (whose budget of new secrets it spends).
    pub(crate) async fn verify(
        &self,
        id: &str,
        secret: &Secret,
        phc: &str,
        client: Option<std::net::IpAddr>,
    ) -> Verdict {
        self.verify_as(id, id, secret, phc, client, Secrets::Token)
            .await
    }

    /// `verify` for a token whose row holds a fingerprint of its secret (`token::fingerprint`):
    /// a remembered secret costs one digest, as before (the fingerprint is not even computed
    /// on that path, every request's); a new one that the fingerprint rules out is refused
    /// without argon2 and without spending any budget, so guesses never throttle the holder.
    pub(crate) async fn verify_fingerprinted(
        &self,
        id: &str,
        secret: &Secret,
        (phc, fingerprint): (&str, Option<&str>),
        client: Option<std::net::IpAddr>,
    ) -> Verdict {
        let d = self.digest(id, phc, secret);
        if let Some(known) = self.remembered(id, &d) {
            return verdict(known);
        }
        if !token::may_match(fingerprint, id, secret) {
            return Verdict::Invalid;
        }
        self.verify(id, secret, phc, client).await
    }

    /// `verify`, with the budget of new secrets kept under `budget` (a name, where the caller
    /// must not tell known names from unknown ones) and, for LDAP binds (`secrets` other than
    /// `Token`), also spent from the client address's own budget across all names.
    pub(crate) async fn verify_as(
        &self,
        id: &str,
        budget: &str,
        secret: &Secret,
        phc: &str,
        client: Option<std::net::IpAddr>,
        secrets: Secrets,
    ) -> Verdict {
        // The budgets' keys, made only where budgets are read: a remembered token costs none.
        let keys = || {
            let budget = match client {
                Some(ip) => format!("{budget} {ip}"),
                None => budget.to_string(),
            };
            let address = client
                .filter(|_| secrets != Secrets::Token)
                .map(|ip| format!("address {ip}"));
            (budget, address)
        };
        // A person's password: a spent budget throttles before anything is remembered.
        if secrets == Secrets::Chosen {
            let (budget, address) = keys();
            if self.spent(&budget, address.as_deref(), Instant::now()) {
                return Verdict::Throttled;
            }
        }
        let d = self.digest(id, phc, secret);
        if let Some(known) = self.remembered(id, &d) {
            return verdict(known);
        }
        // One verification per distinct (id, secret) at a time; the others wait for its answer.
        let gate = lock(&self.in_flight).entry(d).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(known) = self.remembered(id, &d) {
            return verdict(known);
        }
        let (budget, address) = keys();
        let now = Instant::now();
        let address_ok = match &address {
            Some(a) => self.spend_from(a, now, ADDRESS_BURST, refill(ADDRESS_EVERY)),
            None => true,
        };
        if !address_ok || !self.spend(&budget, now) {
            lock(&self.in_flight).remove(&d);
            return Verdict::Throttled;
        }
        let (secret2, phc2) = (secret.clone(), phc.to_string());
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = self
            .on_argon2_thread(move || token::verify(&secret2, &phc2))
            .await
            .unwrap_or(false);
        if ok {
            lock(&self.verified).insert(id.to_string(), d);
        } else {
            let mut failed = lock(&self.failed);
            if failed.len() >= FAILED_CAPACITY {
                failed.clear();
            }
            failed.insert(d);
        }
        lock(&self.in_flight).remove(&d);
        verdict(ok)
    }

    /// The hash checked when there is nothing to check (see `dummy`); `None` if argon2 failed.
    pub(crate) async fn dummy_hash(&self) -> Option<String> {
        self.dummy
            .get_or_try_init(|| async {
                let mut secret = [0u8; 32];
                OsRng.fill_bytes(&mut secret);
                let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                match self
                    .on_argon2_thread(move || token::hash_str(&secret))
                    .await
                {
                    Some(Ok(phc)) => Ok(phc),
                    _ => Err(()),
                }
            })
            .await
            .ok()
            .cloned()
    }

    /// Whether `password` matches the argon2id PHC string `phc`, checked on the argon2 threads;
    /// an empty `phc` (no such account) costs a full run against a throwaway hash, so the
    /// answer takes as long either way. `None` if the argon2 threads have stopped.
    pub(crate) async fn check_password(&self, password: String, phc: String) -> Option<bool> {
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.on_argon2_thread(move || {
            if phc.is_empty() {
                let _ = token::hash_str(&password);
                return false;
            }
            token::verify_str(&password, &phc)
        })
        .await
    }

    /// Hashes a password with argon2id on the argon2 threads.
    pub(crate) async fn hash(&self, secret: String) -> Result<String, String> {
        self.on_argon2_thread(move || token::hash_str(&secret))
            .await
            .unwrap_or_else(|| Err("argon2 threads stopped".into()))
    }

    /// Whether `last_used` should be written now: once per token per minute, not per request.
    pub(crate) fn should_record_use(&self, id: &str, stored: Option<i64>, now: i64) -> bool {
        let mut seen = lock(&self.last_used);
        let last = seen.get(id).copied().max(stored).unwrap_or(i64::MIN);
        if now.saturating_sub(last) >= LAST_USED_GRANULARITY {
            seen.insert(id.to_string(), now);
            true
        } else {
            false
        }
    }
}

fn verdict(valid: bool) -> Verdict {
    if valid {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}

/// A poisoned lock only means another request panicked mid-update of a cache; the data is
/// still a valid cache, so keep using it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_only_the_exact_secret() {
        let v = Verifier::new(1);
        let t = token::generate();
        let phc = token::hash(&t.secret).unwrap();
        assert_eq!(v.verify(&t.id, &t.secret, &phc, None).await, Verdict::Valid);
        assert_eq!(
            v.verify(&t.id, &t.secret, &phc, None).await,
            Verdict::Valid,
            "cached success"
        );
        let other = token::generate().secret;
        assert_eq!(v.verify(&t.id, &other, &phc, None).await, Verdict::Invalid);
        assert_eq!(
            v.verify(&t.id, &other, &phc, None).await,
            Verdict::Invalid,
            "cached failure"
        );
        // The same secret under another id is a different cache entry.
        assert_eq!(
            v.verify("0000000000000000", &t.secret, "junk", None).await,
            Verdict::Invalid
        );
    }

    #[tokio::test]
    async fn wrong_secrets_its_fingerprint_rules_out_spend_nothing() {
        let v = Verifier::new(2);
        let t = token::generate();
        let phc = token::hash(&t.secret).unwrap();
        let f = token::fingerprint(&t.id, &t.secret);
        for _ in 0..3 * NEW_SECRETS_BURST as usize {
            let wrong = token::generate().secret;
            let got = v
                .verify_fingerprinted(&t.id, &wrong, (&phc, Some(&f)), None)
                .await;
            assert_eq!(got, Verdict::Invalid);
        }
        assert_eq!(v.verifications(), 0, "no argon2 for a wrong secret");
        assert_eq!(
            v.verify_fingerprinted(&t.id, &t.secret, (&phc, Some(&f)), None)
                .await,
            Verdict::Valid,
            "the holder is not throttled"
        );
        assert_eq!(v.verifications(), 1);
        // Remembered: no argon2 again.
        assert_eq!(
            v.verify_fingerprinted(&t.id, &t.secret, (&phc, Some(&f)), None)
                .await,
            Verdict::Valid
        );
        assert_eq!(v.verifications(), 1);
    }

    #[tokio::test]
    async fn new_secrets_for_one_id_are_rate_limited_but_known_ones_are_not() {
        let v = Verifier::new(1);
        let t = token::generate();
        let phc = token::hash(&t.secret).unwrap();
        assert_eq!(v.verify(&t.id, &t.secret, &phc, None).await, Verdict::Valid);
        // Someone has used up this id's budget of new secrets (see `budgets_refill_with_time`).
        while v.spend(&t.id, Instant::now()) {}
        let guess = token::generate().secret;
        assert_eq!(
            v.verify(&t.id, &guess, &phc, None).await,
            Verdict::Throttled
        );
        assert_eq!(
            v.verify(&t.id, &guess, &phc, None).await,
            Verdict::Throttled,
            "a throttled guess is not remembered as checked"
        );
        // The real secret is remembered: the budget does not apply to it.
        assert_eq!(v.verify(&t.id, &t.secret, &phc, None).await, Verdict::Valid);
        // Another token id has its own budget.
        let u = token::generate();
        let phc_u = token::hash(&u.secret).unwrap();
        assert_eq!(
            v.verify(&u.id, &u.secret, &phc_u, None).await,
            Verdict::Valid
        );
    }

    /// A user's password is checked against the hash its identity provider last sent: after a
    /// change the old password is refused although it verified before, and a new password
    /// that once failed (against the old hash) is accepted.
    #[tokio::test]
    async fn what_is_remembered_holds_only_for_the_hash_it_was_checked_against() {
        let v = Verifier::new(1);
        let id = "user-7";
        let (first, second) = (
            Secret::from_text("first password"),
            Secret::from_text("second password"),
        );
        let phc_first = token::hash(&first).unwrap();
        let phc_second = token::hash(&second).unwrap();
        assert_eq!(v.verify(id, &first, &phc_first, None).await, Verdict::Valid);
        assert_eq!(
            v.verify(id, &second, &phc_first, None).await,
            Verdict::Invalid
        );
        assert_eq!(
            v.verify(id, &first, &phc_second, None).await,
            Verdict::Invalid
        );
        assert_eq!(
            v.verify(id, &second, &phc_second, None).await,
            Verdict::Valid
        );
        assert_eq!(v.verify(id, &first, &phc_first, None).await, Verdict::Valid);
    }

    #[tokio::test]
    async fn a_flood_from_one_address_does_not_lock_the_holder_out_from_another() {
        let v = Verifier::new(1);
        let t = token::generate();
        let phc = token::hash(&t.secret).unwrap();
        let attacker = Some(std::net::IpAddr::from([203, 0, 113, 7]));
        let holder = Some(std::net::IpAddr::from([198, 51, 100, 1]));
        // The attacker spends its whole budget on guesses; the next one is throttled...
        for _ in 0..10 {
            let guess = token::generate().secret;
            assert_eq!(
                v.verify(&t.id, &guess, &phc, attacker).await,
                Verdict::Invalid
            );
        }
        let guess = token::generate().secret;
        assert_eq!(
            v.verify(&t.id, &guess, &phc, attacker).await,
            Verdict::Throttled
        );
        // ...while the holder, whose secret is not remembered yet (a restart, a new token), is
        // verified.
        assert_eq!(
            v.verify(&t.id, &t.secret, &phc, holder).await,
            Verdict::Valid
        );
    }

    #[test]
    fn budgets_refill_with_time() {
        let v = Verifier::new(1);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(v.spend("a", start));
        }
        assert!(!v.spend("a", start));
        assert!(!v.spend("a", start + Duration::from_millis(500)));
        assert!(v.spend("a", start + Duration::from_millis(1100)));
        assert!(!v.spend("a", start + Duration::from_millis(1200)));
        // A long pause refills up to the burst, not beyond.
        let later = start + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(v.spend("a", later));
        }
        assert!(!v.spend("a", later));
    }

    #[test]
    fn budgets_stay_bounded_under_a_flood_of_distinct_names() {
        let v = Verifier::new(1);
        let start = Instant::now();
        // Each spent once, none refilled yet: the oldest go, the map never passes its bound.
        for i in 0..3 * FAILED_CAPACITY {
            let at = start + Duration::from_micros(i as u64);
            assert!(v.spend(&format!("name {i}"), at));
            assert!(lock(&v.budgets).len() <= FAILED_CAPACITY);
        }
        // A budget still being spent is among those kept.
        let at = start + Duration::from_micros(3 * FAILED_CAPACITY as u64);
        for _ in 0..9 {
            assert!(v.spend("name 12287", at));
        }
        assert!(!v.spend("name 12287", at));
    }

    #[test]
    fn last_used_is_recorded_coarsely() {
        let v = Verifier::new(1);
        assert!(v.should_record_use("a", None, 1000));
        assert!(!v.should_record_use("a", None, 1030));
        assert!(v.should_record_use("a", None, 1060));
        assert!(
            !v.should_record_use("b", Some(990), 1000),
            "stored value counts"
        );
        assert!(v.should_record_use("b", Some(900), 1000));
    }
}
