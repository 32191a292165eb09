//! The application core: what every front door (the SCIM API in `http`, the admin console,
//! the LDAP directory, the command line) stands on. `AppState` holds the store, the token
//! verifier, the configuration, the providers' schema models and the counters; the use cases
//! live in this module's files (`caller`: who a SCIM request is and whether it may go on;
//! `credentials`: token expiry, creation and rotation; `counters`: what is counted between
//! flushes). The core imports no front door.

pub(crate) mod admin;
pub(crate) mod caller;
pub(crate) mod counters;
pub(crate) mod credentials;
pub(crate) mod directory;
#[cfg(debug_assertions)]
pub(crate) mod faults;
pub(crate) mod feeds;
pub(crate) mod lists;
pub(crate) mod providers;
pub(crate) mod resources;
pub(crate) mod sign_in;
mod tally;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) use caller::{Principal, RecordCache};
pub(crate) use counters::Counters;

use crate::auth::Verifier;
use crate::config::Config;
use crate::error::Error;
use crate::render::Computed;
use crate::scim::projection::Projection;
use crate::scim::schema::{Model, ResourceType};
use crate::store::{self, Store};

/// Providers' models kept at once; the bound only stops a pathological number of providers
/// from growing memory.
const MODEL_CAPACITY: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The core, shared by every front door (behind an `Arc`).
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) verifier: Verifier,
    /// Scheme, host and prefix clients reach this server at, without a trailing slash.
    pub(crate) public_base: String,
    pub(crate) config: Config,
    /// Token rows as last read (see `caller::RecordCache`).
    pub(crate) records: RecordCache,
    /// The schema model every provider has until it registers extensions of its own.
    pub(crate) builtin_model: Arc<Model>,
    /// Providers' own models, by provider id (see `model`).
    models: Mutex<HashMap<i64, Arc<Model>>>,
    /// Providers' LDAP settings, by provider id (see `ldap_settings_at`).
    ldap_settings: Mutex<HashMap<i64, Arc<directory::LdapSettings>>>,
    /// What is counted between flushes.
    pub(crate) counters: Counters,
    /// Providers' changes and errors per settled hour (see `activity::HourCounts`).
    pub(crate) hour_counts: crate::store::activity::HourCounts,
    /// Set when the server begins to stop: requests that wait (a feed's long poll) answer now.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// The core over an open store, for a server reached at `public_base`.
    pub(crate) fn new(config: Config, store: Store, public_base: String) -> AppState {
        let argon2_slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            store,
            verifier: Verifier::new(argon2_slots),
            public_base,
            config,
            records: RecordCache::default(),
            builtin_model: Arc::new(Model::builtin().clone()),
            models: Mutex::default(),
            ldap_settings: Mutex::default(),
            counters: Counters::default(),
            hour_counts: Default::default(),
            stopping: Default::default(),
        }
    }

    /// Database reads on the pool for an authenticated request: the token is read again on the
    /// same connection first (`Principal::recheck`), so one pool hop both authorizes and reads.
    pub(crate) async fn read<T, E, F>(&self, principal: &Principal, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Into<Error> + Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    {
        let p = principal.clone();
        let res = self
            .store
            .run(move |c| -> Result<T, Error> {
                #[cfg(debug_assertions)]
                faults::before_read(p.fault);
                // The token and what the request reads: one snapshot, the file locked once.
                store::Snapshot::enter(c)?;
                let out = p.recheck(c, false).and_then(|()| f(c).map_err(Into::into));
                store::Snapshot::leave(c);
                out
            })
            .await;
        self.forget_if_refused(principal, res)
    }

    /// A write for an authenticated request, in the single writer's transaction; the token is
    /// read again inside that transaction first.
    pub(crate) async fn write<T, E, F>(&self, principal: &Principal, mut f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Into<Error> + Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, E> + Send + 'static,
    {
        let p = principal.clone();
        let res = self
            .store
            .write(move |c| -> Result<T, Error> {
                p.recheck(c, true)?;
                let out = f(c).map_err(Into::into);
                #[cfg(debug_assertions)]
                faults::after_write(p.fault);
                out
            })
            .await;
        self.forget_if_refused(principal, res)
    }

    fn forget_if_refused<T>(
        &self,
        principal: &Principal,
        res: Result<T, Error>,
    ) -> Result<T, Error> {
        // (A stale record is dropped by `require_token` once the request is answered.)
        if matches!(res, Err(Error::Unauthorized(_))) {
            self.records.forget(&principal.token_id);
        }
        res
    }

    /// The schema model of the request's identity provider: the built-in one until the
    /// provider registers an extension or changes its unknown-attribute policy; otherwise the
    /// one built from the database for the version the token's record carries, kept until the
    /// version changes.
    pub(crate) async fn model(&self, principal: &Principal) -> Result<Arc<Model>, Error> {
        let model = self.find_model(principal).await?;
        principal.used_model(model.version());
        Ok(model)
    }

    async fn find_model(&self, principal: &Principal) -> Result<Arc<Model>, Error> {
        if principal.model_version == 0 {
            return Ok(self.builtin_model.clone());
        }
        let pid = principal.provider_id;
        if let Some(m) = lock(&self.models).get(&pid)
            && m.version() >= principal.model_version
        {
            return Ok(m.clone());
        }
        self.load_model(pid).await
    }

    /// `model`, made sure to know each schema URN the request names (keys of its body, PATCH
    /// paths) when the database does: a URN the model does not know costs one read of the
    /// provider's model version, so a schema registered while serving counts from the very
    /// next request that uses it.
    pub(crate) async fn model_knowing<'u>(
        &self,
        principal: &Principal,
        mut urns: impl Iterator<Item = &'u str>,
    ) -> Result<Arc<Model>, Error> {
        let model = self.model(principal).await?;
        if urns.all(|u| model.knows(u)) {
            return Ok(model);
        }
        let pid = principal.provider_id;
        let current = self
            .store
            .run(move |c| store::schemas::model_version(c, pid))
            .await?;
        if current == model.version() {
            return Ok(model);
        }
        let model = self.load_model(pid).await?;
        principal.used_model(model.version());
        Ok(model)
    }

    /// A provider's model at `version` (its `model_version`, read by the caller), read on the
    /// connection `c` only when the cache does not hold that version (for work already on a
    /// reader thread, such as LDAP searches).
    pub(crate) fn model_at(
        &self,
        c: &rusqlite::Connection,
        pid: i64,
        version: i64,
    ) -> store::Result<Arc<Model>> {
        if version == 0 {
            return Ok(self.builtin_model.clone());
        }
        if let Some(m) = lock(&self.models).get(&pid)
            && m.version() == version
        {
            return Ok(m.clone());
        }
        let model = Arc::new(store::schemas::model(c, pid)?);
        let mut models = lock(&self.models);
        if models.len() >= MODEL_CAPACITY {
            models.clear();
        }
        models.insert(pid, model.clone());
        Ok(model)
    }

    /// A provider's LDAP mappings and POSIX settings at `version` (`providers.ldap_version`, as
    /// the binding's standing check read it): kept in memory, read again only when changed.
    pub(crate) fn ldap_settings_at(
        &self,
        c: &rusqlite::Connection,
        pid: i64,
        version: i64,
    ) -> store::Result<Arc<directory::LdapSettings>> {
        if let Some(s) = lock(&self.ldap_settings).get(&pid)
            && s.version == version
        {
            return Ok(s.clone());
        }
        let settings = Arc::new(directory::LdapSettings::read(c, pid, version)?);
        let mut all = lock(&self.ldap_settings);
        if all.len() >= MODEL_CAPACITY {
            all.clear();
        }
        all.insert(pid, settings.clone());
        Ok(settings)
    }

    /// Builds a provider's model from the database and keeps it (the newest of any two).
    async fn load_model(&self, pid: i64) -> Result<Arc<Model>, Error> {
        let model = Arc::new(
            self.store
                .run(move |c| store::schemas::model(c, pid))
                .await?,
        );
        let mut models = lock(&self.models);
        if models.len() >= MODEL_CAPACITY {
            models.clear();
        }
        let newest = models
            .entry(pid)
            .and_modify(|m| {
                if m.version() < model.version() {
                    *m = model.clone();
                }
            })
            .or_insert_with(|| model.clone());
        Ok(newest.clone())
    }

    /// The SCIM base URL of one identity provider.
    pub(crate) fn scim_base(&self, provider: &str) -> String {
        scim_base(&self.public_base, provider)
    }
}

/// The SCIM base URL of one identity provider on a server reached at `public_base`.
pub(crate) fn scim_base(public_base: &str, provider: &str) -> String {
    format!("{public_base}/scim/v2/{provider}")
}

/// The computed values (a group's `members`, a user's `groups`) of rows `seqs` when
/// `projection` keeps them: read on `c` by `store`, written by `render`.
pub(crate) fn computed(
    c: &rusqlite::Connection,
    base: &str,
    rt: &ResourceType,
    seqs: &[i64],
    projection: &Projection,
) -> store::Result<Computed> {
    let linked = store::members::linked(c, rt, seqs, projection)?;
    Ok(crate::render::computed(base, rt, &linked))
}

/// Appends `rows` as a SCIM GET shows them, `separator` between them, with their computed
/// values read on `c`.
pub fn push_rows(
    c: &rusqlite::Connection,
    out: &mut Vec<u8>,
    (rt, base): (&ResourceType, &str),
    rows: &[store::rows::Stored<'_>],
    projection: &Projection,
    separator: &[u8],
) -> store::Result<()> {
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let computed = computed(c, base, rt, &seqs, projection)?;
    crate::render::push_rows_separated(out, rt, base, rows, &computed, projection, separator)
}
