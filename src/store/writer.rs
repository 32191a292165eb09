//! The one writer: a thread that owns a connection and commits the writes of concurrent
//! requests together (group commit). Each request's work runs inside its own SAVEPOINT, so one
//! failing request rolls back alone; every request is answered only after the transaction
//! holding its write has committed (synchronous=FULL: durable when acknowledged).
//!
//! Several writers sharing the pool would contend for SQLite's write lock and back off with
//! sleeps; one writer batching whatever is queued keeps latency flat and throughput high.

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

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("scimd-writer".into())
            .spawn(move || run(conn, queue))?;
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

fn in_savepoint<T, E: From<Error>>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    c.execute_batch("SAVEPOINT request")
        .map_err(|e| E::from(e.into()))?;
    let r = f(c);
    let end = if r.is_ok() {
        "RELEASE request"
    } else {
        "ROLLBACK TO request; RELEASE request"
    };
    c.execute_batch(end).map_err(|e| E::from(e.into()))?;
    r
}

fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "could not start a write transaction");
            let failed = failure(e);
            for job in batch {
                job(None)(Err(failed.clone()));
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(Some(&conn))).collect();
        let commit = conn.execute_batch("COMMIT").map_err(failure);
        if let Err(f) = &commit {
            tracing::error!(error = %f.message, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
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
