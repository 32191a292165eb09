//! The one writer: a thread that owns a connection and commits the writes of concurrent
//! requests together (group commit). Every request is answered only after the transaction
//! holding its write has committed (synchronous=FULL: durable when acknowledged), and one
//! failing request never takes back another's write.
//!
//! A batch first runs its requests one after the other with nothing around them. A request
//! that fails before changing anything (a 404, a uniqueness conflict found by a SELECT, a
//! constraint that stopped its statement) leaves the transaction as it was, so the batch goes
//! on. Only a request that fails after it changed rows makes the writer roll the batch back
//! and run it again with each request in its own SAVEPOINT, so that one rolls back alone. A
//! savepoint around every request would make SQLite copy each page a request touches into a
//! statement journal first; failures after a change are rare, so most batches never pay it.
//!
//! Several writers sharing the pool would contend for SQLite's write lock and back off with
//! sleeps; one writer batching whatever is queued keeps latency flat and throughput high.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Error;

/// Writes sent to the writer and not yet taken into a batch (for the queue-depth gauge).
static QUEUED: AtomicI64 = AtomicI64::new(0);

/// Why a batch did not commit.
#[derive(Clone)]
struct Failed {
    kind: Failure,
    /// What happened, with SQLite's reason where there is one (for the log; never sent).
    message: String,
}

/// An error a write may end with, saying whether the database itself failed it (a full disk,
/// a file that cannot be written): `/healthz` reports those, and they are logged by the writer
/// at most once a minute instead of once per request.
pub trait StorageFailure {
    fn storage_failure(&self) -> Option<Failure>;
}

impl StorageFailure for Error {
    fn storage_failure(&self) -> Option<Failure> {
        match self {
            Error::Full(_) => Some(Failure::Full),
            Error::Unavailable(_) => Some(Failure::ReadOnly),
            _ => None,
        }
    }
}

/// The kinds of commit failure a client is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Another process held the write lock longer than `busy_timeout`.
    Busy,
    /// The disk (or the database's size limit) is full.
    Full,
    /// The database file cannot be written (permissions, a read-only mount).
    ReadOnly,
    /// The path no longer names the file scimd opened: it was removed or replaced.
    Replaced,
    /// Anything else.
    Other,
}

impl Failure {
    fn of(e: &rusqlite::Error) -> Failure {
        use rusqlite::ErrorCode as C;
        match e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::DatabaseBusy | C::DatabaseLocked => Failure::Busy,
                C::DiskFull => Failure::Full,
                C::ReadOnly | C::PermissionDenied => Failure::ReadOnly,
                _ => Failure::Other,
            },
            _ => Failure::Other,
        }
    }

    /// What a waiting request is answered with.
    fn error(self, message: String) -> Error {
        match self {
            Failure::Busy => Error::Busy(message),
            Failure::Full => Error::Full(message),
            Failure::ReadOnly | Failure::Replaced => Error::Unavailable(message),
            Failure::Other => Error::Internal(message),
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::Busy => "the database is locked by another process",
            Failure::Full => "the disk is full",
            Failure::ReadOnly => "the database file cannot be written",
            Failure::Replaced => "the database file was removed or replaced while serving",
            Failure::Other => "the write could not be committed",
        }
    }
}

/// One request's write, queued for the writer thread. The work can run more than once (a
/// batch that has to start over runs it again); only the last run's result is answered.
trait Job: Send {
    /// Runs the work on `conn`, in its own savepoint when `alone`; true when it succeeded.
    fn run(&mut self, conn: &Connection, alone: bool) -> bool;
    /// How the database failed the last run, if it did (a full disk met by a statement).
    fn failure(&self) -> Option<Failure>;
    /// Answers the request with its result, or with why its transaction did not commit.
    fn finish(self: Box<Self>, commit: Result<(), Failed>);
}

