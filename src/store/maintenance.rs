//! Backup, restore and checks of the database file. A backup is consistent while a server
//! writes (SQLite's online backup API copies the pages of one read transaction); a restore
//! refuses while a server holds the file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::Error;

/// What `backup` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupReport {
    pub(crate) bytes: u64,
    pub(crate) schema_version: i64,
}

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckReport {
    /// `PRAGMA integrity_check` lines other than "ok".
    pub(crate) integrity: Vec<String>,
    /// `PRAGMA foreign_key_check` rows, as text.
    pub(crate) foreign_keys: Vec<String>,
    pub(crate) schema_version: i64,
    pub(crate) latest_version: i64,
    /// Why the write-ahead log does not hold what its index says it holds, if it does not.
    pub(crate) wal: Option<String>,
}

impl CheckReport {
    pub(crate) fn is_ok(&self) -> bool {
        self.integrity.is_empty()
            && self.foreign_keys.is_empty()
            && self.wal.is_none()
            && self.schema_version == self.latest_version
    }
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

fn open_read_only(path: &Path) -> Result<Connection, Error> {
    if !path.exists() {
        return Err(Error::NotFound(format!(
            "{} does not exist",
            path.display()
        )));
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// Writes a consistent copy of the database at `db` to `to` (which must not exist), mode 0600,
/// synced to disk. `vacuum` writes a compacted copy (`VACUUM INTO`) instead of a page copy.
pub(crate) fn backup(db: &Path, to: &Path, vacuum: bool) -> Result<BackupReport, Error> {
    let src = open_read_only(db)?;
    // Created here, empty and private, so the copy is never readable by others, not even
    // while it is being written.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| invalid(format!("{}: {e}", to.display())))?;
    let done = if vacuum {
        src.execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map(|_| ())
            .map_err(|e| invalid(format!("copying into {}: {e}", to.display())))
    } else {
        (|| -> rusqlite::Result<()> {
            let mut dst = Connection::open(to)?;
            let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
            // All pages in one step: one read transaction, so one consistent state, whatever
            // the server commits meanwhile.
            loop {
                match b.step(-1)? {
                    rusqlite::backup::StepResult::Done => return Ok(()),
                    rusqlite::backup::StepResult::More => continue,
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        })()
        .map_err(|e| invalid(format!("copying into {}: {e}", to.display())))
    };
    if let Err(e) = done {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    sync(to)?;
    let schema_version = version_of(&open_read_only(to)?)?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        bytes,
        schema_version,
    })
}

/// Flushes a file and its directory entry to disk.
fn sync(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
    }
    Ok(())
}

fn version_of(c: &Connection) -> Result<i64, Error> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(invalid)
}

/// Checks the database at `db` without changing it.
pub(crate) fn check(db: &Path) -> Result<CheckReport, Error> {
    // Read before SQLite opens the database: opening would start a new log over a missing one.
    let wal = missing_commits(db);
    let c = open_read_only(db)?;
    let integrity: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(invalid)?;
    let foreign_keys: Vec<String> = c
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok(format!(
                    "{} row {} refers to a missing row of {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                    r.get::<_, String>(2)?
                ))
            })?
            .collect::<rusqlite::Result<_>>()
        })
        .map_err(invalid)?;
    Ok(CheckReport {
        integrity: integrity.into_iter().filter(|l| l != "ok").collect(),
        foreign_keys,
        schema_version: version_of(&c)?,
        latest_version: super::latest_schema_version(),
        wal,
    })
}

