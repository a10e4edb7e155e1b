//! The queue's durable record: `<state dir>/queue/queue.db`, one row per queued upload.
//!
//! WAL with `synchronous=FULL`: a row committed before the client is answered survives a crash
//! or a power cut. The server and `spgate queue` share the file; the server notices the other
//! side's commits through `PRAGMA data_version`.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row as SqlRow, params};

use super::Row;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    path TEXT NOT NULL,
    target TEXT,
    size INTEGER NOT NULL,
    modified TEXT,
    replace INTEGER NOT NULL,
    file TEXT NOT NULL,
    upload_url TEXT,
    uploaded INTEGER NOT NULL DEFAULT 0,
    failed TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at TEXT NOT NULL,
    origin TEXT NOT NULL
)";

const COLUMNS: &str = "id, connection, path, target, size, modified, replace, file, upload_url, \
                       uploaded, failed, attempts, queued_at, origin";

pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Whether the next commits wait for the disk (`synchronous=FULL`, the default) or only
/// reach the WAL (`NORMAL`: safe from a crash, not from a power cut).
pub(super) fn durable(conn: &Connection, durable: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
}

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.to_rfc3339())
}

fn row(r: &SqlRow) -> rusqlite::Result<Row> {
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
}

pub(super) fn all(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM upload ORDER BY id"))?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

/// Inserts `row` (its id is ignored) and answers the new id.
pub(super) fn insert(conn: &Connection, row: &Row) -> rusqlite::Result<i64> {
    let origin = serde_json::to_string(&row.origin).unwrap_or_default();
    conn.execute(
        "INSERT INTO upload (connection, path, target, size, modified, replace, file, \
         queued_at, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            row.connection,
            row.path,
            row.target,
            row.size as i64,
            text(row.modified),
            row.replace,
            row.file,
            row.queued_at.to_rfc3339(),
            origin
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes back the fields that change while a row is queued.
pub(super) fn update(conn: &Connection, row: &Row) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE upload SET path = ?2, target = ?3, modified = ?4, file = ?5, upload_url = ?6, \
         uploaded = ?7, failed = ?8, attempts = ?9, origin = ?10, queued_at = ?11 WHERE id = ?1",
        params![
            row.id,
            row.path,
            row.target,
            text(row.modified),
            row.file,
            row.upload_url,
            row.uploaded,
            row.failed,
            row.attempts,
            serde_json::to_string(&row.origin).unwrap_or_default(),
            row.queued_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

pub(super) fn delete(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM upload WHERE id = ?1", [id])?;
    Ok(())
}

/// Changes whenever another connection commits to the file.
pub(super) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}
