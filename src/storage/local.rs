//! A folder on the gateway host as a storage backend (partners reach it through a mount).
//!
//! - Containment: every path is resolved by `cap-std` relative to an open handle on the root
//!   folder, which refuses any resolution that would leave it. Symlinks are followed while they
//!   stay inside the root (`a -> b/c`); a symlink that points outside (`/etc`, `../../x`) is refused
//!   with `PermissionDenied` for stat, read, write, mkdir and list, and left out of listings.
//!   `..` components and NUL bytes are refused before anything touches the disk.
//! - Uploads (`Truncate`, `CreateNew`) go to `.spgate.<name>.<random>.partial` in the target's
//!   folder and are renamed over the target on close, after an fsync: nothing half-written is
//!   ever visible under the real name. Such temp names are hidden from listings and stat.
//! - `Keep` writes in place (resume, append, random writes): the file is visible as it grows.
//! - Blocking file-system calls run on tokio's blocking pool.
//! - Error messages name the backend path (`/a/b.txt: no such file or folder`), never the host
//!   path; the `io::Error` stays as the source for the logs.

mod handles;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirEntry, Metadata};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use super::{
    Backend, Capabilities, Entry, Error, ErrorKind, ReadHandle, Result, Space, WriteHandle,
    WriteMode,
};
use handles::{Reader, Writer};

/// Entries per listing page.
const PAGE: usize = 1000;

pub struct Local {
    root: PathBuf,
    dir: Arc<Dir>,
}

impl Local {
    /// Opens the folder `root`, which must exist.
    pub fn new(root: PathBuf) -> Result<Local> {
        match Dir::open_ambient_dir(&root, ambient_authority()) {
            Ok(dir) => Ok(Local {
                root,
                dir: Arc::new(dir),
            }),
            Err(e) => Err(io_error(&format!("local folder {}", root.display()), e)),
        }
    }

    /// Runs `f` with the root folder on the blocking pool; errors are reported against `path`.
    async fn run<T, F>(&self, path: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> io::Result<T> + Send + 'static,
    {
        let dir = self.dir.clone();
        blocking(path, move || f(&dir)).await
    }
}

/// Runs `f` on the blocking pool, mapping its error to a message about `path`.
pub(crate) async fn blocking<T, F>(path: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| io_error(path, e)),
        Err(e) => Err(io_error(path, io::Error::other(e))),
    }
}

/// Writes all of `data` at `offset` of `file` on the blocking pool (one hop, no copy).
pub(crate) async fn write_all_at(
    file: &Arc<std::fs::File>,
    path: &str,
    offset: u64,
    data: Bytes,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file = file.clone();
    blocking(path, move || file.write_all_at(&data, offset)).await
}

/// Up to `len` bytes at `offset` of `file` (fewer only at its end), read on the blocking pool.
pub(crate) async fn read_at(
    file: &Arc<std::fs::File>,
    path: &str,
    offset: u64,
    len: usize,
) -> Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let file = file.clone();
    blocking(path, move || {
        let mut buf = vec![0; len];
        let mut got = 0;
        while got < len {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(Bytes::from(buf))
    })
    .await
}

/// A storage error about `path` whose message shows only that path; `e` stays as the source.
pub(crate) fn io_error(path: &str, e: io::Error) -> Error {
    let io_kind = e.kind();
    let mut err = Error::from(e);
    err.kind = match io_kind {
        io::ErrorKind::InvalidFilename => ErrorKind::InvalidName,
        io::ErrorKind::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        io::ErrorKind::Unsupported => ErrorKind::Unsupported,
        _ => err.kind,
    };
    let what = match err.kind {
        ErrorKind::NotFound => "no such file or folder",
        ErrorKind::AlreadyExists => "already exists",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::InvalidName => "invalid or too long name",
        ErrorKind::NotADirectory => "not a folder",
        ErrorKind::IsADirectory => "is a folder",
        ErrorKind::DirectoryNotEmpty => "folder not empty",
        ErrorKind::QuotaExceeded => "no space left",
        ErrorKind::Unsupported => "not a regular file or folder",
        _ => "local storage failed",
    };
    err.message = format!("{path}: {what}");
    err
}

/// How much of a file name goes into its temp name (names may be up to 255 bytes).
const TEMP_NAME_PART: usize = 100;

