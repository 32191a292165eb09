//! SQLite storage: the connection pool, embedded migrations, and the way async code reaches it.

pub(crate) mod activity;
pub(crate) mod admins;
pub(crate) mod audit;
pub(crate) mod credentials;
pub(crate) mod feeds;
pub(crate) mod ldap_accounts;
pub(crate) mod maintenance;
pub(crate) mod members;
pub(crate) mod providers;
pub(crate) mod query;
pub(crate) mod resources;
pub(crate) mod rows;
pub(crate) mod schemas;
pub(crate) mod search;
pub(crate) mod sign_in;
pub(crate) mod text_index;
pub(crate) mod tokens;
pub(crate) mod writer;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite_migration::{M, Migrations};

/// What a store operation can fail with. The first variants are outcomes of the domain (the
/// HTTP layer maps each to its status); `Busy` and `Unavailable` are conditions a client may
/// retry; `Internal` is everything else (SQLite, the pool, a panicking job, a value that
/// cannot be serialized): its text is logged, never sent to a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource, provider or token named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A value that must be unique is taken.
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule only the stored data can check (an unknown member, a cycle).
    #[error("{0}")]
    Invalid(String),
    /// A request that violates a SCIM rule, found while applying it to the stored resource.
    #[error(transparent)]
    Rejected(#[from] crate::scim::Error),
    /// The version the client expects (If-Match) is not the stored one.
    #[error("{0}")]
    VersionMismatch(String),
    /// Another process holds the database's write lock longer than `busy_timeout`.
    #[error("{0}")]
    Busy(String),
    /// The database cannot take writes: the writer is gone, the file is read-only, or it was
    /// removed or replaced while serving.
    #[error("{0}")]
    Unavailable(String),
    /// The disk holding the database is full.
    #[error("{0}")]
    Full(String),
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::DatabaseBusy | C::DatabaseLocked => {
                    Error::Busy(format!("the database is locked by another process: {e}"))
                }
                C::DiskFull => Error::Full(format!("the disk is full: {e}")),
                C::ReadOnly | C::PermissionDenied => {
                    Error::Unavailable(format!("the database file cannot be written: {e}"))
                }
                _ => Error::Internal(format!("database error: {e}")),
            },
            _ => Error::Internal(format!("database error: {e}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Error {
        Error::Internal(format!("no database connection available: {e}"))
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The schema history, oldest first. Never edit a shipped migration; append the next one.
/// Records the public URL a server serves under (see `served_url`).
pub(crate) fn set_served_url(c: &Connection, url: &str) -> Result<()> {
    c.execute(
        "INSERT INTO server_state (key, value) VALUES ('public_url', ?1)
         ON CONFLICT DO UPDATE SET value = excluded.value",
        [url],
    )?;
    Ok(())
}

/// The public URL the last server to start on the database at `path` served under, if any;
/// read without opening the store (a command that only prints a URL).
pub(crate) fn served_url(path: &std::path::Path) -> Option<String> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.query_row(
        "SELECT value FROM server_state WHERE key = 'public_url'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// The schema version the newest migration leaves (`PRAGMA user_version`).
pub(crate) fn latest_schema_version() -> i64 {
    migrations().len() as i64
}

fn migrations() -> Vec<M<'static>> {
    vec![
        M::up(include_str!("migrations/0001_init.sql")),
        M::up_with_hook(
            include_str!("migrations/0002_value_index.sql"),
            |tx: &rusqlite::Transaction<'_>| -> rusqlite_migration::HookResult {
                resources::reindex_all(tx)
                    .map_err(|e| rusqlite_migration::HookError::Hook(e.to_string()))
            },
        ),
        M::up(include_str!("migrations/0003_member_display.sql")),
        M::up(include_str!("migrations/0004_resource_counts.sql")),
        M::up(include_str!("migrations/0005_resource_blocks.sql")),
        M::up(include_str!("migrations/0006_insert_counts_in_code.sql")),
        M::up(include_str!("migrations/0007_extension_schemas.sql")),
        M::up(include_str!("migrations/0008_activity.sql")),
        M::up(include_str!("migrations/0009_server_state.sql")),
        M::up(include_str!("migrations/0010_admin_console.sql")),
        M::up(include_str!("migrations/0011_ldap_accounts.sql")),
        M::up(include_str!("migrations/0012_credentials.sql")),
        M::up(include_str!("migrations/0013_scim_passwords.sql")),
        M::up(include_str!("migrations/0014_audit.sql")),
        M::up(include_str!("migrations/0015_posix.sql")),
        M::up(include_str!("migrations/0016_group_mappings.sql")),
        M::up(include_str!("migrations/0017_ldap_version.sql")),
        M::up(include_str!("migrations/0018_fingerprints.sql")),
        M::up(include_str!("migrations/0019_sign_in.sql")),
        M::up(include_str!("migrations/0020_activity_others.sql")),
        M::up(include_str!("migrations/0021_search_text.sql")),
        M::up(include_str!("migrations/0022_feeds.sql")),
        M::up(include_str!("migrations/0023_feed_sets.sql")),
        M::up(include_str!("migrations/0024_feed_in_activity.sql")),
    ]
}

/// Whether `Store::open` may create a missing database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    /// For commands that work on a database the server already uses.
    MustExist,
    /// For `serve`: a missing file is refused with what to do about it, never replaced by an
    /// empty database.
    MustExistToServe,
}