struct Task<F, T, E> {
    work: F,
    result: Option<Result<T, E>>,
    answer: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Task<F, T, E>
where
    T: Send,
    E: From<Error> + StorageFailure + Send,
    F: FnMut(&Connection) -> Result<T, E> + Send,
{
    fn failure(&self) -> Option<Failure> {
        match &self.result {
            Some(Err(e)) => e.storage_failure(),
            _ => None,
        }
    }

    fn run(&mut self, conn: &Connection, alone: bool) -> bool {
        let work = &mut self.work;
        let result = if alone {
            in_savepoint(conn, |c| guarded(|| work(c)))
        } else {
            guarded(|| work(conn))
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), Failed>) {
        let out = match (commit, self.result) {
            (Ok(()), Some(r)) => r,
            (Err(f), _) => Err(E::from(f.kind.error(f.message))),
            (Ok(()), None) => Err(E::from(Error::Internal("write did not run".into()))),
        };
        let _ = self.answer.send(out);
    }
}

type Queued = Box<dyn Job>;

/// Most writes committed together in one transaction.
const MAX_BATCH: usize = 256;

/// WAL pages after which the checkpointer thread copies them into the database file, off the
/// writer's path.
const CHECKPOINT_PAGES: i64 = 500;

/// WAL pages at which the writer runs a checkpoint itself. Under a steady stream of commits a
/// checkpoint on another connection never catches up with the end of the WAL, and SQLite
/// starts the WAL over only when one has; the writer's own checkpoint, between transactions,
/// finishes the few pages the checkpointer has not copied yet, so the WAL stays near this size
/// (about 8 MB) instead of growing.
const WRITER_CHECKPOINT_PAGES: c_int = 2000;

/// Pages in the WAL after the writer's last commit, as SQLite's WAL hook reports them. One per
/// process: a Store is opened once per server, and the value only decides when to checkpoint.
static WAL_PAGES: AtomicI64 = AtomicI64::new(0);

/// The writer connection's WAL hook (it replaces SQLite's auto-checkpoint).
fn after_commit(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.store(i64::from(pages), Ordering::Relaxed);
    // The transaction has committed whatever happens here: an error returned from this hook
    // would make the commit look failed, so a checkpoint that cannot run (the checkpointer is
    // in the middle of one) is left to the next commit.
    if pages >= WRITER_CHECKPOINT_PAGES
        && let Err(e) = wal.checkpoint()
    {
        tracing::debug!(error = %e, "writer checkpoint did not run");
    }
    Ok(())
}

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Queued>,
    health: Arc<Health>,
}

/// What the writer thread says about itself, for `/healthz`.
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` (plus one) when the batch now running started; 0 when idle.
    busy_since: AtomicU64,
    /// Milliseconds since `epoch` when a write other than a background one was last asked for
    /// or last answered.
    last_asked: AtomicU64,
    /// Writes other than background ones asked for and not yet answered.
    in_flight: AtomicU64,
    alive: AtomicBool,
    /// Why batches fail to commit (not counting a busy lock) and since when; cleared by the
    /// next commit.
    failing: std::sync::Mutex<Option<(Failure, Instant)>>,
}

impl Health {
    fn asked(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_asked.store(now, Ordering::Release);
    }

    /// Counts a write asked for until the guard is dropped (answered, or its request gone).
    fn asking(self: &Arc<Self>) -> Asking {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.asked();
        Asking(self.clone())
    }
}

/// A write asked for and not yet answered: the writer is not quiet while one is (a commit that
/// stalls on the disk holds every client, so that none asks for more, but it is no lull).
struct Asking(Arc<Health>);

impl Drop for Asking {
    fn drop(&mut self) {
        self.0.asked();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The file the writer was opened on: its path, and the device and inode it named then; the
/// same of its write-ahead log (`-wal`), which holds every commit not yet checkpointed.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseFile {
    path: std::path::PathBuf,
    id: (u64, u64),
    wal: Option<(std::path::PathBuf, (u64, u64))>,
}

/// The device and inode `path` names now.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl DatabaseFile {
    /// The file at `path` and its `-wal` (open connections in WAL mode keep it in place).
    pub(crate) fn of(path: &std::path::Path) -> std::io::Result<DatabaseFile> {
        let id =
            identity(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        Ok(DatabaseFile {
            path: path.to_path_buf(),
            id,
            wal: identity(&wal).map(|w| (wal, w)),
        })
    }

    /// Whether the path still names the file that was opened, and its `-wal` the log that was.
    /// Writes to a removed file (an operator cleaning up) or to a replaced one (a restore done
    /// wrong) would be lost to the next start; so would every commit in a removed `-wal`.
    pub(crate) fn is_current(&self) -> bool {
        identity(&self.path) == Some(self.id)
            && self
                .wal
                .as_ref()
                .is_none_or(|(path, id)| identity(path) == Some(*id))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether the database file is still in place while its `-wal` is not: the commits in the
    /// removed log can still be copied into the file (the writer holds the log open).
    fn only_wal_gone(&self) -> bool {
        identity(&self.path) == Some(self.id) && !self.is_current()
    }
}

/// The writer's state as `/healthz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for work, or running a batch that started this long ago.
    Running(Duration),
    /// Batches have failed to commit for this long, for this reason.
    Failing(Failure, Duration),
    /// The thread has ended: no write can be made.
    Gone,
}

