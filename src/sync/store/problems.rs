//! Open problems: paths a run skipped, repeated each run until fixed.

use std::collections::HashSet;

use sqlx::Row;

use super::{Result, Store, failed, now};
use crate::sync::Problem;

impl Store {
    /// Replaces the job's open problems; one that persists (same side and path) keeps its
    /// `first_seen`.
    pub async fn set_problems(&self, job: &str, problems: &[Problem]) -> Result<()> {
        let op = "recording problems";
        let now = now();
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        let write = async {
            // A write first: the transaction holds the write lock (SQLite) from here on.
            sqlx::query("UPDATE sync_problems SET last_seen = last_seen WHERE job = $1")
                .bind(job)
                .execute(&mut *tx)
                .await?;
            let mut gone: HashSet<(String, String)> =
                sqlx::query("SELECT side, path FROM sync_problems WHERE job = $1")
                    .bind(job)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("side")?, row.try_get("path")?)))
                    .collect::<Result<_, sqlx::Error>>()?;
            for p in problems {
                gone.remove(&(p.side.to_owned(), p.path.clone()));
                sqlx::query(
                    "INSERT INTO sync_problems (job, side, path, reason, first_seen, last_seen)
                     VALUES ($1, $2, $3, $4, $5, $5)
                     ON CONFLICT (job, side, path) DO UPDATE SET reason = excluded.reason,
                        last_seen = excluded.last_seen",
                )
                .bind(job)
                .bind(p.side)
                .bind(p.path.as_str())
                .bind(p.reason.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for (side, path) in &gone {
                sqlx::query("DELETE FROM sync_problems WHERE job = $1 AND side = $2 AND path = $3")
                    .bind(job)
                    .bind(side.as_str())
                    .bind(path.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        };
        write.await.map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))
    }

    /// The job's open problems with when each was first and last seen, by side and path.
    pub async fn problems(&self, job: &str) -> Result<Vec<(Problem, i64, i64)>> {
        let op = "reading problems";
        sqlx::query(
            "SELECT side, path, reason, first_seen, last_seen FROM sync_problems
             WHERE job = $1 ORDER BY side, path",
        )
        .bind(job)
        .fetch_all(self.pool())
        .await
        .map_err(failed(op))?
        .iter()
        .map(|row| {
            let side = match row.try_get::<String, _>("side")?.as_str() {
                "local" => "local",
                "remote" => "remote",
                other => {
                    return Err(sqlx::Error::Decode(
                        format!("unknown problem side '{other}'").into(),
                    ));
                }
            };
            let problem = Problem {
                side,
                path: row.try_get("path")?,
                reason: row.try_get("reason")?,
            };
            Ok((
                problem,
                row.try_get("first_seen")?,
                row.try_get("last_seen")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(failed(op))
    }
}