#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    writer: writer::Writer,
    readers: crossbeam_channel::Sender<ReadJob>,
    /// Reader threads still running.
    readers_alive: Arc<AtomicUsize>,
    /// How long a write batch or a health probe read may take before `/healthz` calls it stuck.
    stuck_after: Duration,
    /// The database file as opened, to notice when its path names another file or none.
    file: writer::DatabaseFile,
}

/// What is wrong with the store's threads, part by part; `None` where a part is fine.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) writer: Option<String>,
    pub(crate) readers: Option<String>,
}

impl Health {
    pub(crate) fn is_ok(&self) -> bool {
        self.writer.is_none() && self.readers.is_none()
    }

    /// Whether the threads are there and moving (a restart would not help otherwise): true
    /// while a part is only failing (a full disk, a read-only or removed file).
    pub(crate) fn is_alive(&self) -> bool {
        [&self.writer, &self.readers]
            .iter()
            .all(|p| p.as_deref().is_none_or(|p| p.starts_with("failing")))
    }
}

/// Counts a reader thread as running while held.
struct ReaderAlive(Arc<AtomicUsize>);

impl Drop for ReaderAlive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A read for a reader thread: called with a pooled connection (or why none could be had).
type ReadJob = Box<dyn FnOnce(std::result::Result<&mut Connection, Error>) + Send>;

/// Starts `n` threads that run reads, each on a connection taken from the pool per read, in
/// the order the reads arrive. Handing a read over is a push onto a lock-free queue: with the
/// runtime's blocking pool, the async worker and the blocking threads contended for one mutex
/// on every read (parking_lot spinning with sched_yield on 2 busy CPUs).
fn start_readers(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    n: u32,
    alive: &Arc<AtomicUsize>,
) -> std::io::Result<crossbeam_channel::Sender<ReadJob>> {
    let (jobs, queue) = crossbeam_channel::unbounded::<ReadJob>();
    for i in 0..n.max(1) {
        let (pool, queue) = (pool.clone(), queue.clone());
        alive.fetch_add(1, Ordering::AcqRel);
        let held = ReaderAlive(alive.clone());
        std::thread::Builder::new()
            .name(format!("scimd-read-{i}"))
            .spawn(move || {
                let _held = held;
                while let Ok(job) = queue.recv() {
                    // A panicking read answers its request with an error (its answer channel
                    // is dropped) and leaves the thread serving.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        match pool.get() {
                            Ok(mut conn) => job(Ok(&mut conn)),
                            Err(e) => job(Err(Error::from(e))),
                        }
                    }));
                }
            })?;
    }
    Ok(jobs)
}

impl Store {
    /// Opens (and with `CreateIfMissing` creates, mode 0600) the database file, brings its
    /// schema up to date, and builds the connection pool.
    pub fn open(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
        pool_size: u32,
    ) -> anyhow::Result<Store> {
        Store::open_with(path, mode, busy_timeout, pool_size, false)
    }

    /// `open` for a server: its readers read through a memory map (see `configure`). The
    /// command line's work (an export of every user, say) reads without one, so its memory
    /// stays what it holds itself.
    pub(crate) fn open_to_serve(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
        pool_size: u32,
    ) -> anyhow::Result<Store> {
        Store::open_with(path, mode, busy_timeout, pool_size, true)
    }