/// `.spgate.<name>.<random>.partial`, with the name shortened to stay within name limits.
/// Uploads here and the sync worker's downloads (`sync::local::temp_path`) use it.
pub(crate) fn temp_name(name: &str) -> String {
    let mut end = name.len().min(TEMP_NAME_PART);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        ".spgate.{}.{:016x}.partial",
        &name[..end],
        rand::random::<u64>()
    )
}

/// Whether `name` is one of the gateway's upload temp files.
pub(crate) fn is_partial(name: &str) -> bool {
    name.starts_with(".spgate.") && name.ends_with(".partial")
}

/// The marker a sync job keeps in its local folder (see `crate::sync::folder`).
pub const FOLDER_MARKER: &str = ".spgate.folder";

/// Whether `name` is a file of the gateway's own, which no client sees or touches: its temp
/// files and the sync folder marker.
fn is_own(name: &str) -> bool {
    is_partial(name) || name == FOLDER_MARKER
}

/// Temp files untouched this long are leftovers of a crash, a killed sync run or a dropped
/// session: a transfer in progress writes to its file far more often.
pub const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the gateway's temp files (`.spgate.*.partial`) untouched for [`LEFTOVER_AGE`] from
/// the folder tree at `root` (symlinks are not followed), logging each. Younger ones
/// may still be written and stay. `spgate serve` sweeps local mounts at start and daily, the
/// sync worker its folders after each run.
pub fn sweep_leftovers(root: &std::path::Path) {
    let old = |entry: &walkdir::DirEntry| {
        entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEFTOVER_AGE)
    };
    for entry in walkdir::WalkDir::new(root).into_iter().flatten() {
        let leftover = entry.file_type().is_file()
            && is_partial(&entry.file_name().to_string_lossy())
            && old(&entry);
        if !leftover {
            continue;
        }
        let path = entry.path().display();
        match std::fs::remove_file(entry.path()) {
            Ok(()) => tracing::info!(%path, "removed a leftover temporary file"),
            Err(e) => {
                tracing::warn!(%path, error = %crate::logging::chain(&e), "cannot remove a leftover temporary file")
            }
        }
    }
}

/// `path` relative to the root (`.` for the root itself), refused if it could mean anything
/// but a place inside the root. Temp names do not exist for callers.
fn relative(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!("{}: invalid name", path.replace('\0', "\\0")),
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{path}: '..' is not allowed"),
                ));
            }
            name if is_own(name) => return Err(Error::not_found(path)),
            name => parts.push(name),
        }
    }
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// `path` relative to the root, refused for the root itself (which cannot be removed or renamed).
fn below_root(path: &str) -> Result<String> {
    match relative(path)? {
        rel if rel == "." => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("{path}: not allowed on the root folder"),
        )),
        rel => Ok(rel),
    }
}

/// `path` relative to the root and as (its folder, its name); refused for the root itself.
fn split(path: &str) -> Result<(String, String, String)> {
    let rel = below_root(path)?;
    let (parent, name) = rel.rsplit_once('/').unwrap_or((".", &rel));
    Ok((parent.to_string(), name.to_string(), rel.clone()))
}

fn name_of(rel: &str) -> String {
    if rel == "." {
        "/".to_string()
    } else {
        rel.rsplit('/').next().unwrap_or(rel).to_string()
    }
}

pub(crate) fn to_entry(name: String, size: u64, is_dir: bool, modified: SystemTime) -> Entry {
    let size = if is_dir { 0 } else { size };
    Entry::new(name, size, is_dir, DateTime::<Utc>::from(modified))
}

/// An entry for a file or folder; other kinds (fifos, sockets, devices) are refused.
fn entry(name: String, meta: &Metadata) -> io::Result<Entry> {
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let modified = meta
        .modified()
        .map(|t| t.into_std())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(to_entry(name, meta.len(), meta.is_dir(), modified))
}

