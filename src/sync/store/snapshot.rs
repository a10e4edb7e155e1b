//! The remote snapshot: the job's SharePoint folder as last reported, with its delta link.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, unsigned};
use crate::sync::RemoteItem;

/// The job's remote folder as last reported by SharePoint, with where to continue from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub drive_id: Option<String>,
    /// The item id of the job's folder.
    pub root_id: Option<String>,
    pub delta_link: Option<String>,
    /// When the last full enumeration finished (Unix seconds).
    pub full_scan_at: Option<i64>,
    /// Ordered by id.
    pub items: Vec<RemoteItem>,
}

/// One complete batch from SharePoint, applied with its delta link in one transaction.
/// Order: `replace_all`, then `removals`, then `upserts` (an id in both stays present).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteChange {
    /// Drop all items first: the batch is a full re-enumeration.
    pub replace_all: bool,
    pub upserts: Vec<RemoteItem>,
    /// Item ids.
    pub removals: Vec<String>,
    pub drive_id: String,
    pub root_id: String,
    /// Stored as given (`None` forgets the link).
    pub delta_link: Option<String>,
    /// Set when `Some`; kept otherwise.
    pub full_scan_at: Option<i64>,
}

impl Store {
    /// The job's snapshot and link, read together; empty before the first enumeration.
    pub fn snapshot(&self, job: &str) -> Result<Snapshot> {
        self.with("reading the remote snapshot", false, |tx| {
            let mut snapshot = tx
                .query_row(
                    "SELECT drive_id, root_id, delta_link, full_scan_at
                     FROM remote_snapshot WHERE job = ?1",
                    [job],
                    |row| {
                        Ok(Snapshot {
                            drive_id: row.get(0)?,
                            root_id: row.get(1)?,
                            delta_link: row.get(2)?,
                            full_scan_at: row.get(3)?,
                            items: Vec::new(),
                        })
                    },
                )
                .optional()?
                .unwrap_or_default();
            snapshot.items = tx
                .prepare(
                    "SELECT id, parent_id, name, is_dir, size, etag, ctag, hash, modified
                     FROM remote_item WHERE job = ?1 ORDER BY id",
                )?
                .query_map([job], |row| {
                    Ok(RemoteItem {
                        id: row.get(0)?,
                        parent_id: row.get(1)?,
                        name: row.get(2)?,
                        is_dir: row.get(3)?,
                        size: unsigned(row, 4)?,
                        etag: row.get(5)?,
                        ctag: row.get(6)?,
                        hash: row.get(7)?,
                        modified: row.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(snapshot)
        })
    }

    /// Applies a whole batch and its delta link together: after a crash either all of it is
    /// there or none of it.
    pub fn apply_remote(&self, job: &str, change: &RemoteChange) -> Result<()> {
        self.with("applying remote changes", true, |tx| {
            if change.replace_all {
                tx.execute("DELETE FROM remote_item WHERE job = ?1", [job])?;
            }
            remove_items(tx, job, &change.removals)?;
            put_items(tx, job, &change.upserts)?;
            tx.execute(
                "INSERT INTO remote_snapshot (job, drive_id, root_id, delta_link, full_scan_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (job) DO UPDATE SET drive_id = excluded.drive_id,
                    root_id = excluded.root_id, delta_link = excluded.delta_link,
                    full_scan_at = COALESCE(excluded.full_scan_at, full_scan_at)",
                params![
                    job,
                    change.drive_id,
                    change.root_id,
                    change.delta_link,
                    change.full_scan_at
                ],
            )?;
            Ok(())
        })
    }

    /// Records items the worker itself created or changed (the link stays as it is).
    pub fn upsert_remote(&self, job: &str, items: &[RemoteItem]) -> Result<()> {
        self.with("recording remote items", true, |tx| {
            put_items(tx, job, items)
        })
    }

    /// Forgets items the worker itself deleted.
    pub fn remove_remote(&self, job: &str, ids: &[String]) -> Result<()> {
        self.with("removing remote items", true, |tx| {
            remove_items(tx, job, ids)
        })
    }

    /// Forgets the snapshot and its link: the next run enumerates the folder again.
    pub fn reset_remote(&self, job: &str) -> Result<()> {
        self.with("resetting the remote snapshot", true, |tx| {
            tx.execute("DELETE FROM remote_item WHERE job = ?1", [job])?;
            tx.execute("DELETE FROM remote_snapshot WHERE job = ?1", [job])?;
            Ok(())
        })
    }
}

fn put_items(tx: &Transaction, job: &str, items: &[RemoteItem]) -> rusqlite::Result<()> {
    let mut put = tx.prepare(
        "INSERT OR REPLACE INTO remote_item
            (job, id, parent_id, name, is_dir, size, etag, ctag, hash, modified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for i in items {
        put.execute(params![
            job,
            i.id,
            i.parent_id,
            i.name,
            i.is_dir,
            i.size as i64,
            i.etag,
            i.ctag,
            i.hash,
            i.modified
        ])?;
    }
    Ok(())
}

fn remove_items(tx: &Transaction, job: &str, ids: &[String]) -> rusqlite::Result<()> {
    let mut remove = tx.prepare("DELETE FROM remote_item WHERE job = ?1 AND id = ?2")?;
    for id in ids {
        remove.execute(params![job, id])?;
    }
    Ok(())
}
