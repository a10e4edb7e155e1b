//! The `<state dir>/sync.db` of earlier versions (SQLite, schema version 1): imported into the
//! state store once, in one transaction, then left as `sync.db.imported`. Run locks are not
//! carried over (their runs ended with the old process).

use std::path::Path;

use rusqlite::OpenFlags;

use super::baseline::put_baseline_in;
use super::history::bind_counts;
use super::snapshot::apply_in;
use super::{Error, Result, Store, failed};
use crate::sync::store::{RemoteChange, Snapshot};
use crate::sync::{Baseline, Counts, Outcome, Problem, RemoteItem};

/// One job's state as the old file holds it.
#[derive(Default)]
struct Job {
    baseline: Vec<Baseline>,
    snapshot: Snapshot,
    runs: Vec<super::RunRecord>,
    problems: Vec<(Problem, i64, i64)>,
}

/// Imports `state_dir/sync.db`, if there is one, then renames it (and its WAL) `.imported`.
pub async fn import(store: &Store, state_dir: &Path) -> Result<()> {
    let file = state_dir.join("sync.db");
    if !file.exists() {
        return Ok(());
    }
    let jobs = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || read(&file))
            .await
            .map_err(|e| failed("reading sync.db")(std::io::Error::other(e)))??
    };
    let dir = crate::state::dir_id(state_dir).map_err(failed("importing sync.db"))?;
    if let Some(skipped) = store.write_imported(&jobs, &dir).await? {
        tracing::info!(file = %file.display(), jobs = jobs.len() - skipped.len(), "imported the sync state into the state store");
        for job in skipped {
            tracing::warn!(job, file = %file.display(), "the sync state of this job in the file was not imported: the store holds the job's state already (from another instance)");
        }
    }
    crate::state::keep_imported(&file, true).map_err(failed("renaming sync.db"))?;
    Ok(())
}

impl Store {
    /// Writes every job's state in one transaction, unless the file of state directory `dir`
    /// was imported before (`None` then, and nothing written). A job the store holds state of
    /// already (another instance's) is left out: answers those.
    async fn write_imported(
        &self,
        jobs: &[(String, Job)],
        dir: &str,
    ) -> Result<Option<Vec<String>>> {
        let op = "importing sync.db";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        let first = crate::state::mark_imported(&mut tx, "sync", dir)
            .await
            .map_err(failed(op))?;
        if !first {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        for (name, job) in jobs {
            let held = sqlx::query(
                "SELECT job FROM sync_baseline WHERE job = $1
                 UNION SELECT job FROM sync_snapshots WHERE job = $1
                 UNION SELECT job FROM sync_runs WHERE job = $1",
            )
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed(op))?
            .is_some();
            if held {
                skipped.push(name.clone());
                continue;
            }
            write_job(&mut tx, name, job).await.map_err(failed(op))?;
        }
        tx.commit().await.map_err(failed(op))?;
        Ok(Some(skipped))
    }
}