/// Marks the writer gone when its thread ends, also by a panic that escaped every guard.
struct AliveWhileHeld(Arc<Health>);

impl Drop for AliveWhileHeld {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        if std::thread::panicking() {
            tracing::error!("the writer thread stopped: writes fail until scimd is restarted");
        }
    }
}

impl Health {
    fn start_batch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.busy_since.store(ms + 1, Ordering::Release);
    }

    fn end_batch(&self) {
        self.busy_since.store(0, Ordering::Release);
    }

    /// Records how a batch ended. A failure is logged with its reason when it starts and then
    /// at most once a minute while it lasts (a disk-full flood must not fill the log too).
    fn record(&self, outcome: Option<&Failed>, last_logged: &mut Option<(Failure, Instant)>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = outcome else {
            if let Some((kind, since)) = failing.take() {
                tracing::warn!(
                    failure = kind.describe(),
                    lasted_s = since.elapsed().as_secs(),
                    "writes commit again"
                );
            }
            *last_logged = None;
            return;
        };
        if f.kind != Failure::Busy && failing.is_none_or(|(k, _)| k != f.kind) {
            *failing = Some((f.kind, Instant::now()));
        }
        let due = last_logged.is_none_or(|(k, at)| k != f.kind || at.elapsed() >= LOG_EVERY);
        if due {
            tracing::error!(
                failure = f.kind.describe(),
                cause = %f.message,
                "a write batch did not commit; it is rolled back (logged at most once a minute)"
            );
            *last_logged = Some((f.kind, Instant::now()));
        }
    }
}

