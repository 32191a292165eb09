//! Periodic cleanup of credentials (SCIM tokens and LDAP service accounts alike: delete the
//! long dead, warn about those that expire soon), of old activity and of ended console
//! sessions; and the console's search index, kept up with the resources.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::config::Config;
use crate::store::credentials::{self, Credential, CredentialKind};
use crate::store::{self, Store};
use crate::store::{activity, audit, text_index};

#[derive(Debug, Clone, Copy)]
pub struct CleanupPolicy {
    /// Expired and revoked tokens are kept this long (for `token list`) before deletion.
    pub retention: Duration,
    /// Active tokens expiring within this window are reported.
    pub warn_within: Duration,
    /// Activity records are kept this long...
    pub activity_retention: Duration,
    /// ...and at most this many per identity provider.
    pub activity_max_records: u32,
    /// Admins' audit records are kept this long.
    pub audit_retention: Duration,
    /// The change feed's events are kept this long.
    pub feed_retention: Duration,
}

impl From<&Config> for CleanupPolicy {
    fn from(c: &Config) -> Self {
        CleanupPolicy {
            retention: c.token_retention,
            warn_within: c.token_expiry_warning,
            activity_retention: c.activity_retention,
            activity_max_records: c.activity_max_records,
            audit_retention: c.audit_retention,
            feed_retention: c.feed_retention,
        }
    }
}

#[derive(Debug)]
pub struct CleanupReport {
    /// Credentials deleted (tokens and LDAP service accounts alike)...
    pub deleted: usize,
    /// ...of each kind (kinds with none left out).
    pub(crate) deleted_by_kind: Vec<(CredentialKind, usize)>,
    /// Activity records removed (past retention, or over the per-provider cap).
    pub activity_removed: usize,
    /// Audit records removed (past `audit_retention`).
    pub audit_removed: usize,
    /// Active credentials of every kind that expire within `warn_within`, soonest first.
    pub expiring_soon: Vec<Credential>,
}

/// Activity records removed by one write of the cleanup job.
const ACTIVITY_BATCH: usize = 5000;
/// Keys of the search index one purge write looks at.
const PURGE_KEYS: i64 = 20_000;
/// Resources or activity records one step of the search index takes on while the writer is
/// quiet, and the text it writes at most (large documents): 10–30 ms of work, and a commit of
/// up to a few hundred milliseconds once the index is large, which a request that arrives
/// meanwhile waits behind (one step at most: the next waits for quiet again).
const INDEX_BATCH: i64 = 500;
const INDEX_BYTES: usize = 256 * 1024;

/// A step of the search index runs once no write has been asked for this long (the index
/// waits for the writer to be quiet, so it never slows provisioning)...
const INDEX_QUIET: Duration = Duration::from_millis(100);
/// ...or once no step has run for this long, so the index moves on under a load that never
/// pauses; such a step is smaller, since requests' writes are waiting behind it: a full one
/// held the writer for over 100 ms once the index was large (SQLite's FTS5 merges its
/// segments as it writes), which showed as the p99 of creates and PATCHes.
const INDEX_STARVED: Duration = Duration::from_secs(1);
const STARVED_BATCH: i64 = 25;
const STARVED_BYTES: usize = 8 * 1024;

