//! The baseline: one row per synced path, as both sides were when it was last synced.

use std::collections::HashMap;

use sqlx::Row;

use super::{ROWS_PER_STATEMENT, Result, Store, delete_sql, failed, signed, unsigned, upsert_sql};
use crate::sync::{Baseline, key};

const COLUMNS: &[&str] = &[
    "job",
    "key",
    "path",
    "is_dir",
    "remote_id",
    "remote_etag",
    "remote_ctag",
    "remote_size",
    "remote_hash",
    "remote_modified",
    "local_size",
    "local_modified",
    "local_hash",
];

impl Store {
    /// The job's baseline, ordered by path.
    pub async fn baseline(&self, job: &str) -> Result<Vec<Baseline>> {
        let op = "reading the baseline";
        let rows = sqlx::query(
            "SELECT path, is_dir, remote_id, remote_etag, remote_ctag, remote_size, remote_hash,
                    remote_modified, local_size, local_modified, local_hash
             FROM sync_baseline WHERE job = $1 ORDER BY path",
        )
        .bind(job)
        .fetch_all(self.pool())
        .await
        .map_err(failed(op))?;
        rows.iter()
            .map(|row| {
                Ok(Baseline {
                    path: row.try_get("path")?,
                    is_dir: row.try_get::<i64, _>("is_dir")? != 0,
                    remote_id: row.try_get("remote_id")?,
                    remote_etag: row.try_get("remote_etag")?,
                    remote_ctag: row.try_get("remote_ctag")?,
                    remote_size: unsigned(row.try_get("remote_size")?),
                    remote_hash: row.try_get("remote_hash")?,
                    remote_modified: row.try_get("remote_modified")?,
                    local_size: unsigned(row.try_get("local_size")?),
                    local_modified: row.try_get("local_modified")?,
                    local_hash: row.try_get("local_hash")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed(op))
    }

    /// Inserts or replaces rows by [`key`] of their path (a new case of the same name replaces
    /// the old row; of two rows with one key, the later one counts).
    pub async fn put_baseline(&self, job: &str, rows: &[Baseline]) -> Result<()> {
        let op = "recording baseline rows";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        put_baseline_in(&mut tx, job, rows)
            .await
            .map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))
    }

    /// Removes the rows of `paths` (matched by [`key`]).
    pub async fn remove_baseline(&self, job: &str, paths: &[String]) -> Result<()> {
        let keys: Vec<String> = paths.iter().map(|p| key(p)).collect();
        self.delete_rows("sync_baseline", "key", job, &keys, "removing baseline rows")
            .await
    }

    /// Forgets the job's whole baseline (an operator's rebuild).
    pub async fn clear_baseline(&self, job: &str) -> Result<()> {
        sqlx::query("DELETE FROM sync_baseline WHERE job = $1")
            .bind(job)
            .execute(self.pool())
            .await
            .map_err(failed("clearing the baseline"))?;
        Ok(())
    }

    /// Deletes the rows of `job` whose `column` is one of `values`, in one transaction.
    pub(super) async fn delete_rows(
        &self,
        table: &str,
        column: &str,
        job: &str,
        values: &[String],
        op: &'static str,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        delete_in(&mut tx, table, column, job, values)
            .await
            .map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))
    }
}

/// Deletes the rows of `job` whose `column` is one of `values`, within `tx`.
pub(super) async fn delete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    column: &str,
    job: &str,
    values: &[String],
) -> Result<(), sqlx::Error> {
    for chunk in values.chunks(ROWS_PER_STATEMENT) {
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(delete_sql(table, column, chunk.len()))).bind(job);
        for value in chunk {
            query = query.bind(value.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts or replaces baseline rows within `tx` (see [`Store::put_baseline`]).
pub(super) async fn put_baseline_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &str,
    rows: &[Baseline],
) -> Result<(), sqlx::Error> {
    let mut by_key: HashMap<String, &Baseline> = HashMap::new();
    for row in rows {
        by_key.insert(key(&row.path), row);
    }
    let rows: Vec<(String, &Baseline)> = by_key.into_iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = upsert_sql("sync_baseline", COLUMNS, &["job", "key"], chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (key, b) in chunk {
            query = query
                .bind(job)
                .bind(key.as_str())
                .bind(b.path.as_str())
                .bind(i64::from(b.is_dir))
                .bind(b.remote_id.as_str())
                .bind(b.remote_etag.as_deref())
                .bind(b.remote_ctag.as_deref())
                .bind(signed(b.remote_size))
                .bind(b.remote_hash.as_deref())
                .bind(b.remote_modified)
                .bind(signed(b.local_size))
                .bind(b.local_modified)
                .bind(b.local_hash.as_deref());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
