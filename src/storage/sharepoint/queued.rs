//! The SharePoint backend's side of the upload queue (`upload_commit = "queued"` or
//! `"close:N"`): where a writer's close hands its file over, and how a queued file is read
//! back before it lands.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::super::local::read_at;
use super::super::queue::{NewUpload, Origin, Pending, Queue, Verdict};
use super::super::{Entry, Error, ErrorKind, ReadHandle, Result};
use crate::config::UploadCommit;

/// How a mount's uploads are committed, with the queue and who is uploading.
#[derive(Clone)]
pub struct Commit {
    pub mode: UploadCommit,
    pub queue: Arc<Queue>,
    /// The login's user, protocol and address; `vpath` holds the mount's virtual path.
    pub origin: Origin,
}

impl Commit {
    /// Whether closes go through the queue.
    pub(super) fn queued(&self) -> bool {
        self.mode != UploadCommit::Close
    }

    /// The user's path of backend path `path`.
    pub(super) fn vpath(&self, path: &str) -> String {
        self.origin_of(path).vpath
    }

    /// The origin of the file at backend path `path`.
    fn origin_of(&self, path: &str) -> Origin {
        let vpath = match (self.origin.vpath.as_str(), path) {
            ("/", p) => p.to_string(),
            (m, "/") => m.to_string(),
            (m, p) => format!("{m}{p}"),
        };
        Origin {
            vpath,
            ..self.origin.clone()
        }
    }
}

/// A file the writer spooled, handed to the queue.
pub(super) struct Handover {
    pub connection: String,
    /// The library path (stored names).
    pub path: String,
    /// The backend path, for the audit line and errors.
    pub shown: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub replace: bool,
    pub spooled: PathBuf,
}

/// Queues the file; with `close:N`, waits up to N for SharePoint's verdict. `Ok(None)`: queued
/// (the caller answers with the file as written); `Ok(Some(entry))`: stored in time.
pub(super) async fn hand_over(commit: &Commit, file: Handover) -> Result<Option<Verdict>> {
    // The wait counts from the close: making the file durable (fsync) is part of it.
    let wait = match commit.mode {
        UploadCommit::CloseWithin(wait) => Some(tokio::time::Instant::now() + wait),
        _ => None,
    };
    let new = NewUpload {
        connection: file.connection,
        path: file.path,
        size: file.size,
        modified: file.modified,
        replace: file.replace,
        spooled: file.spooled,
        origin: commit.origin_of(&file.shown),
    };
    let (_, waiter) = commit
        .queue
        .enqueue(new, wait.is_some())
        .await
        .map_err(|e| Error::new(ErrorKind::Failed, "queueing the upload failed").with_source(e))?;
    let (Some(wait), Some(waiter)) = (wait, waiter) else {
        return Ok(None);
    };
    match tokio::time::timeout_at(wait, waiter).await {
        Ok(Ok(verdict)) => Ok(Some(verdict)),
        // Not in time, or a transient failure: the queue goes on with it.
        _ => Ok(None),
    }
}

/// A queued file being read: its bytes come from the queue's copy.
pub(super) struct QueuedReader {
    file: Arc<std::fs::File>,
    path: String,
    size: u64,
}

impl QueuedReader {
    /// Opens the queued copy; `None` when it is gone (delivered in the meantime).
    pub(super) fn open(pending: &Pending, path: &str) -> Option<QueuedReader> {
        let file = std::fs::File::open(&pending.file).ok()?;
        Some(QueuedReader {
            file: Arc::new(file),
            path: path.to_string(),
            size: pending.size,
        })
    }
}

#[async_trait]
impl ReadHandle for QueuedReader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let len = (len as u64).min(self.size.saturating_sub(offset)) as usize;
        if len == 0 {
            return Ok(Bytes::new());
        }
        read_at(&self.file, &self.path, offset, len).await
    }
}

/// A queued file as an entry named `name`.
pub(super) fn entry(name: &str, pending: &Pending) -> Entry {
    Entry::new(name.to_string(), pending.size, false, pending.modified)
}