    fn open_with(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
        pool_size: u32,
        mapped: bool,
    ) -> anyhow::Result<Store> {
        if !path.exists() {
            match mode {
                OpenMode::MustExist => bail!(
                    "database {} does not exist; pass --database (or set SCIMD_DATABASE) to the \
                     server's database file",
                    path.display()
                ),
                OpenMode::MustExistToServe => bail!(
                    "database {} does not exist, and scimd serve does not create one, so that a \
                     database that was moved or deleted is never replaced by an empty one. If \
                     scimd ran here before, restore the file (or point --database / \
                     SCIMD_DATABASE at it). For a new installation, create it with `scimd \
                     provider add NAME` (or `scimd quickstart`), or start once with `scimd serve \
                     --create`.",
                    path.display()
                ),
                OpenMode::CreateIfMissing => {}
            }
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!(
                        "creating database {}: check that its directory exists and is writable",
                        path.display()
                    )
                })?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        configure(&mut conn, busy_timeout, false)
            .with_context(|| format!("configuring database {}", path.display()))?;
        migrate(&mut conn).with_context(|| format!("database {}", path.display()))?;
        // This connection becomes the single writer's; a second one runs checkpoints.
        let mut checkpoints = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        configure(&mut checkpoints, busy_timeout, false)
            .with_context(|| format!("configuring database {}", path.display()))?;
        let file = writer::DatabaseFile::of(path)
            .with_context(|| format!("reading the metadata of database {}", path.display()))?;
        let writer = writer::Writer::start(conn, checkpoints, Some(file.clone()))
            .context("starting the writer thread")?;

        let manager = SqliteConnectionManager::file(path)
            .with_init(move |c| configure(c, busy_timeout, mapped));
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            // A connection to a local database file does not go stale; r2d2's check ran an
            // empty statement through SQLite's parser on every checkout.
            .test_on_check_out(false)
            .connection_timeout(busy_timeout.max(Duration::from_secs(5)))
            .build(manager)
            .with_context(|| format!("opening connection pool for {}", path.display()))?;
        let readers_alive = Arc::new(AtomicUsize::new(0));
        let readers = start_readers(&pool, pool_size, &readers_alive)
            .context("starting the reader threads")?;
        Ok(Store {
            pool,
            writer,
            readers,
            readers_alive,
            stuck_after: (busy_timeout * 2).max(Duration::from_secs(1)),
            file,
        })
    }

    /// Whether the writer and the reader threads are there and answering: the writer by its own
    /// account (a batch running longer than twice `busy_timeout` is stuck), the readers by a
    /// probe read that must be answered within that time.
    pub(crate) async fn health(&self) -> Health {
        let limit = self.stuck_after;
        let writer = match self.writer.state() {
            _ if !self.file.is_current() => Some(format!(
                "failing: {} (or its -wal file) no longer names the file scimd opened \
                 (removed or replaced); writes are refused: restore the file or restart scimd \
                 on it",
                self.file.path().display()
            )),
            writer::State::Gone => Some("gone: the writer thread has stopped".to_string()),
            writer::State::Failing(kind, since) => Some(format!(
                "failing: {} (for {:.0} s; a write that commits clears this)",
                kind.describe(),
                since.as_secs_f64()
            )),
            writer::State::Running(busy) if busy > limit => Some(format!(
                "stuck: one write batch has been running for {:.1} s",
                busy.as_secs_f64()
            )),
            writer::State::Running(_) => None,
        };
        let readers = if self.readers_alive.load(Ordering::Acquire) == 0 {
            Some("gone: no reader thread is running".to_string())
        } else {
            let probe =
                self.run(|c| -> Result<()> { Ok(c.query_row("SELECT 1", [], |_| Ok(()))?) });
            match tokio::time::timeout(limit, probe).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("failing: {e}")),
                Err(_) => Some(format!(
                    "stuck: a probe read was not answered within {:.1} s",
                    limit.as_secs_f64()
                )),
            }
        };
        Health { writer, readers }
    }

    /// Runs synchronous database work on a reader thread, off the async executor, and returns
    /// its result. Reads wait in one queue, in arrival order, for the next free reader; there
    /// are as many readers as pooled connections, so none waits for a connection.
    /// The closure may return any error a store error converts into (handlers use the HTTP
    /// error type, so validation inside a transaction can fail with a SCIM error).
    pub(crate) async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: ReadJob = Box::new(move |conn| {
            let out = match conn {
                Ok(c) => f(c),
                Err(e) => Err(E::from(e)),
            };
            let _ = answer.send(out);
        });
        self.readers
            .send(job)
            .map_err(|_| E::from(Error::Unavailable("the reader threads have stopped".into())))?;
        answered
            .await
            .map_err(|_| E::from(Error::Internal("a read stopped without an answer".into())))?
    }

    /// Runs a write in the single writer's next group-committed transaction and returns once
    /// it is durable. Do slow work (hashing, JSON) before calling. `f` may run more than once
    /// (see `writer`): it must only touch the database and return its result.
    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + writer::StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// `write` for background work that waits for the writer to be quiet (`quiet_for`) and
    /// must not keep it from being so.
    pub(crate) async fn write_in_background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + writer::StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write_in_background(f).await
    }

    /// How long since a write (not a background one) was last asked for.
    pub(crate) fn quiet_for(&self) -> std::time::Duration {
        self.writer.quiet_for()
    }

    /// `write` for callers without an async runtime (the command-line tools, jobs on a
    /// blocking thread): blocks until the write has committed.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + writer::StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write_blocking(f)
    }

    /// Runs a read on the calling thread (command-line tools, tests). Changes go through
    /// `write` or `write_blocking`, never through this.
    pub fn call<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }
}

