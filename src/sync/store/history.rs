//! The run history.

use rusqlite::{Row, params};

use super::{Result, Store, now, unsigned};
use crate::sync::{Counts, Outcome};

/// One run of a job. `ended` is `None` while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub job: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub counts: Counts,
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
}

/// The run table's count columns, in the order of [`Counts`]' fields and of [`counts_at`].
const COUNT_COLUMNS: &str = "uploaded, downloaded, deleted_local, deleted_remote, conflicts, \
                             skipped, errors, bytes_up, bytes_down";

/// The counts in [`COUNT_COLUMNS`] order, from column `first` of `row` on.
fn counts_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        uploaded: unsigned(row, first)?,
        downloaded: unsigned(row, first + 1)?,
        deleted_local: unsigned(row, first + 2)?,
        deleted_remote: unsigned(row, first + 3)?,
        conflicts: unsigned(row, first + 4)?,
        skipped: unsigned(row, first + 5)?,
        errors: unsigned(row, first + 6)?,
        bytes_up: unsigned(row, first + 7)?,
        bytes_down: unsigned(row, first + 8)?,
    })
}

impl Store {
    /// Records a new run and returns its id. Runs of the job that never finished (the process
    /// stopped) are closed first as `interrupted`, ended at their start. Call with the job's
    /// lock held.
    pub fn start_run(&self, job: &str) -> Result<i64> {
        let now = now();
        self.with("starting a run", true, |tx| {
            tx.execute(
                "UPDATE run SET ended = started, outcome = ?2,
                    message = COALESCE(message, 'the process stopped before the run finished')
                 WHERE job = ?1 AND ended IS NULL",
                params![job, Outcome::Interrupted.as_str()],
            )?;
            tx.execute(
                "INSERT INTO run (job, started) VALUES (?1, ?2)",
                params![job, now],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    pub fn finish_run(
        &self,
        id: i64,
        counts: &Counts,
        outcome: Outcome,
        message: Option<&str>,
    ) -> Result<()> {
        let now = now();
        let c = counts;
        self.with("finishing a run", true, |tx| {
            tx.execute(
                "UPDATE run SET ended = ?2, uploaded = ?3, downloaded = ?4, deleted_local = ?5,
                    deleted_remote = ?6, conflicts = ?7, skipped = ?8, errors = ?9,
                    bytes_up = ?10, bytes_down = ?11, outcome = ?12, message = ?13
                 WHERE id = ?1",
                params![
                    id,
                    now,
                    c.uploaded as i64,
                    c.downloaded as i64,
                    c.deleted_local as i64,
                    c.deleted_remote as i64,
                    c.conflicts as i64,
                    c.skipped as i64,
                    c.errors as i64,
                    c.bytes_up as i64,
                    c.bytes_down as i64,
                    outcome.as_str(),
                    message,
                ],
            )?;
            Ok(())
        })
    }

    /// The job's latest `limit` runs, newest first.
    pub fn runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.with("reading the run history", false, |tx| {
            tx.prepare(&format!(
                "SELECT id, job, started, ended, {COUNT_COLUMNS}, outcome, message
                     FROM run WHERE job = ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![job, limit as i64], |row| {
                Ok(RunRecord {
                    id: row.get(0)?,
                    job: row.get(1)?,
                    started: row.get(2)?,
                    ended: row.get(3)?,
                    counts: counts_at(row, 4)?,
                    outcome: row
                        .get::<_, Option<String>>(13)?
                        .and_then(|text| Outcome::parse(&text)),
                    message: row.get(14)?,
                })
            })?
            .collect()
        })
    }

    /// When the job's latest successful run ended (Unix seconds).
    pub fn last_success(&self, job: &str) -> Result<Option<i64>> {
        self.with("reading the last success", false, |tx| {
            tx.query_row(
                "SELECT MAX(ended) FROM run WHERE job = ?1 AND outcome = ?2",
                params![job, Outcome::Success.as_str()],
                |row| row.get(0),
            )
        })
    }

    /// Totals over the job's whole history: runs by outcome, and the summed counts.
    pub fn totals(&self, job: &str) -> Result<(Vec<(String, u64)>, Counts)> {
        self.with("summing the run history", false, |tx| {
            let by_outcome = tx
                .prepare(
                    "SELECT COALESCE(outcome, 'running'), COUNT(*) FROM run WHERE job = ?1
                     GROUP BY 1 ORDER BY 1",
                )?
                .query_map(params![job], |row| Ok((row.get(0)?, unsigned(row, 1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let sums: Vec<String> = COUNT_COLUMNS
                .split(", ")
                .map(|column| format!("COALESCE(SUM({}), 0)", column.trim()))
                .collect();
            let counts = tx.query_row(
                &format!("SELECT {} FROM run WHERE job = ?1", sums.join(", ")),
                params![job],
                |row| counts_at(row, 0),
            )?;
            Ok((by_outcome, counts))
        })
    }
}
