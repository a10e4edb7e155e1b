//! One attempt at delivering a queued row: upload its file (resuming a session opened before),
//! then carry out what the client did to it meanwhile (rename, delete, new time), until the
//! row stops changing.

use std::sync::Arc;

use super::{Queue, Row};
use crate::connections::Connection;
use crate::graph::upload::{fragment_for, one_request};
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

/// A failure of the connection, not of the file: the connection is disabled (its alert says
/// why). The file waits in the queue until the connection is enabled again.
pub(super) fn held(error: &graph::Error) -> bool {
    error.kind == Kind::Disabled
}

pub(super) async fn deliver(queue: Arc<Queue>, id: i64, connection: Arc<Connection>) {
    let outcome = match attempt(&queue, id, &connection).await {
        Ok(Some((row, entry))) => Some(Outcome::Delivered(Box::new(row), entry)),
        Ok(None) => None,
        Err(e) => Some(Outcome::Failed(e)),
    };
    queue.finish(id, outcome).await;
}

fn local(e: std::io::Error) -> graph::Error {
    graph::Error::new(Kind::Io, format!("the queued file: {e}"))
}

/// A failure to record progress in the state store: worth another attempt later.
fn unrecorded(e: std::io::Error) -> graph::Error {
    graph::Error::new(
        Kind::Unavailable,
        format!("recording the upload's progress: {e}"),
    )
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
        drive.note_stored(row.size);
        queue.set_uploaded(id).await.map_err(unrecorded)?;
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
                if queue.complete_if(&row).await.map_err(unrecorded)? {
                    return Ok(Some((row, None)));
                }
            }
            Some(target) if target != row.path => {
                stored = Some(drive.rename(&row.path, &target, true).await?);
                queue
                    .update(id, |r| r.path = target)
                    .await
                    .map_err(unrecorded)?;
            }
            Some(target) => {
                if let Some(at) = row.modified.filter(|at| Some(*at) != sent_modified) {
                    stored = Some(drive.set_modified(&target, at).await?);
                    sent_modified = Some(at);
                }
                if queue.complete_if(&row).await.map_err(unrecorded)? {
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
    let on_conflict = OnConflict::replacing(row.replace);
    if one_request(row.size, row.modified) {
        let bytes = crate::fsio::read_at(&file, 0, row.size as usize)
            .await
            .map_err(local)?;
        return drive
            .upload_whole(&row.path, bytes, row.modified, on_conflict)
            .await;
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
            queue
                .set_url(row.id, upload.url())
                .await
                .map_err(unrecorded)?;
            upload
        }
    };
    upload.keep_on_drop();
    let fragment = fragment_for(row.size, drive.client.upload_chunk());
    upload.finish_from_file(file, fragment).await
}
