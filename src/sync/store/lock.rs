//! The run lock: one run per job at a time, with owner and heartbeat. Instances sharing a
//! store share the lock: a job runs on one of them at a time, and another takes it over once
//! the holder's heartbeat is older than the stale time, or at once when the holder handed it
//! over (an interrupted run: its heartbeat is set to 0). Times are the database's clock, so
//! hosts whose clocks differ agree on what is stale.

use std::time::Duration;

use sqlx::Row;

use super::{Result, Store, failed};

/// Who holds a job's run lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub owner: String,
    pub acquired: i64,
    pub heartbeat: i64,
}

impl Store {
    /// Takes the job's lock for `owner`: `Ok(None)` when taken (it was free, its heartbeat is
    /// older than `stale_after`, its holder is a process of this host that no longer exists,
    /// or `owner` already held it), otherwise the current holder.
    /// `owner` must be unique per run (the same owner always wins). On an SQLite store (one
    /// host), owners of the form `pid <pid> on <host>[ run <id>]` (as `sync::run` writes them)
    /// let a killed run's lock be taken over at once instead of after `stale_after`; a store
    /// shared by several hosts relies on the heartbeat alone (host names need not be unique).
    pub async fn try_lock(
        &self,
        job: &str,
        owner: &str,
        stale_after: Duration,
    ) -> Result<Option<LockHolder>> {
        let op = "taking the run lock";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        let take = async {
            // A write first: the holder's row stays locked (PostgreSQL), or the whole store
            // (SQLite), until this transaction ends, so two takers cannot both win.
            sqlx::query("UPDATE sync_locks SET heartbeat = heartbeat WHERE job = $1")
                .bind(job)
                .execute(&mut *tx)
                .await?;
            let now = self.state.clock_on(&mut *tx).await?;
            if let Some(holder) = holder(&mut tx, job).await? {
                if holder.owner != owner && !self.gone(&holder, now, stale_after) {
                    return Ok(Some(holder));
                }
                sqlx::query(
                    "UPDATE sync_locks SET owner = $2, acquired = $3, heartbeat = $3 WHERE job = $1",
                )
                .bind(job)
                .bind(owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                return Ok(None);
            }
            let inserted = sqlx::query(
                "INSERT INTO sync_locks (job, owner, acquired, heartbeat) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (job) DO NOTHING",
            )
            .bind(job)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                Ok(None)
            } else {
                // Another instance took it between the two statements.
                Ok(holder(&mut tx, job).await?)
            }
        };
        let answer = take.await.map_err(failed::<sqlx::Error>(op))?;
        tx.commit().await.map_err(failed(op))?;
        Ok(answer)
    }

    /// Refreshes the heartbeat; `false` when `owner` no longer holds the lock (taken over).
    pub async fn heartbeat(&self, job: &str, owner: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE sync_locks SET heartbeat = {} WHERE job = $1 AND owner = $2",
            self.state.clock_sql()
        );
        // Built from fixed texts only.
        let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job)
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(failed("refreshing the run lock"))?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Releases the lock if `owner` still holds it; `false` when it did not.
    pub async fn unlock(&self, job: &str, owner: &str) -> Result<bool> {
        let changed = sqlx::query("DELETE FROM sync_locks WHERE job = $1 AND owner = $2")
            .bind(job)
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(failed("releasing the run lock"))?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Hands the lock over if `owner` still holds it: another instance may take it at once
    /// (the run was interrupted; whoever takes it goes on from the stored state).
    pub async fn hand_over(&self, job: &str, owner: &str) -> Result<bool> {
        // The owner changes too, so that a heartbeat of the run already on its way changes
        // nothing.
        let changed = sqlx::query(
            "UPDATE sync_locks SET heartbeat = 0, owner = owner || ' (handed over)'
             WHERE job = $1 AND owner = $2",
        )
        .bind(job)
        .bind(owner)
        .execute(self.pool())
        .await
        .map_err(failed("handing the run lock over"))?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Whether the job's lock is held by a run that is gone: its heartbeat is older than
    /// `stale_after`, it was handed over, or (SQLite) its process has exited. A run started
    /// now takes it over.
    pub async fn lock_abandoned(&self, job: &str, stale_after: Duration) -> Result<bool> {
        let op = "reading the run lock";
        let mut conn = self.pool().acquire().await.map_err(failed(op))?;
        let Some(holder) = holder(&mut conn, job).await.map_err(failed(op))? else {
            return Ok(false);
        };
        let now = self.state.clock_on(&mut *conn).await.map_err(failed(op))?;
        Ok(self.gone(&holder, now, stale_after))
    }

    /// Whether `holder`'s run is gone at `now` (the database's clock): its heartbeat is older
    /// than `stale_after` (0 when handed over), or, on an SQLite store (one host), its process
    /// has exited.
    fn gone(&self, holder: &LockHolder, now: i64, stale_after: Duration) -> bool {
        let stale_after = i64::try_from(stale_after.as_secs()).unwrap_or(i64::MAX);
        let one_host = self.state.engine() == crate::state::Engine::Sqlite;
        now.saturating_sub(holder.heartbeat) > stale_after
            || (one_host && process_gone(&holder.owner))
    }

    /// Records `holder` as the job's lock holder (a dry run's copy of a held lock).
    pub(super) async fn hold_lock(&self, job: &str, holder: &LockHolder) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_locks (job, owner, acquired, heartbeat) VALUES ($1, $2, $3, $4)",
        )
        .bind(job)
        .bind(holder.owner.as_str())
        .bind(holder.acquired)
        .bind(holder.heartbeat)
        .execute(self.pool())
        .await
        .map_err(failed("copying the run lock"))?;
        Ok(())
    }

    /// Who holds the job's lock, if anyone (stale or not).
    pub async fn lock_holder(&self, job: &str) -> Result<Option<LockHolder>> {
        let op = "reading the run lock";
        let mut conn = self.pool().acquire().await.map_err(failed(op))?;
        holder(&mut conn, job).await.map_err(failed(op))
    }
}

async fn holder(
    conn: &mut sqlx::AnyConnection,
    job: &str,
) -> Result<Option<LockHolder>, sqlx::Error> {
    sqlx::query("SELECT owner, acquired, heartbeat FROM sync_locks WHERE job = $1")
        .bind(job)
        .fetch_optional(conn)
        .await?
        .map(|row| {
            Ok(LockHolder {
                owner: row.try_get("owner")?,
                acquired: row.try_get("acquired")?,
                heartbeat: row.try_get("heartbeat")?,
            })
        })
        .transpose()
}

/// Whether `owner` (`[instance <id> ]pid <pid> on <host>[ run <id>]`) names a process of this host that has
/// exited. Any other owner, another host, or a system without `/proc` counts as alive.
fn process_gone(owner: &str) -> bool {
    let owner = match owner.strip_prefix("instance ") {
        Some(rest) => rest.split_once(' ').map_or(rest, |(_, rest)| rest),
        None => owner,
    };
    let Some((pid, host)) = owner
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on "))
    else {
        return false;
    };
    let host = host.split_once(" run ").map_or(host, |(host, _)| host);
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let here = rustix::system::uname();
    if host != here.nodename().to_string_lossy() || pid == std::process::id() {
        return false;
    }
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}