/// How often a lasting commit failure is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Writer {
    /// Starts the writer thread on `conn`, and the checkpointer thread on `checkpoints` (a
    /// second connection to the same database).
    pub(crate) fn start(
        conn: Connection,
        checkpoints: Connection,
        file: Option<DatabaseFile>,
    ) -> std::io::Result<Writer> {
        conn.wal_hook(Some(after_commit));
        // A SAVEPOINT (and a statement that may fail halfway) keeps the original of every page
        // it changes in a statement journal; in memory that is a copy, on disk (SQLite's
        // default) a write to a temp file.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(std::io::Error::other)?;
        let (jobs, queue) = mpsc::channel::<Queued>();
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let health = Arc::new(Health {
            epoch: Instant::now(),
            busy_since: AtomicU64::new(0),
            last_asked: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            alive: AtomicBool::new(true),
            failing: std::sync::Mutex::new(None),
        });
        std::thread::Builder::new()
            .name("scimd-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, commits))?;
        let alive = AliveWhileHeld(health.clone());
        std::thread::Builder::new()
            .name("scimd-writer".into())
            .spawn(move || {
                super::feeds::cache_numbers();
                run(conn, queue, committed, alive, file)
            })?;
        Ok(Writer { jobs, health })
    }

    /// Whether the writer thread is there, and how long its current batch has been running.
    pub(crate) fn state(&self) -> State {
        if !self.health.alive.load(Ordering::Acquire) {
            return State::Gone;
        }
        let failing = *self
            .health
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((kind, since)) = failing {
            return State::Failing(kind, since.elapsed());
        }
        match self.health.busy_since.load(Ordering::Acquire) {
            0 => State::Running(Duration::ZERO),
            since => {
                let now =
                    u64::try_from(self.health.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                State::Running(Duration::from_millis(now.saturating_sub(since - 1)))
            }
        }
    }

    /// Runs `f` in the next group-committed transaction and returns its result once that
    /// transaction has committed. `f` may run more than once (when its batch starts over after
    /// another request failed); it must do nothing but database work and return its result,
    /// and change the database only through INSERT, UPDATE and DELETE (SQLite counts the rows
    /// those change, which is how a failure that changed nothing is told apart). A panic in
    /// `f` answers this request with `Error::Internal` and leaves the writer serving.
    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        let _asking = self.health.asking();
        self.write_in_background(f).await
    }

    /// `write` for work that waits for quiet (`quiet_for`) rather than making it: it does not
    /// count as a write asked for.
    pub(crate) async fn write_in_background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f)?
            .await
            .map_err(|_| E::from(Error::Internal("the writer dropped a request".into())))?
    }

    /// How long since a write other than a background one was last asked for or answered;
    /// zero while one waits for its answer.
    pub(crate) fn quiet_for(&self) -> Duration {
        if self.health.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = self.health.last_asked.load(Ordering::Acquire);
        let now = u64::try_from(self.health.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(last))
    }

    /// `write` for callers without an async runtime (the command-line tools): blocks the
    /// calling thread until the write has committed.
    pub(crate) fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        let _asking = self.health.asking();
        self.submit(f)?
            .blocking_recv()
            .map_err(|_| E::from(Error::Internal("the writer dropped a request".into())))?
    }

    fn submit<T, E, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T, E>>, E>
    where
        T: Send + 'static,
        E: From<Error> + StorageFailure + Send + 'static,
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, E>>();
        let job: Queued = Box::new(Task {
            work: f,
            result: None,
            answer,
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(Error::Unavailable("the writer has stopped".into())))?;
        QUEUED.fetch_add(1, Ordering::AcqRel);
        Ok(answered)
    }
}

/// Runs one statement without parameters through the statement cache (no parsing per call).
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs one job's work, turning a panic (a bug) into an internal error for that request alone:
/// the writer thread and the other requests of the batch go on. The panic's message is logged.
fn guarded<T, E: From<Error>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic_text(panic.as_ref());
            tracing::error!(panic = %what, "a write panicked; its request is answered with an internal error");
            Err(E::from(Error::Internal(format!(
                "a write panicked: {what}"
            ))))
        }
    }
}

/// The message a panic carries, when it is text.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

fn in_savepoint<T, E: From<Error>>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    exec(c, "SAVEPOINT request").map_err(|e| E::from(e.into()))?;
    let r = f(c);
    if r.is_err() {
        super::feeds::forget_numbers();
        exec(c, "ROLLBACK TO request").map_err(|e| E::from(e.into()))?;
    }
    exec(c, "RELEASE request").map_err(|e| E::from(e.into()))?;
    r
}

/// Copies committed WAL pages into the database file off the writer's path. A PASSIVE
/// checkpoint never blocks the writer or readers; durability does not depend on it (a commit
/// is durable once its WAL frames are synced).
fn checkpointer(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint did not run");
        }
    }
}

