//! The SFTP requests of one session (russh-sftp, protocol version 3 with OpenSSH extensions),
//! served over the user's virtual file system. russh-sftp handles one request at a time, so no
//! request here makes a Graph call per read or write: reads come from a streaming download and
//! writes go to a spool that is uploaded when the handle closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, Fuse};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use super::reply::{self, code, status, status_at};
use crate::session::transfers::{Transfer, Transfers};
use crate::storage::{self, Entry, Error, ErrorKind, ReadHandle, WriteHandle, WriteMode};
use crate::vfs::{Vfs, normalize};

/// Largest read and write a client is told to use (`limits@openssh.com`); kept moderate (see
/// shared/CRATES.md on russh's flow-control deadlock with large reads).
const MAX_IO: u64 = 128 * 1024;
const MAX_PACKET: u64 = 256 * 1024;

enum Open {
    Read {
        path: String,
        reader: Box<dyn ReadHandle>,
        /// The first read that failed: every later read answers it at once (a client queues
        /// dozens of reads; each would otherwise wait out the whole retry budget again).
        failed: Option<Error>,
        /// Counts the download among the connection's transfers until the handle is gone.
        _transfer: Transfer,
    },
    /// Opened with WRITE (or APPEND, CREAT, TRUNC); reads too when opened with READ.
    Write {
        path: String,
        writer: Box<dyn WriteHandle>,
        /// APPEND: every write goes to the end of the file, whatever its offset.
        append: bool,
        /// The handle was opened with READ.
        readable: bool,
        /// A write failed: the handle is poisoned, and its close stores nothing.
        failed: Option<Error>,
        /// Counts the upload among the connection's transfers until its close is done (the
        /// closed handle is dropped only after its commit).
        _transfer: Transfer,
    },
    Dir {
        /// Fused: polled again after its end it keeps answering the end.
        pages: Fuse<BoxStream<'static, storage::Result<Vec<Entry>>>>,
        started: bool,
    },
}

/// A copy of `e` to answer again later (its source stays with the first answer's log line).
fn again(e: &Error) -> Error {
    Error::new(e.kind, e.message.clone())
}

pub struct Files {
    vfs: Arc<Vfs>,
    user: String,
    handles: HashMap<String, Open>,
    next_handle: u64,
    /// Handles open over all of the login's channels, and how many it may hold
    /// (`[limits] max_handles_per_login`).
    open: Arc<AtomicUsize>,
    most: usize,
    /// The connection's transfers in progress: one per open file handle (a shutdown waits
    /// for them).
    transfers: Arc<Transfers>,
}

/// A login's open handles, shared by its channels.
pub type OpenHandles = Arc<AtomicUsize>;