/// Most of the database file a reader maps (see `configure`).
const READER_MMAP: i64 = 256 << 20;

/// Configures a connection; `mapped`: one of a server's readers (`Store::open_to_serve`).
fn configure(c: &mut Connection, busy_timeout: Duration, mapped: bool) -> rusqlite::Result<()> {
    c.busy_timeout(busy_timeout)?;
    c.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    // FULL: an acknowledged write survives power loss, also in WAL mode.
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // Readers read pages through a memory map of the file (its first 256 MiB) instead of one
    // pread and one copy each: a point read made 0.85 preads on 10,000 users, when the file no
    // longer fit SQLite's own 2 MB page cache per connection. The map is read-only (SQLite's
    // default). The writer does not map: its scans (activity pruning, reindexing) would show
    // as the process's resident memory. Mapped pages are the kernel's page cache, shared and
    // reclaimable, but they count in RSS: up to READER_MMAP of it is the file.
    if mapped {
        c.pragma_update(None, "mmap_size", READER_MMAP)?;
    }
    // Plans never depend on bound values. Without this, binding a new value to a parameter
    // SQLite looked at while planning (LIMIT ?, OFFSET ?) expires the cached statement, and
    // every page query was compiled again on each use.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // Room for every statement the server prepares (rusqlite keeps 16 by default): a request
    // that met an evicted one parsed and planned its SQL again.
    c.set_prepared_statement_cache_capacity(128);
    // The same case folding as Rust's (full Unicode, unlike SQLite's ASCII-only lower()), so
    // SQL comparisons agree with the name_key and value_index columns written from Rust; and
    // telephone numbers as the LDAP directory's telephoneNumberMatch compares them.
    text_function(c, "scim_fold", crate::scim::fold)?;
    text_function(c, "scim_phone", crate::scim::filter::phone_fold)?;
    Ok(())
}

/// Registers `name(text)` as SQL: `f` of a text value, NULL for anything else.
fn text_function(c: &Connection, name: &str, f: fn(&str) -> String) -> rusqlite::Result<()> {
    c.create_scalar_function(
        name,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => Some(f(&String::from_utf8_lossy(t))),
                _ => None,
            })
        },
    )
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let list = migrations();
    let known = list.len() as i64;
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > known {
        bail!(
            "it was written by a newer scimd (schema version {current}; this scimd knows up to \
             {known}). Run the newer scimd, or restore a backup taken before the upgrade."
        );
    }
    Migrations::new(list)
        .to_latest(conn)
        .context("applying schema migrations")?;
    Ok(())
}

/// A read transaction for a job on a reader thread, begun and rolled back with cached
/// statements (no SQL parsed per job, unlike `Connection::transaction`): every statement in
/// it reads one snapshot, taken once.
pub(crate) struct Snapshot<'c>(&'c Connection);

impl<'c> Snapshot<'c> {
    pub(crate) fn begin(c: &'c Connection) -> Result<Snapshot<'c>> {
        Snapshot::enter(c)?;
        Ok(Snapshot(c))
    }

    /// Begins a read transaction on `c`, for work that needs the connection itself (`&mut`);
    /// `leave` ends it. Besides one snapshot, it takes SQLite's file locks once for all its
    /// statements instead of once per statement.
    pub(crate) fn enter(c: &Connection) -> Result<()> {
        if !c.is_autocommit() {
            // A transaction an earlier job left open (its rollback failed) ends here.
            c.execute_batch("ROLLBACK")?;
        }
        c.prepare_cached("BEGIN")?.execute([])?;
        Ok(())
    }

    /// Ends the read transaction `enter` began (a failure is logged; the next `enter` ends it).
    pub(crate) fn leave(c: &Connection) {
        if let Err(e) = c
            .prepare_cached("ROLLBACK")
            .and_then(|mut st| st.execute([]))
        {
            tracing::warn!(error = %e, "ending a read transaction");
        }
    }
}

impl std::ops::Deref for Snapshot<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.0
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        Snapshot::leave(self.0);
    }
}