fn run(
    conn: Connection,
    queue: mpsc::Receiver<Queued>,
    committed: mpsc::SyncSender<()>,
    alive: AliveWhileHeld,
    file: Option<DatabaseFile>,
) {
    let health = alive.0.clone();
    let mut last_logged = None;
    // Whether the commits of a removed `-wal` have been copied into the database file.
    let mut rescued = false;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        health.start_batch();
        let started = std::time::Instant::now();
        metrics::histogram!("scimd_writer_batch_size").record(batch.len() as f64);
        let taken = batch.len() as i64;
        let waiting = (QUEUED.fetch_sub(taken, Ordering::AcqRel) - taken).max(0);
        metrics::gauge!("scimd_writer_queue_depth").set(waiting as f64);
        let replaced = file.as_ref().filter(|f| !f.is_current()).map(|f| Failed {
            kind: Failure::Replaced,
            message: format!(
                "{} (or its -wal file) no longer names the file scimd opened (removed or \
                 replaced); writes are refused until scimd is restarted on the right file",
                f.path.display()
            ),
        });
        if replaced.is_some()
            && !rescued
            && let Some(f) = file.as_ref().filter(|f| f.only_wal_gone())
        {
            // The log was removed but this connection still has it open: a checkpoint copies
            // every commit in it into the database file, where a restart finds them.
            rescued = true;
            match conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            }) {
                Ok((0, log, copied)) if log == copied => tracing::error!(
                    frames = copied,
                    "{}-wal was removed while scimd ran: its commits were copied into the \
                     database file; writes are refused until scimd is restarted",
                    f.path.display()
                ),
                other => tracing::error!(
                    outcome = ?other,
                    "{}-wal was removed while scimd ran and its commits could not all be \
                     copied into the database file: stop scimd with SIGTERM (not SIGKILL)",
                    f.path.display()
                ),
            }
        }
        // Each job's panic is caught where it runs (`guarded`); this catches one in the
        // batch's own statements, so the thread survives that too.
        let commit = match replaced {
            Some(f) => Err(f),
            None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_batch(&conn, &mut batch)
            }))
            .unwrap_or_else(|panic| {
                Err(Failed {
                    kind: Failure::Other,
                    message: format!("the write batch panicked: {}", panic_text(panic.as_ref())),
                })
            }),
        };
        // A statement can meet a full disk before the commit does: that request fails alone,
        // and the failure is the writer's to report.
        let met = commit.as_ref().ok().and_then(|()| {
            batch.iter().find_map(|j| j.failure()).map(|kind| Failed {
                kind,
                message: format!("{} (met by a statement)", kind.describe()),
            })
        });
        health.record(commit.as_ref().err().or(met.as_ref()), &mut last_logged);
        match &commit {
            // Wakes the checkpointer (unless a wake-up is already pending) once the WAL holds
            // enough pages.
            Ok(()) => {
                if WAL_PAGES.load(Ordering::Relaxed) >= CHECKPOINT_PAGES {
                    let _ = committed.try_send(());
                }
            }
            Err(_) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
            }
        }
        metrics::histogram!("scimd_writer_commit_seconds").record(started.elapsed().as_secs_f64());
        for job in batch {
            job.finish(commit.clone());
        }
        health.end_batch();
    }
    drop(alive);
}

/// Runs a batch in one transaction and commits it. Returns an error when the transaction could
/// not start or commit, or was lost (SQLite rolls the whole transaction back on some errors);
/// then the caller rolls back what is left and no request of the batch has written anything.
fn commit_batch(conn: &Connection, batch: &mut [Queued]) -> Result<(), Failed> {
    // What the last batch knew may be out of date (another process may have written since),
    // and a batch that starts over begins from what is committed.
    super::feeds::forget_numbers();
    exec(conn, "BEGIN IMMEDIATE").map_err(failure)?;
    if !run_optimistic(conn, batch) {
        if !conn.is_autocommit() {
            exec(conn, "ROLLBACK").map_err(failure)?;
        }
        super::feeds::forget_numbers();
        exec(conn, "BEGIN IMMEDIATE").map_err(failure)?;
        for job in batch.iter_mut() {
            job.run(conn, true);
            if conn.is_autocommit() {
                return Err(lost());
            }
        }
    }
    exec(conn, "COMMIT").map_err(failure)
}

/// Runs every job with nothing around it; false (stopping there) when one failed after it had
/// changed rows, or the failure ended the transaction: the batch must start over.
fn run_optimistic(conn: &Connection, batch: &mut [Queued]) -> bool {
    for job in batch.iter_mut() {
        // Every row a statement inserts, updates or deletes counts, also those of triggers; a
        // statement that fails is undone by SQLite and counts nothing.
        let before = conn.total_changes();
        if !job.run(conn, false) && (conn.total_changes() != before || conn.is_autocommit()) {
            return false;
        }
    }
    true
}

