//! The baseline: one row per synced path, as both sides were when it was last synced.

use rusqlite::params;

use super::{Result, Store, unsigned};
use crate::sync::{Baseline, key};

impl Store {
    /// The job's baseline, ordered by path.
    pub fn baseline(&self, job: &str) -> Result<Vec<Baseline>> {
        self.with("reading the baseline", false, |tx| {
            tx.prepare(
                "SELECT path, is_dir, remote_id, remote_etag, remote_ctag, remote_size, remote_hash,
                        remote_modified, local_size, local_modified, local_hash
                 FROM baseline WHERE job = ?1 ORDER BY path",
            )?
            .query_map([job], |row| {
                Ok(Baseline {
                    path: row.get(0)?,
                    is_dir: row.get(1)?,
                    remote_id: row.get(2)?,
                    remote_etag: row.get(3)?,
                    remote_ctag: row.get(4)?,
                    remote_size: unsigned(row, 5)?,
                    remote_hash: row.get(6)?,
                    remote_modified: row.get(7)?,
                    local_size: unsigned(row, 8)?,
                    local_modified: row.get(9)?,
                    local_hash: row.get(10)?,
                })
            })?
            .collect()
        })
    }

    /// Inserts or replaces rows by [`key`] of their path (a new case of the same name replaces
    /// the old row).
    pub fn put_baseline(&self, job: &str, rows: &[Baseline]) -> Result<()> {
        self.with("recording baseline rows", true, |tx| {
            let mut put = tx.prepare(
                "INSERT OR REPLACE INTO baseline (job, key, path, is_dir, remote_id, remote_etag,
                    remote_ctag, remote_size, remote_hash, remote_modified, local_size,
                    local_modified, local_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for b in rows {
                put.execute(params![
                    job,
                    key(&b.path),
                    b.path,
                    b.is_dir,
                    b.remote_id,
                    b.remote_etag,
                    b.remote_ctag,
                    b.remote_size as i64,
                    b.remote_hash,
                    b.remote_modified,
                    b.local_size as i64,
                    b.local_modified,
                    b.local_hash,
                ])?;
            }
            Ok(())
        })
    }

    /// Removes the rows of `paths` (matched by [`key`]).
    pub fn remove_baseline(&self, job: &str, paths: &[String]) -> Result<()> {
        self.with("removing baseline rows", true, |tx| {
            let mut remove = tx.prepare("DELETE FROM baseline WHERE job = ?1 AND key = ?2")?;
            for path in paths {
                remove.execute(params![job, key(path)])?;
            }
            Ok(())
        })
    }

    /// Forgets the job's whole baseline (an operator's rebuild).
    pub fn clear_baseline(&self, job: &str) -> Result<()> {
        self.with("clearing the baseline", true, |tx| {
            tx.execute("DELETE FROM baseline WHERE job = ?1", [job])?;
            Ok(())
        })
    }
}