/// Most characters of a description (of a provider or a token), whichever door it came through.
pub(crate) const MAX_DESCRIPTION: usize = 500;

/// A description: at most `MAX_DESCRIPTION` characters, no control characters (it is printed
/// in tables, logs and pages).
pub(crate) fn check_description(text: &str) -> std::result::Result<(), String> {
    let n = text.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(format!(
            "the description has {n} characters; at most {MAX_DESCRIPTION} are kept"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(
            "the description may not contain control characters (line breaks, tabs)".into(),
        );
    }
    Ok(())
}

/// A name as an error message quotes it: at most 64 characters of it, so a refusal of a huge
/// name is not itself huge.
pub(crate) fn quoted_name(name: &str) -> String {
    match name.char_indices().nth(64) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &name[..cut], name.chars().count()),
    }
}

/// The schema version this binary writes.
pub(crate) fn schema_version() -> usize {
    migrations().len()
}

#[cfg(test)]
pub(crate) fn test_conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    configure(&mut c, Duration::from_secs(1), false).unwrap();
    migrate(&mut c).unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_read_fails_alone_and_every_reader_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("t.db"),
            OpenMode::CreateIfMissing,
            Duration::from_secs(1),
            2,
        )
        .unwrap();
        for _ in 0..3 {
            let r: Result<i64> = store.run(|_| panic!("a bug in a read")).await;
            assert!(matches!(r, Err(Error::Internal(_))), "{:?}", r.err());
        }
        // More reads at once than readers: all are answered.
        let reads: Vec<_> = (0..8i64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .run(move |c| {
                            Ok::<i64, Error>(c.query_row("SELECT ?1", [i], |r| r.get(0))?)
                        })
                        .await
                })
            })
            .collect();
        for (i, read) in reads.into_iter().enumerate() {
            assert_eq!(read.await.unwrap().unwrap(), i as i64);
        }
    }

    #[test]
    fn migrations_are_valid() {
        assert!(Migrations::new(migrations()).validate().is_ok());
    }

    /// A database in memory migrated up to schema `version` (a migration's test fills it as an
    /// older scimd would have, then migrates it to the latest).
    fn at_version(version: usize) -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        Migrations::new(migrations())
            .to_version(&mut c, version)
            .unwrap();
        c
    }

    /// Version 24 moves the change feed's events onto their changes' activity records: an
    /// event whose record is kept lands on it, one whose record is gone becomes a record
    /// again, and the numbers, the externalIds and the order stay.
    #[test]
    fn feed_events_move_onto_their_activity_records() {
        let mut c = at_version(23);
        c.execute_batch(
            "INSERT INTO providers (id, name, description, kind, created)
                 VALUES (1, 'p', '', 'entra', 0);
             INSERT INTO feed_counters (provider_id, last) VALUES (1, 4);
             INSERT INTO activity (at, provider_id, method, kind, resource_id, action, changed,
                                   version, status)
                 VALUES (20, 1, 'PATCH', 'User', 'u1', 'patched', '[\"title\"]', 2, 200),
                        (30, 1, 'PATCH', 'Group', 'g1', 'member added', '[\"members\"]', 5,
                         200),
                        (31, 1, 'GET', 'User', NULL, 'refused', NULL, NULL, 404);
             INSERT INTO feed_events (provider_id, seq, at, kind, resource_id, external_id, op,
                                      changed, version, method)
                 VALUES (1, 5, 10, 'User', 'u1', 'x1', 'create', '[\"userName\"]', 1, NULL),
                        (1, 6, 20, 'User', 'u1', 'x1', 'patch', '[\"title\"]', 2, NULL),
                        (1, 7, 30, 'Group', 'g1', NULL, 'members', '[\"members\"]', 5,
                         'PATCH');",
        )
        .unwrap();
        Migrations::new(migrations()).to_latest(&mut c).unwrap();
        let events = feeds::events_after(&c, 1, 0, 10).unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.at,
                    e.resource_id.as_str(),
                    e.external_id.as_deref(),
                    e.op.as_str(),
                    e.changed.as_str(),
                    e.version,
                    e.method.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (5, 10, "u1", Some("x1"), "create", "[\"userName\"]", 1, None),
                (6, 20, "u1", Some("x1"), "patch", "[\"title\"]", 2, None),
                (
                    7,
                    30,
                    "g1",
                    None,
                    "members",
                    "[\"members\"]",
                    5,
                    Some("PATCH")
                ),
            ]
        );
        // Two events found their records; the first became one; the refusal is no event.
        let records: i64 = c
            .query_row("SELECT count(*) FROM activity", [], |r| r.get(0))
            .unwrap();
        assert_eq!(records, 4);
        assert_eq!(feeds::last_seq(&c, 1).unwrap(), 7);
        assert_eq!(feeds::first_seq(&c, 1).unwrap(), Some(5));
    }

    /// Version 12 moves tokens and LDAP service accounts into one `credentials` table: every
    /// row and field arrives, and each keeps working as its kind.
    #[test]
    fn tokens_and_ldap_accounts_move_into_one_credentials_table() {
        let mut c = at_version(11);
        c.execute_batch(
            "INSERT INTO providers (id, name, description, kind, created)
                 VALUES (1, 'p', '', 'entra', 0);
             INSERT INTO tokens (id, provider_id, secret_hash, description, read_only, created,
                                 expires, revoked, last_used, replaced_by)
                 VALUES ('t1', 1, 'h1', 'entra', 1, 10, 1000, NULL, 20, 't2'),
                        ('t2', 1, 'h2', '', 0, 11, 2000, 30, NULL, NULL);
             INSERT INTO ldap_accounts (id, provider_id, name, secret_hash, created, expires,
                                        revoked, last_used)
                 VALUES ('a1', 1, 'grafana', 'h3', 12, 3000, NULL, 40);",
        )
        .unwrap();
        Migrations::new(migrations()).to_latest(&mut c).unwrap();
        let t1 = tokens::require(&c, "t1").unwrap();
        assert_eq!(
            (
                t1.description.as_str(),
                t1.read_only,
                t1.created,
                t1.expires,
                t1.last_used,
                t1.replaced_by.as_deref()
            ),
            ("entra", true, 10, 1000, Some(20), Some("t2"))
        );
        assert_eq!(tokens::require(&c, "t2").unwrap().revoked, Some(30));
        assert_eq!(
            tokens::auth_record(&c, "t1").unwrap().unwrap().secret_hash,
            "h1"
        );
        let (a1, hash, _) = ldap_accounts::for_bind(&c, "p", "grafana")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a1.id.as_str(), hash.as_str(), a1.expires, a1.last_used),
            ("a1", "h3", 3000, Some(40))
        );
        // A token is not an account, nor the reverse.
        assert!(ldap_accounts::require(&c, "t1").is_err());
        assert!(tokens::require(&c, "a1").is_err());
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('tokens', 'ldap_accounts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn sqlite_is_built_with_the_options_in_cargo_config() {
        // .cargo/config.toml passes these to the bundled SQLite build; they are measured
        // performance choices, so a build without them should not pass unnoticed.
        let c = Connection::open_in_memory().unwrap();
        let options: Vec<String> = c
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(!options.iter().any(|o| o == "ENABLE_STAT4"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, OpenMode::CreateIfMissing, Duration::from_secs(1), 1).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let err = Store::open(&path, OpenMode::MustExist, Duration::from_secs(1), 1)
            .err()
            .unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains("newer scimd"), "{msg}");
        assert!(msg.contains("99"), "{msg}");
    }

    #[test]
    fn snapshots_see_one_state_and_end_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let reader = Connection::open(&path).unwrap();
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1)",
            )
            .unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        for round in 0..3 {
            let snap = Snapshot::begin(&reader).unwrap();
            assert_eq!(count(&snap), 1 + round);
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
            assert_eq!(count(&snap), 1 + round, "the snapshot does not move");
            drop(snap);
            assert!(reader.is_autocommit());
            assert_eq!(count(&reader), 2 + round);
        }
        // A transaction left open is ended by the next snapshot rather than refusing it.
        reader.execute_batch("BEGIN").unwrap();
        drop(Snapshot::begin(&reader).unwrap());
        assert!(reader.is_autocommit());
    }

    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, OpenMode::CreateIfMissing, Duration::from_secs(1), 1).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_database_is_refused_when_it_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        assert!(Store::open(&path, OpenMode::MustExist, Duration::from_secs(1), 1).is_err());
        assert!(!path.exists());
    }
}
