//! One attempt at delivering a queued row: upload its file (resuming a session opened before),
//! then carry out what the client did to it meanwhile (rename, delete, new time), until the
//! row stops changing.

use std::sync::Arc;

use bytes::Bytes;

use super::{Queue, Row};
use crate::connections::Connection;
use crate::graph::upload::{SIMPLE_UPLOAD_MAX, fragment_for};
use crate::graph::{self, Drive, Kind, OnConflict};

/// How an attempt ended.
pub(super) enum Outcome {
    /// The row is done; the stored item, unless the file was deleted after its upload.
    Delivered(Box<Row>, Option<graph::Entry>),
    Failed(graph::Error),
}

/// Failures worth another attempt later; the rest are SharePoint's (or the file's) final word.
pub(super) fn transient(error: &graph::Error) -> bool {
    matches!(
        error.kind,
        Kind::Unavailable | Kind::Locked | Kind::Modified
    )
}

pub(super) async fn deliver(queue: Arc<Queue>, id: i64, connection: Arc<Connection>) {
    let outcome = match attempt(&queue, id, &connection).await {
        Ok(Some((row, entry))) => Outcome::Delivered(Box::new(row), entry),
        Ok(None) => {
            queue.state.lock().in_flight.remove(&id);
            queue.wake.notify_one();
            queue.done.notify_waiters();
            return;
        }
        Err(e) => Outcome::Failed(e),
    };
    queue.finish(id, outcome);
}

fn local(e: std::io::Error) -> graph::Error {
    graph::Error::new(Kind::Io, format!("the queued file: {e}"))
}

/// `Ok(None)`: the row disappeared (discarded) before the attempt began.
async fn attempt(
    queue: &Arc<Queue>,
    id: i64,
    connection: &Connection,
) -> graph::Result<Option<(Row, Option<graph::Entry>)>> {
    let Some(row) = queue.row(id) else {
        return Ok(None);
    };
    let drive = connection.drive().await?;
    // What SharePoint has: the time sent with the content (unknown after a restart).
    let mut sent_modified = None;
    let mut stored = None;
    if !row.uploaded {
        sent_modified = row.modified;
        stored = Some(upload(queue, &drive, &row).await?);
        queue
            .update(id, |r| {
                r.uploaded = true;
                r.upload_url = None;
            })
            .map_err(local)?;
    }
    loop {
        let Some(row) = queue.row(id) else {
            return Ok(None);
        };
        match row.target.clone() {
            None => {
                match drive.delete(&row.path).await {
                    Err(e) if e.kind != Kind::NotFound => return Err(e),
                    _ => stored = None,
                }
                if queue.complete_if(&row).map_err(local)? {
                    return Ok(Some((row, None)));
                }
            }
            Some(target) if target != row.path => {
                stored = Some(drive.rename(&row.path, &target, true).await?);
                queue.update(id, |r| r.path = target).map_err(local)?;
            }
            Some(target) => {
                if let Some(at) = row.modified.filter(|at| Some(*at) != sent_modified) {
                    stored = Some(drive.set_modified(&target, at).await?);
                    sent_modified = Some(at);
                }
                if queue.complete_if(&row).map_err(local)? {
                    let stored = match stored {
                        Some(entry) => entry,
                        None => drive.stat(&target).await?,
                    };
                    return Ok(Some((row, Some(stored))));
                }
            }
        }
    }
}

/// Sends the row's file to `row.path`: one request for a small file, else an upload session,
/// resumed from where it stood when the row already has one.
async fn upload(queue: &Queue, drive: &Drive, row: &Row) -> graph::Result<graph::Entry> {
    let file = Arc::new(std::fs::File::open(queue.dir.join(&row.file)).map_err(local)?);
    let on_conflict = if row.replace {
        OnConflict::Replace
    } else {
        OnConflict::Fail
    };
    if row.size == 0 || (row.size <= SIMPLE_UPLOAD_MAX && row.modified.is_none()) {
        let bytes = read(&file, 0, row.size as usize).await?;
        let entry = drive.upload_small(&row.path, bytes, on_conflict).await?;
        return match row.modified {
            Some(at) => drive.set_modified(&row.path, at).await,
            None => Ok(entry),
        };
    }
    let resumed = match &row.upload_url {
        Some(url) => match drive.resume_upload(url, row.size).await {
            Ok(upload) => Some(upload),
            Err(e) if e.kind == Kind::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut upload = match resumed {
        Some(upload) => {
            tracing::info!(connection = %drive.client.name, path = %row.origin.vpath, from = upload.written(), size = row.size, "upload queue: resuming an upload session");
            upload
        }
        None => {
            let upload = drive
                .upload_session(&row.path, row.size, row.modified, on_conflict)
                .await?;
            queue.set_url(row.id, upload.url()).map_err(local)?;
            upload
        }
    };
    upload.keep_on_drop();
    let fragment = fragment_for(row.size, drive.client.upload_chunk());
    upload.finish_from_file(file, fragment).await
}

async fn read(file: &Arc<std::fs::File>, offset: u64, len: usize) -> graph::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || crate::fsio::read_exact_at(&file, offset, len))
        .await
        .map_err(|e| local(std::io::Error::other(e)))?
        .map_err(local)
}