/// Keeps the console's search index (`text_index`) up with the resources: whenever the writer
/// is quiet, the resources and changes since its last step, a step at a time, each its own
/// short write. The index is never on a request's path: a search reads what the job has not
/// reached from the resources themselves.
pub(crate) async fn text_index_loop(store: Store, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_step = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        while !*stop.borrow() {
            let quiet = store.quiet_for() >= INDEX_QUIET;
            if !quiet && last_step.elapsed() < INDEX_STARVED {
                break;
            }
            last_step = std::time::Instant::now();
            let (batch, bytes) = if quiet {
                (INDEX_BATCH, INDEX_BYTES)
            } else {
                (STARVED_BATCH, STARVED_BYTES)
            };
            match store
                .write_in_background(move |c| text_index::step(c, batch, bytes))
                .await
            {
                // A backlog is worked through at half the writer's time at most: as long a
                // pause after each step as the step took, so another process that wants to
                // write (a command such as `scimd feed add`) finds the database free well
                // within its busy timeout instead of meeting one step after another.
                Ok(true) => {
                    let took = last_step.elapsed().max(Duration::from_millis(10));
                    tokio::select! {
                        // The stop is seen here, not by the outer loop: end now.
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(took) => {}
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "updating the search index failed; will retry");
                    break;
                }
            }
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One cleanup pass at time `now` (unix seconds); the caller supplies the clock. The deletion
/// runs on the store's writer like every other change; blocks the calling thread.
pub fn cleanup_once(
    store: &Store,
    now: i64,
    policy: CleanupPolicy,
) -> store::Result<CleanupReport> {
    let cutoff = now.saturating_sub(secs(policy.retention));
    let deleted_by_kind = store.write_blocking(move |c| credentials::delete_stale(c, cutoff))?;
    let until = now.saturating_add(secs(policy.warn_within));
    let expiring_soon = store.call(move |c| credentials::expiring(c, now, until))?;
    // Old activity goes in batches, each its own short write, so requests are never held long.
    let before_ms = now
        .saturating_sub(secs(policy.activity_retention))
        .saturating_mul(1000);
    let keep = i64::from(policy.activity_max_records);
    let mut activity_removed = 0;
    loop {
        let n =
            store.write_blocking(move |c| activity::prune(c, before_ms, keep, ACTIVITY_BATCH))?;
        activity_removed += n;
        if n < ACTIVITY_BATCH {
            break;
        }
    }
    let before_ms = now
        .saturating_sub(secs(policy.audit_retention))
        .saturating_mul(1000);
    let mut audit_removed = 0;
    loop {
        let n = store.write_blocking(move |c| audit::prune(c, before_ms, ACTIVITY_BATCH))?;
        audit_removed += n;
        if n < ACTIVITY_BATCH {
            break;
        }
    }
    let before_ms = now
        .saturating_sub(secs(policy.feed_retention))
        .saturating_mul(1000);
    loop {
        let n = store.write_blocking(move |c| {
            crate::store::feeds::prune(c, before_ms, ACTIVITY_BATCH as i64)
        })?;
        if n < ACTIVITY_BATCH {
            break;
        }
    }
    // The search index's rows of deleted resources, a range of keys per write.
    let last = store.call(|c| text_index::last_key(c))?;
    let mut from: i64 = 0;
    while from <= last {
        let to = from.saturating_add(PURGE_KEYS);
        store.write_blocking(move |c| text_index::purge(c, from, to))?;
        from = to;
    }
    Ok(CleanupReport {
        deleted: deleted_by_kind.iter().map(|(_, n)| n).sum(),
        deleted_by_kind,
        activity_removed,
        audit_removed,
        expiring_soon,
    })
}

/// Runs `cleanup_once` at start and then every `cleanup_interval` until `stop` turns true;
/// each run also logs the non-standard request shapes accepted so far.
pub(crate) async fn cleanup_loop(
    state: std::sync::Arc<crate::app::AppState>,
    mut stop: watch::Receiver<bool>,
) {
    let (store, config) = (state.store.clone(), &state.config);
    let policy = CleanupPolicy::from(config);
    let sessions = crate::store::admins::Lifetimes {
        idle: secs(config.admin_session_idle),
        absolute: secs(config.admin_session_lifetime),
    };
    let mut tick = tokio::time::interval(config.cleanup_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let now = Utc::now().timestamp();
        let pass = store.clone();
        let ended = store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || {
            ended.write_blocking(move |c| {
                crate::store::admins::delete_expired_sessions(c, now, sessions)?;
                crate::store::sign_in::delete_expired_sessions(c, now, sessions).map(|_| ())
            })
        })
        .await
        .unwrap_or_else(|e| Err(crate::store::Error::Internal(e.to_string())))
        {
            tracing::warn!(error = %e, "removing ended admin console sessions failed; will retry");
        }
        match tokio::task::spawn_blocking(move || cleanup_once(&pass, now, policy)).await {
            Ok(Ok(report)) => log_report(&report, now),
            Ok(Err(e)) => tracing::warn!(error = %e, "token cleanup failed; will retry"),
            Err(e) => tracing::error!(error = %e, "token cleanup stopped unexpectedly; will retry"),
        }
        state.counters.log_quirk_totals();
    }
}

fn log_report(report: &CleanupReport, now: i64) {
    for (kind, n) in &report.deleted_by_kind {
        tracing::info!(deleted = n, "deleted expired and revoked {}", kind.plural());
    }
    if report.activity_removed > 0 {
        tracing::info!(
            removed = report.activity_removed,
            "removed activity records past activity_retention or activity_max_records"
        );
    }
    if report.audit_removed > 0 {
        tracing::info!(
            removed = report.audit_removed,
            "removed audit records past audit_retention"
        );
    }
    // A trial's token is made to expire in a day: quickstart said so as it printed it.
    let warned = report.expiring_soon.iter().filter(|k| {
        !(k.kind == CredentialKind::Token && k.description == credentials::TRIAL_TOKEN)
    });
    for k in warned {
        let days = (k.expires - now) as f64 / 86_400.0;
        let when =
            DateTime::from_timestamp(k.expires, 0).map_or_else(String::new, |d| d.to_rfc3339());
        match k.kind {
            CredentialKind::Token => tracing::warn!(
                token = %k.id,
                provider = %k.provider,
                expires = %when,
                "token expires in {days:.1} days: provisioning with it will stop then; \
                 replace it with `scimd token rotate {}`",
                k.id
            ),
            CredentialKind::LdapAccount => tracing::warn!(
                account = %k.id,
                provider = %k.provider,
                name = %k.name,
                expires = %when,
                "LDAP service account expires in {days:.1} days: applications binding with \
                 it will stop then; give them a new one (`scimd ldap account add`), then \
                 revoke this one"
            ),
            CredentialKind::AppPassword => tracing::warn!(
                password = %k.id,
                provider = %k.provider,
                description = %k.description,
                expires = %when,
                "application password expires in {days:.1} days: its user makes a new one \
                 on the console's /me page"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ProviderKind;
    use crate::store::tokens::{self, NewTokenRow};
    use crate::store::{ldap_accounts, providers};

    const DAY: i64 = 86_400;

    #[test]
    fn deletes_after_retention_and_reports_soon_expiring() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("t.db"),
            store::OpenMode::CreateIfMissing,
            Duration::from_secs(1),
            1,
        )
        .unwrap();
        let pooled = store.call(|c| Ok(c.path().map(str::to_string))).unwrap();
        let c = rusqlite::Connection::open(pooled.unwrap()).unwrap();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        for (id, expires) in [
            ("old", 10 * DAY),
            ("recent", 95 * DAY),
            ("soon", 105 * DAY),
            ("later", 200 * DAY),
        ] {
            tokens::insert(
                &c,
                &NewTokenRow {
                    id,
                    provider_id: p.id,
                    secret_hash: "h",
                    fingerprint: None,
                    description: "",
                    read_only: false,
                    created: 0,
                    expires,
                },
            )
            .unwrap();
        }
        let policy = CleanupPolicy {
            retention: Duration::from_secs(30 * 86_400),
            warn_within: Duration::from_secs(14 * 86_400),
            activity_retention: Duration::from_secs(30 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
            feed_retention: Duration::from_secs(7 * 86_400),
            activity_max_records: 1_000_000,
        };
        for (id, name, expires) in [("a-old", "old", 10 * DAY), ("a-soon", "soon", 105 * DAY)] {
            ldap_accounts::add(
                &c,
                &ldap_accounts::NewAccount {
                    id,
                    provider: "p",
                    name,
                    secret_hash: "h",
                    fingerprint: None,
                    created: 0,
                    expires,
                },
            )
            .unwrap();
        }
        let report = cleanup_once(&store, 100 * DAY, policy).unwrap();
        // LDAP service accounts follow the same rules as tokens: one purge, one warning list.
        assert_eq!(report.deleted, 2);
        assert_eq!(
            report.deleted_by_kind,
            [(CredentialKind::Token, 1), (CredentialKind::LdapAccount, 1)]
        );
        let soon: Vec<_> = report
            .expiring_soon
            .iter()
            .map(|k| (k.id.as_str(), k.kind))
            .collect();
        assert_eq!(
            soon,
            [
                ("a-soon", CredentialKind::LdapAccount),
                ("soon", CredentialKind::Token)
            ]
        );
        let left: Vec<_> = tokens::list(&c, None)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert!(left.contains(&"recent".to_string()) && !left.contains(&"old".to_string()));
    }
}
