//! The run lock: one run per job at a time, with owner and heartbeat.

use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, now};

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
    /// `owner` must be unique per run (the same owner always wins). Owners of the form
    /// `pid <pid> on <host>` (as `sync::run` writes them) let a killed run's lock be taken over
    /// at once instead of after `stale_after`.
    pub fn try_lock(
        &self,
        job: &str,
        owner: &str,
        stale_after: Duration,
    ) -> Result<Option<LockHolder>> {
        let now = now();
        let stale_after = i64::try_from(stale_after.as_secs()).unwrap_or(i64::MAX);
        self.with("taking the run lock", true, |tx| {
            if let Some(holder) = holder(tx, job)? {
                let stale = now.saturating_sub(holder.heartbeat) > stale_after
                    || process_gone(&holder.owner);
                if holder.owner != owner && !stale {
                    return Ok(Some(holder));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO lock (job, owner, acquired, heartbeat)
                 VALUES (?1, ?2, ?3, ?3)",
                params![job, owner, now],
            )?;
            Ok(None)
        })
    }

    /// Refreshes the heartbeat; `false` when `owner` no longer holds the lock (taken over).
    pub fn heartbeat(&self, job: &str, owner: &str) -> Result<bool> {
        let now = now();
        self.with("refreshing the run lock", true, |tx| {
            let changed = tx.execute(
                "UPDATE lock SET heartbeat = ?3 WHERE job = ?1 AND owner = ?2",
                params![job, owner, now],
            )?;
            Ok(changed == 1)
        })
    }

    /// Releases the lock if `owner` still holds it; `false` when it did not.
    pub fn unlock(&self, job: &str, owner: &str) -> Result<bool> {
        self.with("releasing the run lock", true, |tx| {
            let changed = tx.execute(
                "DELETE FROM lock WHERE job = ?1 AND owner = ?2",
                params![job, owner],
            )?;
            Ok(changed == 1)
        })
    }

    /// Who holds the job's lock, if anyone (stale or not).
    pub fn lock_holder(&self, job: &str) -> Result<Option<LockHolder>> {
        self.with("reading the run lock", false, |tx| holder(tx, job))
    }
}

fn holder(tx: &Transaction, job: &str) -> rusqlite::Result<Option<LockHolder>> {
    tx.query_row(
        "SELECT owner, acquired, heartbeat FROM lock WHERE job = ?1",
        [job],
        |row| {
            Ok(LockHolder {
                owner: row.get(0)?,
                acquired: row.get(1)?,
                heartbeat: row.get(2)?,
            })
        },
    )
    .optional()
}

/// Whether `owner` (`pid <pid> on <host>`) names a process of this host that has exited. Any
/// other owner, another host, or a system without `/proc` counts as alive.
fn process_gone(owner: &str) -> bool {
    let Some((pid, host)) = owner
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on "))
    else {
        return false;
    };
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
