//! Open files of the local backend: positional reads, and writers that upload to a temp name
//! and rename it over the target on close (or write in place for `Keep`).
//!
//! A writer starts an `fdatasync` in the background after every 16 MiB ([`Writeback`]), so that
//! the data goes to disk while more arrives and the `fsync` at close has little left to do.

use std::fs::{File, FileTimes};
use std::io;
use std::sync::Arc;

use crate::fsio::Writeback;
use async_trait::async_trait;
use bytes::Bytes;
use cap_std::fs::{Dir, OpenOptions};
use chrono::{DateTime, Utc};

use super::{blocking, io_error, read_at, regular_file, temp_name, to_entry, write_all_at};
use crate::storage::{Entry, Error, ErrorKind, ReadHandle, Result, WriteHandle, WriteMode};

/// The most one read returns, whatever the caller asks for.
const MAX_READ: usize = 4 << 20;

/// Sequential reads are served from one larger read ahead, to spare the blocking pool.
const READ_AHEAD: usize = 1 << 20;

pub(super) struct Reader {
    file: Arc<File>,
    size: u64,
    path: String,
    /// Bytes read ahead, starting at `ahead_at`.
    ahead: Bytes,
    ahead_at: u64,
}

impl Reader {
    pub(super) fn new(file: File, size: u64, path: &str) -> Reader {
        Reader {
            file: Arc::new(file),
            size,
            path: path.to_string(),
            ahead: Bytes::new(),
            ahead_at: 0,
        }
    }
}

#[async_trait]
impl ReadHandle for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let len = len.min(MAX_READ);
        if len == 0 || offset >= i64::MAX as u64 - len as u64 {
            return Ok(Bytes::new());
        }
        let buffered = offset >= self.ahead_at
            && offset + len as u64 <= self.ahead_at + self.ahead.len() as u64;
        if !buffered {
            self.ahead = self.read_direct(offset, len.max(READ_AHEAD)).await?;
            self.ahead_at = offset;
        }
        let start = (offset - self.ahead_at) as usize;
        let end = (start + len).min(self.ahead.len());
        Ok(self.ahead.slice(start.min(end)..end))
    }
}

impl Reader {
    async fn read_direct(&self, offset: u64, len: usize) -> Result<Bytes> {
        read_at(&self.file, &self.path, offset, len).await
    }
}

pub(super) struct Writer {
    file: Arc<File>,
    /// The folder the file is stored in.
    dir: Arc<Dir>,
    name: String,
    /// The backend path, for messages.
    path: String,
    /// The temp name written to, renamed to `name` on close; `None` when writing in place.
    temp: Option<String>,
    /// `CreateNew`: never replace a file that appeared meanwhile.
    no_replace: bool,
    size: u64,
    modified: Option<DateTime<Utc>>,
    /// Background `fdatasync`s while writing.
    writeback: Writeback,
    /// Closed or aborted: nothing left to clean up.
    done: bool,
}

impl Writer {
    /// Opens `rel` (in the folder `parent`, as `name`) for writing; runs on the blocking pool.
    pub(super) fn open(
        root: &Dir,
        rel: &str,
        parent: &str,
        name: &str,
        mode: WriteMode,
        path: &str,
    ) -> io::Result<Writer> {
        let dir = root.open_dir(parent)?;
        let (file, temp, size) = match mode {
            WriteMode::Keep => {
                regular_file(root, rel)?;
                let file = root
                    .open_with(rel, OpenOptions::new().read(true).write(true).create(true))?
                    .into_std();
                let size = file.metadata()?.len();
                (file, None, size)
            }
            WriteMode::Truncate | WriteMode::CreateNew => {
                let old = if mode == WriteMode::CreateNew {
                    match dir.symlink_metadata(name) {
                        Ok(_) => return Err(io::ErrorKind::AlreadyExists.into()),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                        Err(e) => return Err(e),
                    }
                } else {
                    regular_file(root, rel)?
                };
                let temp = temp_name(name);
                let mut options = OpenOptions::new();
                options.read(true).write(true).create_new(true);
                let file = dir.open_with(&temp, &options)?;
                if let Some(old) = old {
                    // A replaced file keeps its permission bits; failing that is not worth an error.
                    let _ = file.set_permissions(old.permissions());
                }
                (file.into_std(), Some(temp), 0)
            }
        };
        Ok(Writer {
            file: Arc::new(file),
            dir: Arc::new(dir),
            name: name.to_string(),
            path: path.to_string(),
            temp,
            no_replace: mode == WriteMode::CreateNew,
            size,
            modified: None,
            writeback: Writeback::default(),
            done: false,
        })
    }

