//! The queue's durable record: one row per queued upload in the state store's `upload_queue`,
//! under the queue's owner (the state directory whose spool holds the files). The upload
//! session's URL is sealed (it carries its own credentials).
//!
//! Changes are written as [`Op`]s, in the order they were made, each batch in one transaction:
//! a row committed before the client is answered survives a crash. `spgate queue retry|discard`
//! bumps the store's queue counter, which the server watches to take such changes up.
//!
//! Earlier versions kept the queue in `<state dir>/queue/queue.db` (SQLite): [`import`] moves
//! its rows into the store once and leaves it as `queue.db.imported`.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Row;
use crate::state::{Counter, Store};

/// A change to the record.
#[derive(Clone)]
pub(super) enum Op {
    /// Insert or replace the whole row.
    Put(Box<Row>),
    /// Delete the row; its file (relative to the queue directory) is removed once that is
    /// committed.
    Delete(i64, String),
}

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.to_rfc3339())
}

/// Where a row's upload URL is sealed.
fn url_place(owner: &str, id: i64) -> String {
    format!("upload_queue/{owner}/{id}/upload_url")
}

fn row(store: &Store, owner: &str, r: &AnyRow) -> crate::state::Result<Row> {
    let id: i64 = r.try_get("id")?;
    let origin: String = r.try_get("origin")?;
    // A URL that does not open (sealed under another key) is forgotten: the upload starts a
    // new session.
    let upload_url = r
        .try_get::<Option<String>, _>("upload_url")?
        .and_then(|sealed| match store.sealer().open(&url_place(owner, id), &sealed) {
            Ok(url) => Some(url.expose().to_string()),
            Err(e) => {
                tracing::warn!(id, error = %crate::logging::chain(&e), "upload queue: an upload session's URL does not open; a new session is started");
                None
            }
        });
    Ok(Row {
        id,
        connection: r.try_get("connection")?,
        path: r.try_get("path")?,
        target: r.try_get("target")?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        modified: time(r.try_get("modified")?),
        replace: r.try_get::<i64, _>("replace_existing")? != 0,
        file: r.try_get("file")?,
        upload_url,
        uploaded: r.try_get::<i64, _>("uploaded")? != 0,
        failed: r.try_get("failed")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        queued_at: time(r.try_get("queued_at")?).unwrap_or_else(Utc::now),
        origin: serde_json::from_str(&origin).unwrap_or_default(),
    })
}

/// The owner's rows, by id.
pub(super) async fn load(store: &Store, owner: &str) -> crate::state::Result<Vec<Row>> {
    sqlx::query(
        "SELECT id, connection, path, target, size, modified, replace_existing, file, upload_url,
                uploaded, failed, attempts, queued_at, origin
         FROM upload_queue WHERE owner = $1 ORDER BY id",
    )
    .bind(owner)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| row(store, owner, r))
    .collect()
}

/// Where the owner's next id is kept: ids are never reused, even after the newest rows went.
fn next_id_key(owner: &str) -> String {
    format!("queue_next_id:{owner}")
}

/// The owner's next id as last written (0: none yet).
pub(super) async fn next_id(store: &Store, owner: &str) -> crate::state::Result<i64> {
    let row = sqlx::query("SELECT value FROM spgate_meta WHERE key = $1")
        .bind(next_id_key(owner))
        .fetch_optional(store.pool())
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("value"))
        .transpose()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Writes `ops` in order, with the owner's `next_id`, in one transaction; with `announce`,
