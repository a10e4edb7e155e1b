//! Object-safe storage backends: what a mount points at. A user's mount table mixes them as
//! `Arc<dyn Backend>`; the front-ends (SFTP, FTP) speak only this trait. Backends account for
//! nothing: metrics and audit are the session layer's (`crate::session::accounting`).
//!
//! Paths given to a backend are relative to its root, `/`-separated, already normalised by the
//! virtual file system (`/`, `/a`, `/a/b.txt`; never `..`, never empty segments).
//!
//! - [`local`]: a folder on the gateway host; [`sharepoint`]: a SharePoint library folder;
//! - [`queue`]: the durable queue that delivers uploads committed with `upload_commit = "queued"`;
//! - [`error`]: the one error type whose kinds each front-end maps in exactly one place.

pub mod error;
pub mod local;
pub mod queue;
pub mod sharepoint;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

pub use error::{Error, ErrorKind, Result};

/// A file or folder as a backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
    pub modified: DateTime<Utc>,
    /// The backend's own id of the item (SharePoint's driveItem id, which survives renames),
    /// for the audit log; `None` for local files.
    pub id: Option<String>,
}

impl Entry {
    /// An entry without an id.
    pub fn new(name: String, size: u64, is_dir: bool, modified: DateTime<Utc>) -> Entry {
        Entry {
            name,
            size,
            is_dir,
            modified,
            id: None,
        }
    }
}

/// What a backend can do beyond the basics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Writes at any offset of an existing file, in place (a local disk).
    pub random_write: bool,
    /// Whether `set_modified` keeps the time (SharePoint: whole seconds).
    pub set_modified: bool,
    /// Whether entries carry an [`Entry::id`].
    pub item_ids: bool,
}

/// How a file is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create, or replace an existing file when the writer closes.
    Truncate,
    /// Create; fail with `AlreadyExists` if the name is taken.
    CreateNew,
    /// Keep the existing content; writes land at their offsets (resume, append, random writes).
    Keep,
}

/// Free and total space, for `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

/// A file open for reading; reads are by offset.
#[async_trait]
pub trait ReadHandle: Send {
    /// The file's size when it was opened.
    fn size(&self) -> u64;
    /// The backend's id of the file ([`Entry::id`]).
    fn id(&self) -> Option<&str> {
        None
    }
    /// Up to `len` bytes at `offset`; empty at or past the end.
    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes>;
}

/// A file open for writing. Nothing is visible under the file's name until `close` succeeds.
#[async_trait]
pub trait WriteHandle: Send {
    /// Writes `data` at `offset`. Owned, so that a backend can hand it to another thread
    /// without copying it.
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()>;
    /// The file's size as written so far (the end of the furthest write, or the kept size).
    fn size(&self) -> u64;
    /// Up to `len` bytes at `offset` of the file as written so far (the kept content and
    /// every write); empty at or past the end. Read-write handles (SFTP `r+`, `a+`, `w+`).
    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes>;
    /// Sets the modification time the file gets when it is stored.
    fn set_modified(&mut self, at: DateTime<Utc>);
    /// Makes the file visible with everything written; an error means the file was NOT stored.
    async fn close(self: Box<Self>) -> Result<Entry>;
    /// Drops everything written; the previous file, if any, stays as it was.
    async fn abort(self: Box<Self>);
}

/// A storage backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A short description for logs (no secrets).
    fn describe(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    async fn stat(&self, path: &str) -> Result<Entry>;
    /// The entries of a folder, in pages as they arrive.
    async fn list(&self, path: &str) -> Result<BoxStream<'static, Result<Vec<Entry>>>>;
    async fn open_read(&self, path: &str) -> Result<Box<dyn ReadHandle>>;
    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>>;
    async fn mkdir(&self, path: &str) -> Result<()>;
    async fn remove_file(&self, path: &str) -> Result<()>;
    /// Removes an empty folder.
    async fn remove_dir(&self, path: &str) -> Result<()>;
    /// Renames `from` to `to`, replacing a file at `to` (POSIX rename semantics).
    async fn rename(&self, from: &str, to: &str) -> Result<()>;
    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()>;
    async fn space(&self) -> Result<Option<Space>>;
}

/// Whether `name` holds a control character other than TAB: such a name is never created (it
/// drives terminals and breaks logs and clients). TAB is kept: it is harmless, and
/// `names = "encode"` carries it to SharePoint and back.
pub fn unprintable(name: &str) -> bool {
    name.chars().any(|c| c.is_control() && c != '\t')
}

/// Joins a backend path and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
