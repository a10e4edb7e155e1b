//! The run history.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, failed, now, signed, unsigned};
use crate::sync::{Counts, Outcome};

/// One run of a job. `ended` is `None` while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The job's runs count from 1.
    pub id: i64,
    pub job: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub counts: Counts,
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
}

/// The run table's count columns, in the order of [`Counts`]' fields.
const COUNT_COLUMNS: [&str; 9] = [
    "uploaded",
    "downloaded",
    "deleted_local",
    "deleted_remote",
    "conflicts",
    "skipped",
    "errors",
    "bytes_up",
    "bytes_down",
];

/// The counts of `row`, whose count columns are named `prefix` + [`COUNT_COLUMNS`].
fn counts(row: &AnyRow, prefix: &str) -> Result<Counts, sqlx::Error> {
    let mut n = [0u64; 9];
    for (slot, column) in n.iter_mut().zip(COUNT_COLUMNS) {
        *slot = unsigned(row.try_get(format!("{prefix}{column}").as_str())?);
    }
    Ok(Counts {
        uploaded: n[0],
        downloaded: n[1],
        deleted_local: n[2],
        deleted_remote: n[3],
        conflicts: n[4],
        skipped: n[5],
        errors: n[6],
        bytes_up: n[7],
        bytes_down: n[8],
    })
}

/// Binds `c` to the next nine parameters of `query`, in [`COUNT_COLUMNS`] order.
pub(super) fn bind_counts<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &Counts,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for n in [
        c.uploaded,
        c.downloaded,
        c.deleted_local,
        c.deleted_remote,
        c.conflicts,
        c.skipped,
        c.errors,
        c.bytes_up,
        c.bytes_down,
    ] {
        query = query.bind(signed(n));
    }
    query
}

impl Store {
    /// Records a new run and returns its id. Runs of the job that never finished (the process
    /// stopped) are closed first as `interrupted`, ended at their start. Call with the job's
    /// lock held.
    pub async fn start_run(&self, job: &str) -> Result<i64> {
        let op = "starting a run";
        let now = now();
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        let write = async {
            sqlx::query(
                "UPDATE sync_runs SET ended = started, outcome = $2,
                    message = COALESCE(message, 'the process stopped before the run finished')
                 WHERE job = $1 AND ended IS NULL",
            )
            .bind(job)
            .bind(Outcome::Interrupted.as_str())
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(
                "INSERT INTO sync_runs (job, id, started)
                 SELECT $1, COALESCE(MAX(id), 0) + 1, $2 FROM sync_runs WHERE job = $1
                 RETURNING id",
            )
            .bind(job)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            row.try_get::<i64, _>("id")
        };
        let id = write.await.map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))?;
        Ok(id)
    }

    pub async fn finish_run(
        &self,
        job: &str,
        id: i64,
        counts: &Counts,
        outcome: Outcome,
        message: Option<&str>,
    ) -> Result<()> {
        let query = sqlx::query(
            "UPDATE sync_runs SET ended = $3, uploaded = $4, downloaded = $5, deleted_local = $6,
                deleted_remote = $7, conflicts = $8, skipped = $9, errors = $10,
                bytes_up = $11, bytes_down = $12, outcome = $13, message = $14
             WHERE job = $1 AND id = $2",
        )
        .bind(job)
        .bind(id)
        .bind(now());
        bind_counts(query, counts)
            .bind(outcome.as_str())
            .bind(message)
            .execute(self.pool())
            .await
            .map_err(failed("finishing a run"))?;
        Ok(())
    }

    /// The job's latest `limit` runs, newest first.
    pub async fn runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let op = "reading the run history";
        let sql = format!(
            "SELECT id, job, started, ended, {}, outcome, message
             FROM sync_runs WHERE job = $1 ORDER BY id DESC LIMIT $2",
            COUNT_COLUMNS.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await
            .map_err(failed(op))?
            .iter()
            .map(|row| {
                Ok(RunRecord {
                    id: row.try_get("id")?,
                    job: row.try_get("job")?,
                    started: row.try_get("started")?,
                    ended: row.try_get("ended")?,
                    counts: counts(row, "")?,
                    outcome: row
                        .try_get::<Option<String>, _>("outcome")?
                        .and_then(|text| Outcome::parse(&text)),
                    message: row.try_get("message")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed(op))
    }

    /// When the job's latest successful run ended (Unix seconds).
    pub async fn last_success(&self, job: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(ended) AS ended FROM sync_runs WHERE job = $1 AND outcome = $2",
        )
        .bind(job)
        .bind(Outcome::Success.as_str())
        .fetch_one(self.pool())
        .await
        .map_err(failed("reading the last success"))?;
        row.try_get("ended")
            .map_err(failed("reading the last success"))
    }

    /// Totals over the job's whole history: runs by outcome, and the summed counts.
    pub async fn totals(&self, job: &str) -> Result<(Vec<(String, u64)>, Counts)> {
        let op = "summing the run history";
        let by_outcome = sqlx::query(
            "SELECT COALESCE(outcome, 'running') AS outcome, COUNT(*) AS runs FROM sync_runs
             WHERE job = $1 GROUP BY COALESCE(outcome, 'running') ORDER BY 1",
        )
        .bind(job)
        .fetch_all(self.pool())
        .await
        .map_err(failed(op))?
        .iter()
        .map(|row| Ok((row.try_get("outcome")?, unsigned(row.try_get("runs")?))))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(failed(op))?;
        let sums: Vec<String> = COUNT_COLUMNS
            .iter()
            .map(|column| format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS sum_{column}"))
            .collect();
        let sql = format!("SELECT {} FROM sync_runs WHERE job = $1", sums.join(", "));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job)
            .fetch_one(self.pool())
            .await
            .map_err(failed(op))?;
        let counts = counts(&row, "sum_").map_err(failed(op))?;
        Ok((by_outcome, counts))
    }
}