/// tells the server holding the queue (the store's queue counter).
pub(super) async fn write(
    store: &Store,
    owner: &str,
    ops: &[Op],
    next_id: i64,
    announce: bool,
) -> crate::state::Result<()> {
    let mut tx = store.pool().begin().await?;
    write_in(store, &mut tx, owner, ops).await?;
    sqlx::query(
        "INSERT INTO spgate_meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(next_id_key(owner))
    .bind(next_id.to_string())
    .execute(&mut *tx)
    .await?;
    if announce {
        crate::state::bump(&mut tx, Counter::Queue).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes `ops` in order within `tx`.
async fn write_in(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    owner: &str,
    ops: &[Op],
) -> crate::state::Result<()> {
    for op in ops {
        match op {
            Op::Put(r) => {
                let url = r
                    .upload_url
                    .as_deref()
                    .map(|url| store.sealer().seal(&url_place(owner, r.id), url));
                sqlx::query(
                    "INSERT INTO upload_queue (owner, id, connection, path, target, size, modified,
                        replace_existing, file, upload_url, uploaded, failed, attempts, queued_at,
                        origin)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                     ON CONFLICT (owner, id) DO UPDATE SET path = excluded.path,
                        target = excluded.target, modified = excluded.modified,
                        file = excluded.file, upload_url = excluded.upload_url,
                        uploaded = excluded.uploaded, failed = excluded.failed,
                        attempts = excluded.attempts, queued_at = excluded.queued_at,
                        origin = excluded.origin",
                )
                .bind(owner)
                .bind(r.id)
                .bind(r.connection.as_str())
                .bind(r.path.as_str())
                .bind(r.target.as_deref())
                .bind(i64::try_from(r.size).unwrap_or(i64::MAX))
                .bind(text(r.modified))
                .bind(i64::from(r.replace))
                .bind(r.file.as_str())
                .bind(url)
                .bind(i64::from(r.uploaded))
                .bind(r.failed.as_deref())
                .bind(i64::from(r.attempts))
                .bind(r.queued_at.to_rfc3339())
                .bind(serde_json::to_string(&r.origin).unwrap_or_default())
                .execute(&mut **tx)
                .await?;
            }
            Op::Delete(id, _) => {
                sqlx::query("DELETE FROM upload_queue WHERE owner = $1 AND id = $2")
                    .bind(owner)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Imports `dir/queue.db` of an earlier version (its rows under `owner`) in one transaction,
/// then leaves it (and its WAL) as `.imported`.
pub(super) async fn import(store: &Store, owner: &str, dir: &Path) -> std::io::Result<()> {
    let file = dir.join("queue.db");
    if !file.exists() {
        return Ok(());
    }
    let rows = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || read_old(&file))
            .await
            .map_err(std::io::Error::other)??
    };
    // The mark and the rows in one transaction: the spool's files are kept only while a row
    // names them, so rows must never go missing half-way.
    let imported = async {
        let mut tx = store.pool().begin().await?;
        let first = crate::state::mark_imported(&mut tx, "queue", owner).await?;
        if first {
            let ops: Vec<Op> = rows.iter().map(|r| Op::Put(Box::new(r.clone()))).collect();
            write_in(store, &mut tx, owner, &ops).await?;
        }
        tx.commit().await?;
        Ok::<_, crate::state::Error>(first)
    };
    if imported.await.map_err(std::io::Error::other)? {
        tracing::info!(file = %file.display(), rows = rows.len(), "imported the upload queue into the state store");
    }
    crate::state::keep_imported(&file, true)?;
    Ok(())
}

/// The rows of an earlier version's `queue.db`.
fn read_old(file: &Path) -> std::io::Result<Vec<Row>> {
    let sql = |e: rusqlite::Error| std::io::Error::other(format!("{}: {e}", file.display()));
    let conn = rusqlite::Connection::open(file).map_err(sql)?;
    let mut query = conn
        .prepare(
            "SELECT id, connection, path, target, size, modified, replace, file, upload_url,
                    uploaded, failed, attempts, queued_at, origin FROM upload ORDER BY id",
        )
        .map_err(sql)?;
    let rows = query
        .query_map([], |r| {
            let origin: String = r.get(13)?;
            Ok(Row {
                id: r.get(0)?,
                connection: r.get(1)?,
                path: r.get(2)?,
                target: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                modified: time(r.get(5)?),
                replace: r.get(6)?,
                file: r.get(7)?,
                upload_url: r.get(8)?,
                uploaded: r.get(9)?,
                failed: r.get(10)?,
                attempts: r.get(11)?,
                queued_at: time(r.get(12)?).unwrap_or_else(Utc::now),
                origin: serde_json::from_str(&origin).unwrap_or_default(),
            })
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<Row>>>()
        .map_err(sql)?;
    drop(query);
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(sql)?;
    Ok(rows)
}