fn lost() -> Failed {
    Failed {
        kind: Failure::Other,
        message: "the write transaction was rolled back by the database".into(),
    }
}

fn failure(e: rusqlite::Error) -> Failed {
    let kind = Failure::of(&e);
    Failed {
        kind,
        message: format!("{}: {e}", kind.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    type Answer = oneshot::Receiver<Result<(), Error>>;

    /// A job inserting `x` (and `also`, when given) into `t`, then failing when `fail`;
    /// counts its runs.
    fn job(x: i64, also: Option<i64>, fail: bool, runs: &Arc<AtomicUsize>) -> (Queued, Answer) {
        let (answer, answered) = oneshot::channel();
        let runs = runs.clone();
        let work = move |c: &Connection| -> Result<(), Error> {
            runs.fetch_add(1, Ordering::Relaxed);
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            if let Some(y) = also {
                c.execute("INSERT INTO t (x) VALUES (?1)", [y])?;
            }
            if fail {
                return Err(Error::Invalid("refused".into()));
            }
            Ok(())
        };
        let task = Task {
            work,
            result: None,
            answer,
        };
        (Box::new(task), answered)
    }

    /// A job inserting `x`, then panicking: a bug halfway through a write.
    fn panicking(x: i64, runs: &Arc<AtomicUsize>) -> (Queued, Answer) {
        let (answer, answered) = oneshot::channel();
        let runs = runs.clone();
        let work = move |c: &Connection| -> Result<(), Error> {
            runs.fetch_add(1, Ordering::Relaxed);
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            panic!("injected: a bug after a change");
        };
        let task = Task {
            work,
            result: None,
            answer,
        };
        (Box::new(task), answered)
    }

    fn table() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
            .unwrap();
        c
    }

    fn rows(c: &Connection) -> Vec<i64> {
        let mut st = c.prepare("SELECT x FROM t ORDER BY x").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn finish(batch: Vec<Queued>, commit: Result<(), Failed>, answers: Vec<Answer>) -> Vec<bool> {
        for j in batch {
            j.finish(commit.clone());
        }
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap().is_ok())
            .collect()
    }

    #[test]
    fn a_failure_that_changed_nothing_does_not_restart_the_batch() {
        let c = table();
        c.execute("INSERT INTO t (x) VALUES (1)", []).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, ra) = job(2, None, false, &runs);
        // The duplicate stops the statement: nothing changed.
        let (b, rb) = job(1, None, false, &runs);
        let (d, rd) = job(3, None, false, &runs);
        let mut batch = vec![a, b, d];
        let commit = commit_batch(&c, &mut batch);
        assert!(commit.is_ok());
        assert_eq!(runs.load(Ordering::Relaxed), 3, "each job ran once");
        assert_eq!(finish(batch, commit, vec![ra, rb, rd]), [true, false, true]);
        assert_eq!(rows(&c), [1, 2, 3]);
    }

    #[test]
    fn a_failure_after_a_change_rolls_back_that_request_alone() {
        let c = table();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, ra) = job(1, None, false, &runs);
        // Inserts 2 and 3, then fails: neither may stay.
        let (b, rb) = job(2, Some(3), true, &runs);
        // Inserts 4, then its second insert hits the unique 1: 4 must go too.
        let (d, rd) = job(4, Some(1), false, &runs);
        let (e, re) = job(5, None, false, &runs);
        let mut batch = vec![a, b, d, e];
        let commit = commit_batch(&c, &mut batch);
        assert!(commit.is_ok());
        assert_eq!(
            finish(batch, commit, vec![ra, rb, rd, re]),
            [true, false, false, true]
        );
        assert_eq!(rows(&c), [1, 5]);
        assert!(c.is_autocommit(), "the transaction committed");
    }

    /// A job doing `work` on the store's tables.
    fn store_job(
        work: impl FnMut(&Connection) -> Result<(), Error> + Send + 'static,
    ) -> (Queued, Answer) {
        let (answer, answered) = oneshot::channel();
        let task = Task {
            work,
            result: None,
            answer,
        };
        (Box::new(task), answered)
    }

    /// A user's creation by provider 1 (an event when it has a feed), failing after it when
    /// `fail`.
    fn create(id: &'static str, fail: bool) -> (Queued, Answer) {
        store_job(move |c| {
            crate::store::activity::testing::create(c, id, 10);
            match fail {
                true => Err(Error::Invalid("refused".into())),
                false => Ok(()),
            }
        })
    }

    #[test]
    fn the_event_numbers_the_writer_keeps_follow_what_commits() {
        use crate::store::feeds;
        let c = feeds::testing::with_provider();
        feeds::add(&c, &feeds::testing::webhook("f")).unwrap();
        feeds::cache_numbers();
        let events = |c: &Connection| -> Vec<(i64, String)> {
            feeds::events_after(c, 1, 0, 100)
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.resource_id))
                .collect()
        };
        // The second change fails after its event was numbered: the batch runs again with
        // each request alone, and the third takes the number the second gave back.
        let (a, ra) = create("a", false);
        let (b, rb) = create("b", true);
        let (d, rd) = create("d", false);
        let mut batch = vec![a, b, d];
        let commit = commit_batch(&c, &mut batch);
        assert_eq!(finish(batch, commit, vec![ra, rb, rd]), [true, false, true]);
        assert_eq!(events(&c), [(1, "a".into()), (2, "d".into())]);
        // The last feed removed in a batch: the changes after it write no event; a new feed
        // numbers afresh, in the same batch too.
        let (r, rr) = store_job(|c| feeds::remove(c, "f").map(|_| ()));
        let (e, re) = create("e", false);
        let (g, rg) = store_job(|c| feeds::add(c, &feeds::testing::webhook("g")).map(|_| ()));
        let (h, rh) = create("h", false);
        let mut batch = vec![r, e, g, h];
        let commit = commit_batch(&c, &mut batch);
        assert_eq!(
            finish(batch, commit, vec![rr, re, rg, rh]),
            [true, true, true, true]
        );
        assert_eq!(events(&c), [(1, "h".into())]);
        // A write from elsewhere between two batches (another process, here the same
        // connection outside the writer): the next batch reads the numbers again.
        c.execute("UPDATE feed_counters SET last = 40", []).unwrap();
        let (i, ri) = create("i", false);
        let mut batch = vec![i];
        let commit = commit_batch(&c, &mut batch);
        assert_eq!(finish(batch, commit, vec![ri]), [true]);
        assert_eq!(events(&c), [(1, "h".into()), (41, "i".into())]);
    }

    #[test]
    fn a_panicking_job_fails_alone_and_its_change_is_rolled_back() {
        let c = table();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, ra) = job(1, None, false, &runs);
        let (b, mut rb) = panicking(2, &runs);
        let (d, rd) = job(3, None, false, &runs);
        let mut batch = vec![a, b, d];
        let commit = commit_batch(&c, &mut batch);
        assert!(commit.is_ok());
        for j in batch {
            j.finish(commit.clone());
        }
        assert!(ra.blocking_recv().unwrap().is_ok());
        assert!(rd.blocking_recv().unwrap().is_ok());
        let failed = rb.try_recv().unwrap();
        assert!(
            matches!(failed, Err(Error::Internal(ref m)) if m.contains("panicked")),
            "{failed:?}"
        );
        assert_eq!(
            rows(&c),
            [1, 3],
            "the panicking job's insert was taken back"
        );
    }

    /// A database file in a directory of its own (removed with the guard).
    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        (dir, path)
    }

    fn open_wal(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c
    }

    #[tokio::test]
    async fn the_writer_thread_survives_a_panicking_write() {
        let (_dir, path) = temp_db();
        let open = || open_wal(&path);
        let conn = open();
        conn.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
            .unwrap();
        let writer = Writer::start(conn, open(), DatabaseFile::of(&path).ok()).unwrap();
        for i in 0..3i64 {
            let r: Result<(), Error> = writer
                .write(move |c| {
                    c.execute("INSERT INTO t (x) VALUES (?1)", [100 + i])?;
                    panic!("injected");
                })
                .await;
            assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
            let ok: Result<usize, Error> = writer
                .write(move |c| Ok(c.execute("INSERT INTO t (x) VALUES (?1)", [i])?))
                .await;
            assert_eq!(ok.unwrap(), 1);
        }
        assert!(matches!(writer.state(), State::Running(_)));
        assert_eq!(rows(&open()), [0, 1, 2]);
    }

    /// A writer on a fresh database holding one table, `t (x)`.
    fn writer_on_table(path: &std::path::Path) -> Writer {
        let conn = open_wal(path);
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        Writer::start(conn, open_wal(path), None).unwrap()
    }

    /// A request's write makes the writer busy; a background write does not, so background
    /// work that waits for quiet does not wait for itself.
    #[tokio::test]
    async fn background_writes_leave_the_writer_quiet() {
        let (_dir, path) = temp_db();
        let open = || open_wal(&path);
        let writer = writer_on_table(&path);
        std::thread::sleep(Duration::from_millis(30));
        let insert = |c: &Connection| -> Result<usize, Error> {
            Ok(c.execute("INSERT INTO t (x) VALUES (1)", [])?)
        };
        let asked = || writer.health.last_asked.load(Ordering::Acquire);
        writer.write_in_background(insert).await.unwrap();
        assert_eq!(asked(), 0, "a background write counted as asked for");
        assert!(writer.quiet_for() >= Duration::from_millis(30));
        writer.write(insert).await.unwrap();
        assert!(asked() >= 30, "the request's write was not counted");
        assert_eq!(rows(&open()).len(), 2);
    }

    /// A write that takes long (a commit stalled on the disk) is no lull, though nothing new
    /// is asked for while it lasts; quiet counts from its answer.
    #[tokio::test]
    async fn a_write_waiting_for_its_answer_keeps_the_writer_busy() {
        let (_dir, path) = temp_db();
        let writer = writer_on_table(&path);
        let (entered, inside) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(held);
        let slow = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |c| -> Result<usize, Error> {
                        let _ = entered.send(());
                        let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(10));
                        Ok(c.execute("INSERT INTO t (x) VALUES (1)", [])?)
                    })
                    .await
            })
        };
        // Waited for off the runtime's thread, which runs the write's task meanwhile.
        tokio::task::spawn_blocking(move || inside.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            writer.quiet_for(),
            Duration::ZERO,
            "a held write looked quiet"
        );
        let released = writer.health.epoch.elapsed().as_millis() as u64;
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();
        let last = writer.health.last_asked.load(Ordering::Acquire);
        assert!(
            last >= released,
            "quiet counted from the ask ({last} < {released})"
        );
        assert_eq!(writer.health.in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_writer_whose_thread_has_ended_is_gone() {
        let (jobs, _queue) = mpsc::channel::<Queued>();
        let health = Arc::new(Health {
            epoch: Instant::now(),
            busy_since: AtomicU64::new(0),
            last_asked: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            alive: AtomicBool::new(true),
            failing: std::sync::Mutex::new(None),
        });
        let writer = Writer {
            jobs,
            health: health.clone(),
        };
        assert_eq!(writer.state(), State::Running(Duration::ZERO));
        health.start_batch();
        assert!(matches!(writer.state(), State::Running(_)));
        // What the thread holds until it ends, however it ends.
        drop(AliveWhileHeld(health));
        assert_eq!(writer.state(), State::Gone);
    }

    #[test]
    fn a_batch_that_cannot_start_runs_nothing_and_answers_every_request() {
        let c = table();
        // A transaction already open: BEGIN fails.
        c.execute_batch("BEGIN").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, ra) = job(1, None, false, &runs);
        let mut batch = vec![a];
        let commit = commit_batch(&c, &mut batch);
        assert!(commit.is_err());
        assert_eq!(runs.load(Ordering::Relaxed), 0);
        assert_eq!(finish(batch, commit, vec![ra]), [false]);
    }
}