/// Whether commits the write-ahead log's index (`DB-shm`) counts are missing from the log
/// (`DB-wal`) — removed or cut short — and not yet copied into the database file: those are
/// lost. Reads the index header (SQLite's `WalIndexHdr`: page size at byte 14, frames in the
/// log at 16, native byte order) and its checkpoint record (frames copied, at 96).
fn missing_commits(db: &Path) -> Option<String> {
    let at = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    let mut head = [0u8; 100];
    let mut shm = File::open(at("-shm")).ok()?;
    std::io::Read::read_exact(&mut shm, &mut head).ok()?;
    let u32_at = |i: usize| u32::from_ne_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (initialised, frames, copied) = (head[12] == 1, u32_at(16), u32_at(96));
    if !initialised || frames <= copied {
        return None;
    }
    let page = match u16::from_ne_bytes([head[14], head[15]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let needed = 32 + u64::from(frames) * (24 + page);
    match std::fs::metadata(at("-wal")) {
        Ok(m) if m.len() >= needed => None,
        Ok(m) => Some(format!(
            "{}-wal holds {} bytes, but its index counts {frames} frames ({needed} bytes), {} \
             of them not yet in the database file: they are lost",
            db.display(),
            m.len(),
            frames - copied
        )),
        Err(_) => Some(format!(
            "{}-wal is missing, but its index counts {} frames not yet in the database file: \
             those commits are lost",
            db.display(),
            frames - copied
        )),
    }
}

/// The file a server holds a shared lock on while it serves (see `hold`): the database file.
fn lock_file(db: &Path) -> Result<File, Error> {
    File::open(db).map_err(|e| invalid(format!("{}: {e}", db.display())))
}

/// Held by a running server for its whole life, so `restore` can tell the file is in use.
pub(crate) struct InUse(#[allow(dead_code)] File);

/// Marks the database at `db` as in use by this process (a shared lock; any number of servers
/// and commands may hold one). Fails while a restore holds the file.
pub(crate) fn hold(db: &Path) -> Result<InUse, Error> {
    let f = lock_file(db)?;
    f.try_lock_shared().map_err(|_| {
        Error::Conflict(format!(
            "{} is being restored; start the server once `scimd restore` has finished",
            db.display()
        ))
    })?;
    Ok(InUse(f))
}

/// Held by the one server of a database for its whole life (an exclusive lock on `DB.lock`,
/// which holds its process id): a second server on the same database would write beside it.
pub(crate) struct Serving(#[allow(dead_code)] File);

/// Claims the database at `db` for this server, or says which process serves it already.
/// Where the lock file cannot be written (a read-only directory: this server cannot write the
/// database either), an existing one is locked as it is, and without one nothing is claimed.
pub(crate) fn claim_for_serving(db: &Path) -> Result<Option<Serving>, Error> {
    use std::io::{Read, Seek, Write};
    let path = PathBuf::from(format!("{}.lock", db.display()));
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path);
    let (mut f, writable) = match opened {
        Ok(f) => (f, true),
        Err(e) => match File::open(&path) {
            Ok(f) => (f, false),
            Err(_) => {
                tracing::warn!(
                    error = %e,
                    "cannot make {}: a second server on this database would not be refused",
                    path.display()
                );
                return Ok(None);
            }
        },
    };
    if f.try_lock().is_err() {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        return Err(Error::Conflict(format!(
            "another scimd server (process {}) is serving {}: two servers on one database \
             would both write to it; stop that one first (systemctl stop scimd)",
            pid.trim(),
            db.display()
        )));
    }
    if writable {
        let written = f
            .set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| write!(f, "{}", std::process::id()));
        written.map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    Ok(Some(Serving(f)))
}

/// Replaces the database at `db` with the backup at `from`, keeping the replaced file (and its
/// WAL) aside; returns where. Refuses while a server uses `db`, and refuses a file that is not
/// a scimd database or was written by a newer scimd.
pub(crate) fn restore(db: &Path, from: &Path, now: &str) -> Result<Option<PathBuf>, Error> {
    let same = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    };
    if same(db, from) {
        return Err(invalid(format!(
            "{} is the database itself: restore from a backup (scimd backup FILE), not from \
             the file being replaced",
            from.display()
        )));
    }
    let report = check(from).map_err(|e| invalid(format!("{}: {e}", from.display())))?;
    // Credentials are in `tokens` before schema version 12, in `credentials` from it on.
    let has_tables = open_read_only(from)?
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
               ('providers', 'tokens', 'credentials', 'resources', 'members')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(invalid)?;
    if has_tables != 4 {
        return Err(invalid(format!(
            "{} is not a scimd database (it lacks scimd's tables)",
            from.display()
        )));
    }
    if report.schema_version > report.latest_version {
        return Err(invalid(format!(
            "{} was written by a newer scimd (schema {}, this binary knows up to {}); restore \
             it with that version",
            from.display(),
            report.schema_version,
            report.latest_version
        )));
    }
    if !report.integrity.is_empty() {
        return Err(invalid(format!(
            "{} is damaged: {}",
            from.display(),
            report.integrity.join("; ")
        )));
    }
    // Held until the new file is in place: a server starting meanwhile waits for nothing and
    // refuses (see `hold`).
    let guard = if db.exists() {
        let f = lock_file(db)?;
        f.try_lock().map_err(|_| {
            Error::Conflict(format!(
                "a scimd server is using {}: stop it first (systemctl stop scimd), restore, \
                 then start it again",
                db.display()
            ))
        })?;
        Some(f)
    } else {
        None
    };
    // The copy is made first: if it fails, nothing has been moved.
    let staging = PathBuf::from(format!("{}.restoring", db.display()));
    let _ = std::fs::remove_file(&staging);
    let copied = (|| -> std::io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)?;
        std::io::copy(&mut File::open(from)?, &mut out)?;
        out.sync_all()
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&staging);
        return Err(invalid(format!("copying {}: {e}", from.display())));
    }
    let aside = match guard {
        Some(_) => {
            let stamp: String = now.chars().filter(char::is_ascii_alphanumeric).collect();
            let aside = PathBuf::from(format!("{}.replaced-{stamp}", db.display()));
            for suffix in ["", "-wal", "-shm"] {
                let from = PathBuf::from(format!("{}{suffix}", db.display()));
                if from.exists() {
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    std::fs::rename(&from, &to)
                        .map_err(|e| invalid(format!("moving {} aside: {e}", from.display())))?;
                }
            }
            Some(aside)
        }
        None => None,
    };
    std::fs::rename(&staging, db).map_err(|e| invalid(format!("{}: {e}", db.display())))?;
    sync(db)?;
    drop(guard);
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log index (`-shm`) header saying `frames` frames, `copied` of them in the file.
    fn index(dir: &Path, frames: u32, copied: u32) -> PathBuf {
        let db = dir.join("t.db");
        let mut head = vec![0u8; 136];
        head[12] = 1;
        head[14..16].copy_from_slice(&4096u16.to_ne_bytes());
        head[16..20].copy_from_slice(&frames.to_ne_bytes());
        head[96..100].copy_from_slice(&copied.to_ne_bytes());
        std::fs::write(dir.join("t.db-shm"), head).unwrap();
        db
    }

    #[test]
    fn commits_counted_by_the_log_index_but_missing_from_the_log_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = index(dir.path(), 10, 4);
        let wal = dir.path().join("t.db-wal");
        // No log at all: six commits lost.
        let why = missing_commits(&db).unwrap();
        assert!(why.contains("missing") && why.contains("6 frames"), "{why}");
        // A log cut short.
        std::fs::write(&wal, vec![0u8; 32 + 5 * (24 + 4096)]).unwrap();
        assert!(missing_commits(&db).unwrap().contains("they are lost"));
        // The whole log.
        std::fs::write(&wal, vec![0u8; 32 + 10 * (24 + 4096)]).unwrap();
        assert_eq!(missing_commits(&db), None);
        // Every frame copied already: a missing log loses nothing.
        std::fs::remove_file(&wal).unwrap();
        let db = index(dir.path(), 10, 10);
        assert_eq!(missing_commits(&db), None);
        // No index: nothing to say.
        std::fs::remove_file(dir.path().join("t.db-shm")).unwrap();
        assert_eq!(missing_commits(&db), None);
    }
}