async fn write_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    job: &Job,
) -> Result<(), sqlx::Error> {
    put_baseline_in(tx, name, &job.baseline).await?;
    let snapshot = &job.snapshot;
    if let (Some(drive_id), Some(root_id)) = (&snapshot.drive_id, &snapshot.root_id) {
        let change = RemoteChange {
            replace_all: true,
            upserts: snapshot.items.clone(),
            removals: Vec::new(),
            drive_id: drive_id.clone(),
            root_id: root_id.clone(),
            delta_link: snapshot.delta_link.clone(),
            full_scan_at: snapshot.full_scan_at,
        };
        apply_in(tx, name, &change).await?;
    }
    for run in &job.runs {
        let query = sqlx::query(
            "INSERT INTO sync_runs (job, id, started, ended, uploaded, downloaded, deleted_local,
                deleted_remote, conflicts, skipped, errors, bytes_up, bytes_down, outcome, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(name)
        .bind(run.id)
        .bind(run.started)
        .bind(run.ended);
        bind_counts(query, &run.counts)
            .bind(run.outcome.map(Outcome::as_str))
            .bind(run.message.as_deref())
            .execute(&mut **tx)
            .await?;
    }
    for (p, first, last) in &job.problems {
        sqlx::query(
            "INSERT INTO sync_problems (job, side, path, reason, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(name)
        .bind(p.side)
        .bind(p.path.as_str())
        .bind(p.reason.as_str())
        .bind(*first)
        .bind(*last)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Every job's state in the old file, by job.
fn read(file: &Path) -> Result<Vec<(String, Job)>> {
    let sql = |e: rusqlite::Error| Error {
        op: "reading sync.db",
        source: crate::state::Error::Database(format!("{}: {e}", file.display())),
    };
    let conn = rusqlite::Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql)?;
    if version != 1 {
        return Err(Error {
            op: "reading sync.db",
            source: crate::state::Error::Refused(format!(
                "{}: schema version {version}, not one this spgate imports",
                file.display()
            )),
        });
    }
    let mut jobs: std::collections::BTreeMap<String, Job> = Default::default();
    let size = |n: i64| u64::try_from(n).unwrap_or(0);
    {
        let mut query = conn
            .prepare(
                "SELECT job, path, is_dir, remote_id, remote_etag, remote_ctag, remote_size,
                        remote_hash, remote_modified, local_size, local_modified, local_hash
                 FROM baseline",
            )
            .map_err(sql)?;
        let mut rows = query.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let job: String = row.get(0).map_err(sql)?;
            jobs.entry(job).or_default().baseline.push(Baseline {
                path: row.get(1).map_err(sql)?,
                is_dir: row.get(2).map_err(sql)?,
                remote_id: row.get(3).map_err(sql)?,
                remote_etag: row.get(4).map_err(sql)?,
                remote_ctag: row.get(5).map_err(sql)?,
                remote_size: size(row.get(6).map_err(sql)?),
                remote_hash: row.get(7).map_err(sql)?,
                remote_modified: row.get(8).map_err(sql)?,
                local_size: size(row.get(9).map_err(sql)?),
                local_modified: row.get(10).map_err(sql)?,
                local_hash: row.get(11).map_err(sql)?,
            });
        }
    }
    {
        let mut query = conn
            .prepare("SELECT job, drive_id, root_id, delta_link, full_scan_at FROM remote_snapshot")
            .map_err(sql)?;
        let mut rows = query.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let job: String = row.get(0).map_err(sql)?;
            let snapshot = &mut jobs.entry(job).or_default().snapshot;
            snapshot.drive_id = row.get(1).map_err(sql)?;
            snapshot.root_id = row.get(2).map_err(sql)?;
            snapshot.delta_link = row.get(3).map_err(sql)?;
            snapshot.full_scan_at = row.get(4).map_err(sql)?;
        }
    }
    {
        let mut query = conn
            .prepare(
                "SELECT job, id, parent_id, name, is_dir, size, etag, ctag, hash, modified
                 FROM remote_item",
            )
            .map_err(sql)?;
        let mut rows = query.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let job: String = row.get(0).map_err(sql)?;
            jobs.entry(job)
                .or_default()
                .snapshot
                .items
                .push(RemoteItem {
                    id: row.get(1).map_err(sql)?,
                    parent_id: row.get(2).map_err(sql)?,
                    name: row.get(3).map_err(sql)?,
                    is_dir: row.get(4).map_err(sql)?,
                    size: size(row.get(5).map_err(sql)?),
                    etag: row.get(6).map_err(sql)?,
                    ctag: row.get(7).map_err(sql)?,
                    hash: row.get(8).map_err(sql)?,
                    modified: row.get(9).map_err(sql)?,
                });
        }
    }
    {
        let mut query = conn
            .prepare(
                "SELECT job, id, started, ended, uploaded, downloaded, deleted_local,
                        deleted_remote, conflicts, skipped, errors, bytes_up, bytes_down,
                        outcome, message
                 FROM run ORDER BY id",
            )
            .map_err(sql)?;
        let mut rows = query.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let job: String = row.get(0).map_err(sql)?;
            let n = |i: usize| row.get::<_, i64>(i).map(size);
            let counts = Counts {
                uploaded: n(4).map_err(sql)?,
                downloaded: n(5).map_err(sql)?,
                deleted_local: n(6).map_err(sql)?,
                deleted_remote: n(7).map_err(sql)?,
                conflicts: n(8).map_err(sql)?,
                skipped: n(9).map_err(sql)?,
                errors: n(10).map_err(sql)?,
                bytes_up: n(11).map_err(sql)?,
                bytes_down: n(12).map_err(sql)?,
            };
            let outcome: Option<String> = row.get(13).map_err(sql)?;
            let record = super::RunRecord {
                id: row.get(1).map_err(sql)?,
                job: job.clone(),
                started: row.get(2).map_err(sql)?,
                ended: row.get(3).map_err(sql)?,
                counts,
                outcome: outcome.as_deref().and_then(Outcome::parse),
                message: row.get(14).map_err(sql)?,
            };
            jobs.entry(job).or_default().runs.push(record);
        }
    }
    {
        let mut query = conn
            .prepare("SELECT job, side, path, reason, first_seen, last_seen FROM problem")
            .map_err(sql)?;
        let mut rows = query.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let job: String = row.get(0).map_err(sql)?;
            let side = match row.get::<_, String>(1).map_err(sql)?.as_str() {
                "local" => "local",
                _ => "remote",
            };
            let problem = Problem {
                side,
                path: row.get(2).map_err(sql)?,
                reason: row.get(3).map_err(sql)?,
            };
            let seen = (row.get(4).map_err(sql)?, row.get(5).map_err(sql)?);
            jobs.entry(job)
                .or_default()
                .problems
                .push((problem, seen.0, seen.1));
        }
    }
    // Closing checkpoints the WAL into the file, so that the file alone holds everything.
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(sql)?;
    drop(conn);
    Ok(jobs.into_iter().collect())
}
