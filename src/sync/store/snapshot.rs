//! The remote snapshot: the job's SharePoint folder as last reported, with its delta link.

use std::collections::HashMap;

use sqlx::Row;

use super::baseline::delete_in;
use super::{ROWS_PER_STATEMENT, Result, Store, failed, signed, unsigned, upsert_sql};
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

const COLUMNS: &[&str] = &[
    "job",
    "id",
    "parent_id",
    "name",
    "is_dir",
    "size",
    "etag",
    "ctag",
    "hash",
    "modified",
];

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Store {
    /// The job's snapshot and link, read together; empty before the first enumeration.
    pub async fn snapshot(&self, job: &str) -> Result<Snapshot> {
        let op = "reading the remote snapshot";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        let read = async {
            let mut snapshot = match sqlx::query(
                "SELECT drive_id, root_id, delta_link, full_scan_at
                 FROM sync_snapshots WHERE job = $1",
            )
            .bind(job)
            .fetch_optional(&mut *tx)
            .await?
            {
                Some(row) => Snapshot {
                    drive_id: row.try_get("drive_id")?,
                    root_id: row.try_get("root_id")?,
                    delta_link: row.try_get("delta_link")?,
                    full_scan_at: row.try_get("full_scan_at")?,
                    items: Vec::new(),
                },
                None => Snapshot::default(),
            };
            snapshot.items = sqlx::query(
                "SELECT id, parent_id, name, is_dir, size, etag, ctag, hash, modified
                 FROM sync_remote_items WHERE job = $1 ORDER BY id",
            )
            .bind(job)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(RemoteItem {
                    id: row.try_get("id")?,
                    parent_id: row.try_get("parent_id")?,
                    name: row.try_get("name")?,
                    is_dir: row.try_get::<i64, _>("is_dir")? != 0,
                    size: unsigned(row.try_get("size")?),
                    etag: row.try_get("etag")?,
                    ctag: row.try_get("ctag")?,
                    hash: row.try_get("hash")?,
                    modified: row.try_get("modified")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
            Ok::<_, sqlx::Error>(snapshot)
        };
        let snapshot = read.await.map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))?;
        Ok(snapshot)
    }

    /// Applies a whole batch and its delta link together: after a crash either all of it is
    /// there or none of it.
    pub async fn apply_remote(&self, job: &str, change: &RemoteChange) -> Result<()> {
        let op = "applying remote changes";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        apply_in(&mut tx, job, change).await.map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))
    }

    /// Records items the worker itself created or changed (the link stays as it is).
    pub async fn upsert_remote(&self, job: &str, items: &[RemoteItem]) -> Result<()> {
        let op = "recording remote items";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        put_items(&mut tx, job, items).await.map_err(failed(op))?;
        tx.commit().await.map_err(failed(op))
    }

    /// Forgets items the worker itself deleted.
    pub async fn remove_remote(&self, job: &str, ids: &[String]) -> Result<()> {
        self.delete_rows("sync_remote_items", "id", job, ids, "removing remote items")
            .await
    }

    /// Forgets the snapshot and its link: the next run enumerates the folder again.
    pub async fn reset_remote(&self, job: &str) -> Result<()> {
        let op = "resetting the remote snapshot";
        let mut tx = self.pool().begin().await.map_err(failed(op))?;
        for sql in [
            "DELETE FROM sync_remote_items WHERE job = $1",
            "DELETE FROM sync_snapshots WHERE job = $1",
        ] {
            sqlx::query(sql)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(failed(op))?;
        }
        tx.commit().await.map_err(failed(op))
    }
}

/// Applies `change` within `tx` (see [`Store::apply_remote`]).
pub(super) async fn apply_in(
    tx: &mut Tx<'_>,
    job: &str,
    change: &RemoteChange,
) -> Result<(), sqlx::Error> {
    if change.replace_all {
        sqlx::query("DELETE FROM sync_remote_items WHERE job = $1")
            .bind(job)
            .execute(&mut **tx)
            .await?;
    }
    delete_in(tx, "sync_remote_items", "id", job, &change.removals).await?;
    put_items(tx, job, &change.upserts).await?;
    sqlx::query(
        "INSERT INTO sync_snapshots (job, drive_id, root_id, delta_link, full_scan_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (job) DO UPDATE SET drive_id = excluded.drive_id,
            root_id = excluded.root_id, delta_link = excluded.delta_link,
            full_scan_at = COALESCE(excluded.full_scan_at, sync_snapshots.full_scan_at)",
    )
    .bind(job)
    .bind(change.drive_id.as_str())
    .bind(change.root_id.as_str())
    .bind(change.delta_link.as_deref())
    .bind(change.full_scan_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts or replaces `items` (of one id, the later one counts).
async fn put_items(tx: &mut Tx<'_>, job: &str, items: &[RemoteItem]) -> Result<(), sqlx::Error> {
    let mut by_id: HashMap<&str, &RemoteItem> = HashMap::new();
    for item in items {
        by_id.insert(&item.id, item);
    }
    let items: Vec<&RemoteItem> = by_id.into_values().collect();
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let sql = upsert_sql("sync_remote_items", COLUMNS, &["job", "id"], chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            query = query
                .bind(job)
                .bind(i.id.as_str())
                .bind(i.parent_id.as_str())
                .bind(i.name.as_str())
                .bind(i64::from(i.is_dir))
                .bind(signed(i.size))
                .bind(i.etag.as_deref())
                .bind(i.ctag.as_deref())
                .bind(i.hash.as_deref())
                .bind(i.modified);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
