//! The sync worker's durable state: one SQLite file, `<state dir>/sync.db`, holding per job the
//! baseline row of every synced path, the remote snapshot with its delta link, the run history,
//! the open problems and the run lock.
//!
//! The journal is WAL with `synchronous=FULL`: a committed transaction survives a crash or a
//! power cut. Every write is one `BEGIN IMMEDIATE` transaction (a batch of baseline rows, a delta
//! batch together with its link, a lock take-over), so processes sharing the file queue for the
//! write lock (up to [`BUSY_TIMEOUT`]) instead of failing half-way or both winning a race.
//! The API is blocking; every call is short. The schema is a list of steps (`schema.rs`)
//! applied in order against `PRAGMA user_version`.
//!
//! One file per table group: [`baseline`](Store::baseline), [`snapshot`](Store::snapshot),
//! run history ([`runs`](Store::runs)), [`problems`](Store::problems) and the run lock
//! ([`try_lock`](Store::try_lock)); this file opens, migrates and runs transactions.

mod baseline;
mod history;
mod lock;
mod problems;
mod schema;
mod snapshot;
#[cfg(test)]
mod tests;

pub use history::RunRecord;
pub use lock::LockHolder;
pub use snapshot::{RemoteChange, Snapshot};

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, Row, Transaction, TransactionBehavior};

use schema::MIGRATIONS;

/// How long a call waits for another process's write transaction before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A state store failure: what was being done, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sync state {}: {op}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sync state: {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "sync state {}: schema version {found} is newer than this spgate knows ({supported})",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A handle on the state file; clones share one connection.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// `<state dir>/sync.db`.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("sync.db")
    }

    /// Opens (creating with mode 0600, and its directory with 0700, when missing) and migrates.
    pub fn open(path: &Path) -> Result<Store> {
        let io = |op| {
            move |source| Error::Io {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let sql = |op| move |source| Error::Sqlite { op, source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io("creating the state directory"))?;
        }
        // SQLite gives the -wal and -shm files the database file's mode.
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("creating the file"))?;
        let mut conn = Connection::open(path).map_err(sql("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting busy_timeout"))?;
        let mode = enable_wal(&conn).map_err(sql("enabling WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "sync state: WAL is not available here");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("setting synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql("enabling foreign keys"))?;
        migrate(&mut conn, path)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A private in-memory copy of the whole state, for dry runs: whatever a dry run writes goes
    /// there and vanishes with it.
    pub fn copy_in_memory(&self) -> Result<Store> {
        let sql = |op| move |source| Error::Sqlite { op, source };
        let mut copy = Connection::open_in_memory().map_err(sql("opening a memory copy"))?;
        {
            let source = self.conn.lock();
            let backup = rusqlite::backup::Backup::new(&source, &mut copy)
                .map_err(sql("copying the state"))?;
            backup
                .run_to_completion(1024, Duration::ZERO, None)
                .map_err(sql("copying the state"))?;
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(copy)),
        })
    }

    /// Runs `f` in one transaction: `BEGIN IMMEDIATE` for writes, deferred for reads (a
    /// consistent view across tables).
    fn with<T>(
        &self,
        op: &'static str,
        write: bool,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock();
        let behavior = if write {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(behavior)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run(&mut conn).map_err(|source| Error::Sqlite { op, source })
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let supported = MIGRATIONS.len() as i64;
    let mut found = 0;
    let mut run = || {
        // Immediate: two processes opening a new file at once must not both create tables.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        found = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > supported {
            return Ok(());
        }
        for (version, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", version as i64 + 1)?;
        }
        tx.commit()
    };
    run().map_err(|source| Error::Sqlite {
        op: "migrating the schema",
        source,
    })?;
    if found > supported {
        return Err(Error::TooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    Ok(())
}

/// Switches the file to WAL. SQLite answers "busy" at once, without waiting, when another
/// connection is switching the same new file at the same moment; wait here instead.
fn enable_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Sizes and counts are stored as SQLite's signed integers.
fn unsigned(row: &Row, index: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(index)? as u64)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
