//! The sync worker's durable state, in the state store (schema 5, the `sync_*` tables): per job
//! the baseline row of every synced path, the remote snapshot with its delta link, the run
//! history, the open problems and the run lock. Every instance sharing the store sees the same
//! state, so a job taken over by another instance goes on from where it stood.
//!
//! Every write is one transaction whose first statement writes (an SQLite transaction then
//! holds the write lock from its start, a PostgreSQL one the rows it reads), so that writers
//! queue instead of failing half-way or both winning a race. Batches of rows go in statements
//! of many rows each: a round trip per hundred rows, not per row.
//!
//! One file per table group: [`baseline`](Store::baseline), [`snapshot`](Store::snapshot),
//! run history ([`runs`](Store::runs)), [`problems`](Store::problems) and the run lock
//! ([`try_lock`](Store::try_lock)); [`import`] brings in the `sync.db` of earlier versions.

mod baseline;
mod folder;
mod history;
mod import;
mod lock;
mod problems;
mod snapshot;
#[cfg(test)]
mod tests;

pub use history::RunRecord;
pub use lock::LockHolder;
pub use snapshot::{RemoteChange, Snapshot};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;

use crate::connections::store::Paths;

/// A state store failure: what was being done, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("sync state: {op}: {source}")]
pub struct Error {
    op: &'static str,
    #[source]
    source: crate::state::Error,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What turns a failure of `op` into an [`Error`].
fn failed<E: Into<crate::state::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error {
        op,
        source: e.into(),
    }
}

/// The sync state within a state store; clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    state: Arc<crate::state::Store>,
}

impl Store {
    /// The sync state within `state`.
    pub fn new(state: Arc<crate::state::Store>) -> Store {
        Store { state }
    }

    /// The sync state of the store `paths` names, the `sync.db` an earlier version left under
    /// `[state] dir` imported first (once).
    pub async fn open(paths: &Paths) -> Result<Store> {
        let state = paths
            .store()
            .await
            .map_err(failed("opening the state store"))?;
        let store = Store::new(state);
        import::import(&store, &paths.state_dir).await?;
        Ok(store)
    }

    /// A private copy of job `job`'s state in memory, for dry runs: whatever a dry run writes
    /// goes there and vanishes with it.
    pub async fn copy_of(&self, job: &str) -> Result<Store> {
        let scratch = crate::state::Store::scratch()
            .await
            .map_err(failed("opening a memory copy"))?;
        let copy = Store::new(Arc::new(scratch));
        copy.put_baseline(job, &self.baseline(job).await?).await?;
        let snapshot = self.snapshot(job).await?;
        if let (Some(drive_id), Some(root_id)) = (snapshot.drive_id, snapshot.root_id) {
            let change = RemoteChange {
                replace_all: true,
                upserts: snapshot.items,
                removals: Vec::new(),
                drive_id,
                root_id,
                delta_link: snapshot.delta_link,
                full_scan_at: snapshot.full_scan_at,
            };
            copy.apply_remote(job, &change).await?;
        }
        let problems: Vec<_> = self.problems(job).await?.into_iter().map(|p| p.0).collect();
        copy.set_problems(job, &problems).await?;
        // A run under way keeps a dry run out, as it would keep out a real one.
        if let Some(holder) = self.lock_holder(job).await? {
            copy.hold_lock(job, &holder).await?;
        }
        Ok(copy)
    }

    fn pool(&self) -> &AnyPool {
        self.state.pool()
    }

    /// How long a run lock's heartbeat may be late before another run takes the lock over.
    /// On PostgreSQL (instances on several hosts) a few seconds, so that a job held by an
    /// instance that died is taken over quickly; on SQLite (one host, where a dead process is
    /// seen at once) two minutes, so that a busy disk never makes two runs of a job.
    pub fn lock_stale(&self) -> Duration {
        match self.state.engine() {
            crate::state::Engine::Postgres => Duration::from_secs(4),
            crate::state::Engine::Sqlite => Duration::from_secs(120),
        }
    }
}

/// Counts and sizes are stored as signed 64-bit integers.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 100;

/// `INSERT INTO table (columns) VALUES (...), (...) ON CONFLICT (keys) DO UPDATE SET ...` for
/// `rows` rows: every column not in `keys` takes the new row's value.
fn upsert_sql(table: &str, columns: &[&str], keys: &[&str], rows: usize) -> String {
    let width = columns.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect();
    let update: Vec<String> = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        values.join(", "),
        keys.join(", "),
        update.join(", ")
    )
}

/// `DELETE FROM table WHERE job = $1 AND column IN ($2, ...)` for `n` values.
fn delete_sql(table: &str, column: &str, n: usize) -> String {
    let values: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
    format!(
        "DELETE FROM {table} WHERE job = $1 AND {column} IN ({})",
        values.join(", ")
    )
}