/// Counts one more in `count` unless `most` are counted already; answers whether it did.
pub(super) fn take_one(count: &AtomicUsize, most: usize) -> bool {
    if count.fetch_add(1, Ordering::SeqCst) >= most {
        count.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

impl Drop for Files {
    fn drop(&mut self) {
        self.open.fetch_sub(self.handles.len(), Ordering::SeqCst);
    }
}

type Reply<T> = Result<T, StatusReply>;

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// Reads one SSH string from `data` at `*at`.
fn ssh_string(data: &[u8], at: &mut usize) -> Option<String> {
    let len = u32::from_be_bytes(data.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let bytes = data.get(*at + 4..*at + 4 + len)?;
    *at += 4 + len;
    String::from_utf8(bytes.to_vec()).ok()
}

impl Files {
    /// The SFTP requests of one channel of `user`; `open` counts the handles of all the
    /// login's channels, at most `most`.
    pub fn new(
        vfs: Arc<Vfs>,
        user: String,
        open: OpenHandles,
        most: usize,
        transfers: Arc<Transfers>,
    ) -> Self {
        Files {
            vfs,
            user,
            handles: HashMap::new(),
            next_handle: 0,
            open,
            most,
            transfers,
        }
    }

    fn path(&self, raw: &str) -> Reply<String> {
        normalize("/", raw).map_err(|e| status(&e))
    }

    fn add(&mut self, open: Open) -> Reply<String> {
        if !take_one(&self.open, self.most) {
            return Err(code(StatusCode::Failure, "too many open handles"));
        }
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        Ok(handle)
    }

    fn bad_handle() -> StatusReply {
        code(StatusCode::Failure, "invalid handle")
    }

    async fn rename_to(&mut self, id: u32, from: &str, to: &str, replace: bool) -> Reply<Status> {
        let (from, to) = (self.path(from)?, self.path(to)?);
        let case_only = from.to_lowercase() == to.to_lowercase();
        if !replace && !case_only && self.vfs.stat(&to).await.is_ok() {
            return Err(code(StatusCode::Failure, &format!("{to}: already exists")));
        }
        self.vfs
            .rename(&from, &to)
            .await
            .map_err(|e| status_at(&e, &from))?;
        Ok(ok(id))
    }

    fn statvfs(&self, space: Option<storage::Space>) -> Vec<u8> {
        const BLOCK: u64 = 4096;
        let (total, free) = space.map_or((u64::MAX / 2, u64::MAX / 4), |s| (s.total, s.free));
        let fields = [
            BLOCK,
            BLOCK,
            total / BLOCK,
            free / BLOCK,
            free / BLOCK,
            0,
            0,
            0,
            0,
            2,
            255,
        ];
        fields.iter().flat_map(|f| f.to_be_bytes()).collect()
    }
}

impl russh_sftp::server::Handler for Files {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        code(StatusCode::OpUnsupported, "")
    }

    async fn init(&mut self, version: u32, _extensions: HashMap<String, String>) -> Reply<Version> {
        tracing::debug!(version, "sftp session started");
        let mut v = Version::new();
        for (name, revision) in [
            ("posix-rename@openssh.com", "1"),
            ("statvfs@openssh.com", "2"),
            ("limits@openssh.com", "1"),
            ("fsync@openssh.com", "1"),
        ] {
            v.extensions.insert(name.into(), revision.into());
        }
        Ok(v)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Reply<Handle> {
        let path = self.path(&filename)?;
        let transfer = self.transfers.try_start().map_err(|e| status(&e))?;
        let writes = OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let open = if pflags.intersects(writes) {
            let mode = if pflags.contains(OpenFlags::EXCLUDE) {
                WriteMode::CreateNew
            } else if pflags.contains(OpenFlags::TRUNCATE) {
                WriteMode::Truncate
            } else {
                WriteMode::Keep
            };
            if !pflags.contains(OpenFlags::CREATE) {
                // As open(2) without O_CREAT: the file must exist.
                let entry = self
                    .vfs
                    .stat(&path)
                    .await
                    .map_err(|e| status_at(&e, &path))?;
                if entry.is_dir {
                    return Err(status(&Error::new(
                        ErrorKind::IsADirectory,
                        format!("{path}: is a folder"),
                    )));
                }
            }
            let mut writer = self
                .vfs
                .open_write(&path, mode)
                .await
                .map_err(|e| status_at(&e, &path))?;
            if let Some(at) = reply::mtime(&attrs) {
                writer.set_modified(at);
            }
            tracing::debug!(user = %self.user, path, ?mode, "upload started");
            Open::Write {
                path,
                writer,
                append: pflags.contains(OpenFlags::APPEND),
                readable: pflags.contains(OpenFlags::READ),
                failed: None,
                _transfer: transfer,
            }
        } else {
            let reader = self
                .vfs
                .open_read(&path)
                .await
                .map_err(|e| status_at(&e, &path))?;
            Open::Read {
                path,
                reader,
                failed: None,
                _transfer: transfer,
            }
        };
        Ok(Handle {
            id,
            handle: self.add(open)?,
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Reply<Status> {
        let user = self.user.clone();
        let closed = self.handles.remove(&handle);
        if closed.is_some() {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
        match closed {
            Some(Open::Write {
                path,
                writer,
                failed: Some(first),
                ..
            }) => {
                let size = writer.size();
                writer.abort().await;
                tracing::warn!(%user, path, size, error = %crate::logging::chain(&first), "upload failed: a write had failed, nothing stored");
                Err(status(&Error::new(
                    first.kind,
                    format!("{path}: not stored, a write had failed ({first})"),
                )))
            }
            Some(Open::Write { writer, .. }) => {
                match writer.close().await {
                    // The session layer logs the transfer and audits it.
                    Ok(_) => Ok(ok(id)),
                    Err(e) => Err(status(&e)),
                }
            }
            Some(Open::Read { path, reader, .. }) => {
                tracing::debug!(path, size = reader.size(), "download closed");
                Ok(ok(id))
            }
            Some(Open::Dir { .. }) => Ok(ok(id)),
            None => Err(Self::bad_handle()),
        }
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Reply<Data> {
        let len = (len as u64).min(MAX_IO) as usize;
        let read = match self.handles.get_mut(&handle) {
            Some(Open::Read {
                failed: Some(first),
                ..
            }) => return Err(status(&again(first))),
            Some(Open::Read { reader, failed, .. }) => {
                let read = reader.read_at(offset, len).await;
                if let Err(e) = &read {
                    *failed = Some(again(e));
                }
                read
            }
            Some(Open::Write {
                writer,
                readable: true,
                ..
            }) => writer.read_at(offset, len).await,
            Some(Open::Write { path, .. }) => {
                return Err(code(
                    StatusCode::PermissionDenied,
                    &format!("{path} was not opened for reading"),
                ));
            }
            _ => return Err(Self::bad_handle()),
        };
        let data = read.map_err(|e| status(&e))?;
        if data.is_empty() {
            return Err(code(StatusCode::Eof, ""));
        }
        Ok(Data {
            id,
            data: data.to_vec(),
        })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Reply<Status> {
        let Some(Open::Write {
            writer,
            append,
            failed,
            ..
        }) = self.handles.get_mut(&handle)
        else {
            return match self.handles.get(&handle) {
                Some(Open::Read { path, .. }) => Err(code(
                    StatusCode::PermissionDenied,
                    &format!("{path} was not opened for writing"),
                )),
                _ => Err(Self::bad_handle()),
            };
        };
        if let Some(first) = failed {
            return Err(status(&again(first)));
        }
        let offset = if *append { writer.size() } else { offset };
        if let Err(e) = writer.write_at(offset, Bytes::from(data)).await {
            *failed = Some(again(&e));
            return Err(status(&e));
        }
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Reply<Attrs> {
        self.stat(id, path).await
    }

    /// A file being written is answered from its open handle (clients stat while uploading).
    async fn stat(&mut self, id: u32, path: String) -> Reply<Attrs> {
        let path = self.path(&path)?;
        let writing = self.handles.values().find_map(|open| match open {
            Open::Write {
                path: p, writer, ..
            } if *p == path => Some(writer.size()),
            _ => None,
        });
        if let Some(size) = writing {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            let entry = Entry::new(name, size, false, chrono::Utc::now());
            return Ok(Attrs {
                id,
                attrs: reply::attrs(&entry),
            });
        }
        let entry = self
            .vfs
            .stat(&path)
            .await
            .map_err(|e| status_at(&e, &path))?;
        Ok(Attrs {
            id,
            attrs: reply::attrs(&entry),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Reply<Attrs> {
        let now = chrono::Utc::now();
        let entry = match self.handles.get(&handle) {
            Some(Open::Write { path, writer, .. }) => {
                Entry::new(path.clone(), writer.size(), false, now)
            }
            Some(Open::Read { path, reader, .. }) => {
                let (path, size) = (path.clone(), reader.size());
                let mut entry = self
                    .vfs
                    .stat(&path)
                    .await
                    .map_err(|e| status_at(&e, &path))?;
                entry.size = size;
                entry
            }
            Some(Open::Dir { .. }) => Entry::new(String::new(), 0, true, now),
            None => return Err(Self::bad_handle()),
        };
        Ok(Attrs {
            id,
            attrs: reply::attrs(&entry),
        })
    }

    /// Times go to SharePoint; permissions and owners are accepted and ignored, as clients
    /// such as WinSCP expect.
    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Reply<Status> {
        let path = self.path(&path)?;
        if let Some(at) = reply::mtime(&attrs) {
            self.vfs
                .set_modified(&path, at)
                .await
                .map_err(|e| status_at(&e, &path))?;
        }
        if let Some(size) = attrs.size {
            let entry = self
                .vfs
                .stat(&path)
                .await
                .map_err(|e| status_at(&e, &path))?;
            if entry.size != size {
                return Err(code(
                    StatusCode::OpUnsupported,
                    "changing a file's size is not supported; upload it again",
                ));
            }
        }
        Ok(ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> Reply<Status> {
        let path = match self.handles.get_mut(&handle) {
            Some(Open::Write { writer, .. }) => {
                if let Some(at) = reply::mtime(&attrs) {
                    writer.set_modified(at);
                }
                return Ok(ok(id));
            }
            Some(Open::Read { path, .. }) => path.clone(),
            Some(Open::Dir { .. }) => return Ok(ok(id)),
            None => return Err(Self::bad_handle()),
        };
        self.setstat(id, path, attrs).await
    }

    async fn opendir(&mut self, id: u32, path: String) -> Reply<Handle> {
        let path = self.path(&path)?;
        let pages = self
            .vfs
            .list(&path)
            .await
            .map_err(|e| status_at(&e, &path))?;
        Ok(Handle {
            id,
            handle: self.add(Open::Dir {
                pages: pages.fuse(),
                started: false,
            })?,
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Reply<Name> {
        let user = self.user.clone();
        let Some(Open::Dir { pages, started }) = self.handles.get_mut(&handle) else {
            return Err(Self::bad_handle());
        };
        let mut files: Vec<File> = Vec::new();
        if !*started {
            *started = true;
            for dot in [".", ".."] {
                let entry = Entry::new(dot.into(), 0, true, chrono::Utc::now());
                files.push(reply::file(&entry, &user));
            }
        }
        while files.len() < 3 {
            match pages.next().await {
                Some(Ok(page)) => files.extend(page.iter().map(|e| reply::file(e, &user))),
                Some(Err(e)) => return Err(status(&e)),
                None if files.is_empty() => return Err(code(StatusCode::Eof, "")),
                None => break,
            }
        }
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Reply<Status> {
        let path = self.path(&filename)?;
        self.vfs
            .remove_file(&path)
            .await
            .map_err(|e| status_at(&e, &path))?;
        tracing::info!(path, "deleted");
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, _attrs: FileAttributes) -> Reply<Status> {
        let path = self.path(&path)?;
        self.vfs
            .mkdir(&path)
            .await
            .map_err(|e| status_at(&e, &path))?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Reply<Status> {
        let path = self.path(&path)?;
        self.vfs
            .remove_dir(&path)
            .await
            .map_err(|e| status_at(&e, &path))?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Reply<Name> {
        let path = self.path(&path)?;
        let attrs = FileAttributes {
            permissions: Some(0o40755),
            ..FileAttributes::empty()
        };
        Ok(Name {
            id,
            files: vec![File {
                filename: path.clone(),
                longname: path,
                attrs,
            }],
        })
    }

    /// SFTP v3 rename: refuses to replace an existing file (use posix-rename for that).
    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Reply<Status> {
        self.rename_to(id, &oldpath, &newpath, false).await
    }

    async fn extended(&mut self, id: u32, request: String, data: Vec<u8>) -> Reply<Packet> {
        let mut at = 0;
        match request.as_str() {
            "posix-rename@openssh.com" => {
                let (Some(from), Some(to)) =
                    (ssh_string(&data, &mut at), ssh_string(&data, &mut at))
                else {
                    return Err(code(
                        StatusCode::BadMessage,
                        "malformed posix-rename request",
                    ));
                };
                Ok(Packet::Status(self.rename_to(id, &from, &to, true).await?))
            }
            "statvfs@openssh.com" => {
                let path = ssh_string(&data, &mut at)
                    .ok_or_else(|| code(StatusCode::BadMessage, "malformed statvfs request"))?;
                let path = self.path(&path)?;
                let space = self
                    .vfs
                    .space(&path)
                    .await
                    .map_err(|e| status_at(&e, &path))?;
                Ok(Packet::ExtendedReply(ExtendedReply {
                    id,
                    data: self.statvfs(space),
                }))
            }
            "limits@openssh.com" => {
                let data = [MAX_PACKET, MAX_IO, MAX_IO, self.most as u64]
                    .iter()
                    .flat_map(|f| f.to_be_bytes())
                    .collect();
                Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
            }
            "fsync@openssh.com" => Ok(Packet::Status(ok(id))),
            _ => Err(self.unimplemented()),
        }
    }
}