/// The metadata of the regular file at `rel`: `None` if missing, an error if it is something else.
fn regular_file(root: &Dir, rel: &str) -> io::Result<Option<Metadata>> {
    match root.metadata(rel) {
        Ok(meta) if meta.is_file() => Ok(Some(meta)),
        Ok(meta) if meta.is_dir() => Err(io::ErrorKind::IsADirectory.into()),
        Ok(_) => Err(io::ErrorKind::Unsupported.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the folder `dir` (at `rel` under `root`) and sends its entries in pages.
fn send_pages(root: &Dir, dir: &Dir, rel: &str, path: &str, tx: &mpsc::Sender<Result<Vec<Entry>>>) {
    let mut page = Vec::new();
    let mut sent = false;
    let items = match dir.entries() {
        Ok(items) => items,
        Err(e) => return drop(tx.blocking_send(Err(io_error(path, e)))),
    };
    for item in items {
        match item {
            Ok(item) => page.extend(list_entry(root, rel, &item)),
            Err(e) => return drop(tx.blocking_send(Err(io_error(path, e)))),
        }
        if page.len() == PAGE {
            if tx.blocking_send(Ok(std::mem::take(&mut page))).is_err() {
                return; // the listing was dropped
            }
            sent = true;
        }
    }
    if !page.is_empty() || !sent {
        let _ = tx.blocking_send(Ok(page));
    }
}

/// A listed item as an entry, or nothing for temp files, names that are not UTF-8, special
/// files and symlinks that dangle or lead outside the root.
fn list_entry(root: &Dir, rel: &str, item: &DirEntry) -> Option<Entry> {
    let name = item.file_name().into_string().ok()?;
    if is_own(&name) {
        return None;
    }
    let full = if rel == "." {
        name.clone()
    } else {
        format!("{rel}/{name}")
    };
    // Resolved from the root so that a symlink is judged the same way as by `stat`.
    let meta = if item.file_type().ok()?.is_symlink() {
        root.metadata(&full).ok()?
    } else {
        item.metadata().ok()?
    };
    entry(name, &meta).ok()
}

#[async_trait]
impl Backend for Local {
    fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_write: true,
            set_modified: true,
            item_ids: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let rel = relative(path)?;
        self.run(path, move |root| {
            entry(name_of(&rel), &root.metadata(&rel)?)
        })
        .await
    }

    async fn list(&self, path: &str) -> Result<BoxStream<'static, Result<Vec<Entry>>>> {
        let rel = relative(path)?;
        let dir = self
            .run(path, {
                let rel = rel.clone();
                move |root| root.open_dir(&rel)
            })
            .await?;
        let (tx, rx) = mpsc::channel(2);
        let (root, path) = (self.dir.clone(), path.to_string());
        tokio::task::spawn_blocking(move || send_pages(&root, &dir, &rel, &path, &tx));
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        })
        .boxed())
    }

    async fn open_read(&self, path: &str) -> Result<Box<dyn ReadHandle>> {
        let rel = relative(path)?;
        let (file, size) = self
            .run(path, move |root| {
                regular_file(root, &rel)?.ok_or(io::ErrorKind::NotFound)?;
                let file = root.open(&rel)?.into_std();
                // Checked again on the open file: the name may have changed in between.
                let meta = file.metadata()?;
                if meta.is_dir() {
                    Err(io::ErrorKind::IsADirectory.into())
                } else {
                    Ok((file, meta.len()))
                }
            })
            .await?;
        Ok(Box::new(Reader::new(file, size, path)))
    }

    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let (parent, name, rel) = split(path)?;
        let label = path.to_string();
        let writer = self
            .run(path, move |root| {
                Writer::open(root, &rel, &parent, &name, mode, &label)
            })
            .await?;
        Ok(Box::new(writer))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let rel = relative(path)?;
        self.run(path, move |root| root.create_dir(&rel)).await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        let rel = below_root(path)?;
        self.run(path, move |root| root.remove_file(&rel)).await
    }

    async fn remove_dir(&self, path: &str) -> Result<()> {
        let rel = below_root(path)?;
        self.run(path, move |root| root.remove_dir(&rel)).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from_rel, to_rel) = (below_root(from)?, below_root(to)?);
        self.run(&format!("{from} -> {to}"), move |root| {
            root.rename(&from_rel, root, &to_rel)
        })
        .await
    }

    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        let rel = relative(path)?;
        self.run(path, move |root| {
            // Checked first: opening a fifo would block.
            entry(String::new(), &root.metadata(&rel)?)?;
            let file = root.open(&rel)?.into_std();
            file.set_times(std::fs::FileTimes::new().set_modified(at.into()))
        })
        .await
    }

    async fn space(&self) -> Result<Option<Space>> {
        let stat = self
            .run("/", |root| Ok(rustix::fs::fstatvfs(root)?))
            .await?;
        Ok(Some(Space {
            total: stat.f_blocks.saturating_mul(stat.f_frsize),
            free: stat.f_bavail.saturating_mul(stat.f_frsize),
        }))
    }
}