    /// Waits for the background `fdatasync`, if one was started.
    async fn settle_writeback(&mut self) -> Result<()> {
        let settled = self.writeback.settle().await;
        settled.map_err(|e| io_error(&self.path, e))
    }

    async fn start_writeback(&mut self, written: u64) -> Result<()> {
        let started = self.writeback.wrote(&self.file, written).await;
        started.map_err(|e| io_error(&self.path, e))
    }
}

/// Renames `from` to `to` in `dir` unless `to` exists, atomically: `renameat2(NOREPLACE)`, or
/// where the file system lacks it, a hard link (which fails on an existing name) and an unlink;
/// on file systems without hard links either, a check and a rename (racy, the last resort).
fn rename_no_replace(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::io::Errno;
        match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match dir.hard_link(from, dir, to) {
        Ok(()) => dir.remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => match dir.symlink_metadata(to) {
            Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => dir.rename(from, dir, to),
            Err(e) => Err(e),
        },
    }
}

/// Fsyncs the folder `dir`. cap-std opens folders `O_PATH`, which cannot be synced: the
/// folder is opened again for reading.
fn sync_dir(dir: &Dir) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let readable = rustix::fs::openat(dir, ".", flags, Mode::empty())?;
    Ok(rustix::fs::fsync(&readable)?)
}

#[async_trait]
impl WriteHandle for Writer {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Failed,
                    format!("{}: offset out of range", self.path),
                )
            })?;
        let len = data.len() as u64;
        write_all_at(&self.file, &self.path, offset, data).await?;
        self.size = self.size.max(end);
        self.start_writeback(len).await
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let len = (len.min(MAX_READ) as u64).min(self.size.saturating_sub(offset)) as usize;
        if len == 0 {
            return Ok(Bytes::new());
        }
        read_at(&self.file, &self.path, offset, len).await
    }

    fn set_modified(&mut self, at: DateTime<Utc>) {
        self.modified = Some(at);
    }

    async fn close(mut self: Box<Self>) -> Result<Entry> {
        self.settle_writeback().await?;
        let (file, dir, temp) = (self.file.clone(), self.dir.clone(), self.temp.clone());
        let (name, no_replace, modified) = (self.name.clone(), self.no_replace, self.modified);
        let entry = blocking(&self.path, move || {
            if let Some(at) = modified {
                file.set_times(FileTimes::new().set_modified(at.into()))?;
            }
            file.sync_all()?;
            let meta = file.metadata()?;
            let entry = to_entry(name.clone(), meta.len(), false, meta.modified()?);
            if let Some(temp) = temp {
                if no_replace {
                    rename_no_replace(&dir, &temp, &name)?
                } else {
                    dir.rename(&temp, &dir, &name)?
                }
                // Makes the rename durable; some file systems cannot sync a folder, and the file
                // is stored either way.
                let _ = sync_dir(&dir);
            }
            Ok(entry)
        })
        .await?;
        // On an error `done` stays false and dropping `self` removes the temp file.
        self.done = true;
        Ok(entry)
    }

    async fn abort(self: Box<Self>) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for Writer {
    /// Removes the temp file of an upload that was not closed (one unlink, done right here so
    /// that it is gone when the handle is).
    fn drop(&mut self) {
        if let (false, Some(temp)) = (self.done, &self.temp) {
            let _ = self.dir.remove_file(temp);
        }
    }
}
