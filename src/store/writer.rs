//! The one writer: a thread that owns a connection and commits the writes of concurrent
//! requests together (group commit). Each request's work runs inside its own SAVEPOINT, so one
//! failing request rolls back alone; every request is answered only after the transaction
//! holding its write has committed (synchronous=FULL: durable when acknowledged).
//!
//! Several writers sharing the pool would contend for SQLite's write lock and back off with
//! sleeps; one writer batching whatever is queued keeps latency flat and throughput high.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Error;

/// Why a batch did not commit: SQLite's message, and whether another process held the lock.
#[derive(Clone)]
struct Failed {
    message: String,
    busy: bool,
}

/// Called with the commit's outcome, to answer the request.
type Completion = Box<dyn FnOnce(Result<(), Failed>) + Send>;
/// A request's work; `None` means the transaction could not start and the work must not run.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

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
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`, and the checkpointer thread on `checkpoints` (a
    /// second connection to the same database).
    pub fn start(conn: Connection, checkpoints: Connection) -> std::io::Result<Writer> {
        conn.wal_hook(Some(after_commit));
        // Each request's SAVEPOINT keeps the original of every page it changes in a statement
        // journal; in memory that is a copy, on disk (SQLite's default) a write to a temp file.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(std::io::Error::other)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("scimd-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, commits))?;
        std::thread::Builder::new()
            .name("scimd-writer".into())
            .spawn(move || run(conn, queue, committed))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in the next group-committed transaction and returns its result once that
    /// transaction has committed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let result = conn.map(|c| in_savepoint(c, f));
            Box::new(move |commit: Result<(), Failed>| {
                let out = match (commit, result) {
                    (Ok(()), Some(r)) => r,
                    (Err(f), _) if f.busy => Err(E::from(Error::Busy(f.message))),
                    (Err(f), _) => Err(E::from(Error::Task(f.message))),
                    (Ok(()), None) => Err(E::from(Error::Task("write did not run".into()))),
                };
                let _ = answer.send(out);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(Error::Task("the writer has stopped".into())))?;
        answered
            .await
            .map_err(|_| E::from(Error::Task("the writer dropped a request".into())))?
    }
}

/// Runs one statement without parameters through the statement cache (no parsing per call).
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn in_savepoint<T, E: From<Error>>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    exec(c, "SAVEPOINT request").map_err(|e| E::from(e.into()))?;
    let r = f(c);
    if r.is_err() {
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

fn run(conn: Connection, queue: mpsc::Receiver<Job>, committed: mpsc::SyncSender<()>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "could not start a write transaction");
            let failed = failure(e);
            for job in batch {
                job(None)(Err(failed.clone()));
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(Some(&conn))).collect();
        let commit = exec(&conn, "COMMIT").map_err(failure);
        match &commit {
            // Wakes the checkpointer (unless a wake-up is already pending) once the WAL holds
            // enough pages.
            Ok(()) => {
                if WAL_PAGES.load(Ordering::Relaxed) >= CHECKPOINT_PAGES {
                    let _ = committed.try_send(());
                }
            }
            Err(f) => {
                tracing::error!(error = %f.message, "commit failed; the batch is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

fn failure(e: rusqlite::Error) -> Failed {
    let busy = Error::Sqlite(e).is_busy();
    Failed {
        message: if busy {
            "the database is locked by another process".into()
        } else {
            "the write could not be committed".into()
        },
        busy,
    }
}
