//! A folder of a SharePoint library as a storage backend, passing every operation through to
//! Graph in real time.
//!
//! - Reads stream (`reader`): one GET serves consecutive reads of a small file; a large one is
//!   fetched in blocks, several at once, handed out in order (`prefetch`); a read elsewhere
//!   restarts at that offset. Never a Graph request per SFTP/FTP read.
//! - Writes spool to an unlinked temporary file and are uploaded when the handle closes (Graph
//!   upload sessions need the total size in every fragment, and SFTP/FTP clients do not announce
//!   it). The file appears in SharePoint only when the upload completes; a failed upload is an
//!   error at close and its session is cancelled.
//! - A short-lived metadata cache (a few seconds; cleared by this gateway's own changes) saves
//!   the stat that clients send after listing a folder.
//! - With `names = "encode"`, every path going in is mapped segment by segment to the
//!   look-alike names SharePoint stores ([`graph::lookalike`]) and every name coming out is
//!   mapped back; stored names no encoding produces are left out of listings (they could not
//!   be reached under their decoded name). The cache holds stored names.

mod prefetch;
mod queued;
mod reader;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use super::local::{read_at, write_all_at};
use super::{
    Backend, Capabilities, Entry, Error, ErrorKind, ReadHandle, Result, Space, WriteHandle,
    WriteMode,
};
use crate::config::Names;
use crate::connections::Connection;
use crate::graph::{self, Drive, OnConflict, lookalike};
use crate::storage::queue;
use queued::{Handover, QueuedReader};
use reader::Reader;

pub use queued::Commit;

const CACHE_TTL: Duration = Duration::from_secs(5);
/// Folders are kept longer: they change rarely, this gateway's own changes drop them, and a
/// new file's folder is checked from here before every upload.
const FOLDER_TTL: Duration = Duration::from_secs(60);

pub struct SharePoint {
    connection: Arc<Connection>,
    /// The mounted folder inside the library (`/` or `/Partners/Acme`).
    root: String,
    spool_dir: PathBuf,
    cache: Arc<DashMap<String, (Entry, Instant)>>,
    /// `names = "encode"`: names are stored as look-alikes where SharePoint refuses them.
    encode: bool,
    /// The upload queue: how closes are committed, and the queued files this mount sees.
    commit: Option<Commit>,
}

fn entry(e: graph::Entry) -> Entry {
    Entry {
        name: e.name,
        size: e.size,
        is_dir: e.is_dir,
        modified: e.modified,
        id: Some(e.id),
    }
}

impl SharePoint {
    pub fn new(connection: Arc<Connection>, root: &str, spool_dir: PathBuf, names: Names) -> Self {
        SharePoint {
            connection,
            root: root.trim_end_matches('/').to_string(),
            spool_dir,
            cache: Arc::new(DashMap::new()),
            encode: names == Names::Encode,
            commit: None,
        }
    }

    /// Commits uploads as `commit` says, and shows the queue's files.
    pub fn with_commit(mut self, commit: Commit) -> Self {
        self.commit = Some(commit);
        self
    }

    /// The queued file at the library path `full`, if there is one.
    fn pending(&self, full: &str) -> Option<queue::Pending> {
        let commit = self.commit.as_ref()?;
        commit.queue.pending(self.connection.name(), full)
    }

    fn queue(&self) -> Option<&queue::Queue> {
        self.commit.as_ref().map(|c| &*c.queue)
    }

    /// Deletes the SharePoint item at `full` a queued file would have replaced, if any.
    async fn delete_stale(&self, stale: Option<String>) -> Result<()> {
        let Some(stale) = stale else { return Ok(()) };
        self.forget(&stale);
        match self.drive().await?.delete(&stale).await {
            Err(e) if e.kind != graph::Kind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The library path of a backend path, with stored (encoded) names.
    fn full(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            format!("{}/", self.root)
        } else if self.encode {
            let stored = lookalike::encode_path(path, self.root.is_empty());
            format!("{}/{stored}", self.root)
        } else {
            format!("{}/{path}", self.root)
        }
    }

    /// How names of one folder are shown: `Some(at_library_root)` when they are decoded,
    /// `None` when they are shown as stored. `in_mount_root`: the folder is the mounted one.
    fn decoding(&self, in_mount_root: bool) -> Option<bool> {
        self.encode.then_some(self.root.is_empty() && in_mount_root)
    }

    async fn drive(&self) -> Result<Arc<Drive>> {
        Ok(self.connection.drive().await?)
    }

    fn forget(&self, full: &str) {
        self.cache.remove(full);
        if let Ok((parent, _)) = graph::drive::split_parent(full) {
            self.cache.remove(&format!("{parent}/"));
        }
    }

    /// What the cache knows of `full`, if it is fresh.
    fn cached(&self, full: &str) -> Option<Entry> {
        let hit = self.cache.get(full)?;
        let ttl = if hit.0.is_dir { FOLDER_TTL } else { CACHE_TTL };
        (hit.1.elapsed() < ttl).then(|| hit.0.clone())
    }

    /// Drops what the cache knows of `full` and, for a folder, of everything below it.
    fn forget_tree(&self, full: &str) {
        self.forget(full);
        let below = format!("{}/", full.trim_end_matches('/'));
        self.cache.retain(|path, _| !path.starts_with(&below));
    }

    /// A new file's folder must exist: uploads by path would create missing folders, which a
    /// client writing into a folder that is not there must not get (nor a user who may not
    /// create folders). The mounted folder itself is not asked about; others usually come from
    /// the cache (the client listed or stat'ed them), else cost one request.
    async fn check_parent(&self, path: &str, full: &str) -> Result<()> {
        let (parent, _) = graph::drive::split_parent(full)?;
        if parent.trim_end_matches('/') == self.root {
            return Ok(());
        }
        let found = match self.stat_full(&parent).await {
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{path}: its folder does not exist"),
                ));
            }
            found => found?,
        };
        if !found.is_dir {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("{path}: its parent is not a folder"),
            ));
        }
        Ok(())
    }

    async fn stat_full(&self, full: &str) -> Result<Entry> {
        if let Some(pending) = self.pending(full) {
            let name = full.rsplit('/').next().unwrap_or_default();
            return Ok(queued::entry(name, &pending));
        }
        if let Some(hit) = self.cached(full) {
            return Ok(hit);
        }
        let found = entry(self.drive().await?.stat(full).await?);
        self.cache
            .insert(full.to_string(), (found.clone(), Instant::now()));
        Ok(found)
    }
}

#[async_trait]
impl Backend for SharePoint {
    fn describe(&self) -> String {
        format!(
            "SharePoint connection '{}' folder '{}/'",
            self.connection.name(),
            self.root
        )
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_write: false,
            set_modified: true,
            item_ids: true,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let mut found = self.stat_full(&self.full(path)).await?;
        let depth = graph::names::segments(path).len();
        if let Some(at_library_root) = self.decoding(depth == 1).filter(|_| depth > 0) {
            found.name = lookalike::decode_name(&found.name, at_library_root);
        }
        Ok(found)
    }

    async fn list(&self, path: &str) -> Result<BoxStream<'static, Result<Vec<Entry>>>> {
        let drive = self.drive().await?;
        let folder = self.full(path);
        if !self.stat_full(&folder).await?.is_dir {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("{path}: not a folder"),
            ));
        }
        let cache = self.cache.clone();
        let decoding = self.decoding(segments_empty(path));
        let first = drive.children_url(&folder);
        // Queued files show in place of what SharePoint has under their names, and after the
        // last page where it has nothing.
        let queued: Vec<Entry> = match self.queue() {
            Some(q) => q
                .pending_children(self.connection.name(), &folder)
                .iter()
                .map(|(name, p)| queued::entry(name, p))
                .collect(),
            None => Vec::new(),
        };
        let queued = Arc::new(parking_lot::Mutex::new(queued));
        let pages = futures_util::stream::try_unfold(Some(Some(first)), move |next| {
            let (drive, cache, folder) = (drive.clone(), cache.clone(), folder.clone());
            let queued = queued.clone();
            async move {
                let Some(next) = next else { return Ok(None) };
                let Some(url) = next else {
                    let rest = std::mem::take(&mut *queued.lock());
                    return Ok(Some((shown(rest, decoding, &folder), None)));
                };
                let (items, next) = drive.children_page(&url).await?;
                let mut entries: Vec<Entry> = items.into_iter().map(entry).collect();
                for e in &entries {
                    cache.insert(
                        format!("{}/{}", folder.trim_end_matches('/'), e.name),
                        (e.clone(), Instant::now()),
                    );
                }
                {
                    let mut queued = queued.lock();
                    for e in entries.iter_mut() {
                        if let Some(at) = queued.iter().position(|q| q.name == e.name) {
                            *e = queued.swap_remove(at);
                        }
                    }
                }
                Ok::<_, Error>(Some((shown(entries, decoding, &folder), Some(next))))
            }
        });
        Ok(pages.boxed())
    }

    async fn open_read(&self, path: &str) -> Result<Box<dyn ReadHandle>> {
        let full = self.full(path);
        if let Some(reader) = self
            .pending(&full)
            .and_then(|p| QueuedReader::open(&p, path))
        {
            return Ok(Box::new(reader));
        }
        let found = self.stat_full(&full).await?;
        if found.is_dir {
            return Err(Error::new(
                ErrorKind::IsADirectory,
                format!("{path}: is a folder"),
            ));
        }
        Ok(Box::new(Reader::new(
            self.drive().await?,
            full,
            found.size,
            found.id,
        )))
    }

    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let full = self.full(path);
        let drive = self.drive().await?;
        drive.check_new_path(&full, false)?;
        // No request for what the upload itself settles: its conflict behaviour decides
        // create-or-replace at close. Only keeping the content needs the file now.
        let queued = self.commit.as_ref().filter(|c| c.queued());
        let existing = match mode {
            // A queued close cannot hear SharePoint's "the name is taken": ask now.
            WriteMode::CreateNew if queued.is_some() => match self.stat_full(&full).await {
                Ok(e) => Some(e),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            WriteMode::Keep => match self.stat_full(&full).await {
                Ok(e) => Some(e),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            WriteMode::Truncate | WriteMode::CreateNew => self.cached(&full),
        };
        match &existing {
            Some(e) if e.is_dir => {
                return Err(Error::new(
                    ErrorKind::IsADirectory,
                    format!("{path}: is a folder"),
                ));
            }
            Some(_) if mode == WriteMode::CreateNew => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{path}: already exists"),
                ));
            }
            _ => {}
        }
        self.check_parent(path, &full).await?;
        let (spool, spooled) = match queued {
            Some(commit) => {
                let (file, at) = commit.queue.spool()?;
                (file, Some(at))
            }
            None => (tempfile::tempfile_in(&self.spool_dir)?, None),
        };
        let spool = Arc::new(spool);
        let depth = graph::names::segments(path).len();
        let mut writer = Writer {
            commit: queued.cloned(),
            connection: self.connection.name().to_string(),
            spooled,
            writeback: crate::fsio::Writeback::default(),
            drive,
            path: full.clone(),
            shown: path.to_string(),
            spool,
            size: 0,
            modified: None,
            create_new: mode == WriteMode::CreateNew,
            unchanged: false,
            cache: self.cache.clone(),
            decoding: self.decoding(depth == 1),
        };
        if let (Some(e), WriteMode::Keep) = (existing, mode) {
            // Resume/append on SharePoint: the existing content is re-uploaded with the new data.
            let size = match self.pending(&full) {
                Some(pending) if writer.copy_queued(&pending).await? => None,
                // Gone since the stat above: delivered (SharePoint has it), or quarantined or
                // superseded meanwhile (SharePoint's copy, if any, is what the path holds).
                Some(_) => Some(entry(writer.drive.stat(&full).await?).size),
                None => Some(e.size),
            };
            if let Some(size) = size {
                writer.fetch_existing(size).await?;
            }
            writer.unchanged = true;
        }
        self.cache.remove(&full);
        Ok(Box::new(writer))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let full = self.full(path);
        if self.pending(&full).is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{path}: a file of that name is being uploaded"),
            ));
        }
        self.drive().await?.mkdir(&full).await?;
        self.forget(&full);
        Ok(())
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        let full = self.full(path);
        if let Some(queue) = self.queue()
            && let Some(stale) = queue.remove(self.connection.name(), &full).await?
        {
            return self.delete_stale(stale).await;
        }
        if self.stat_full(&full).await?.is_dir {
            return Err(Error::new(
                ErrorKind::IsADirectory,
                format!("{path}: is a folder"),
            ));
        }
        self.forget(&full);
        self.drive().await?.delete(&full).await?;
        Ok(())
    }

    async fn remove_dir(&self, path: &str) -> Result<()> {
        let full = self.full(path);
        if segments_empty(&full) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "the mounted folder itself cannot be removed",
            ));
        }
        if self
            .queue()
            .is_some_and(|q| q.has_pending_below(self.connection.name(), &full))
        {
            return Err(Error::new(
                ErrorKind::DirectoryNotEmpty,
                format!("{path}: folder not empty (files are being uploaded into it)"),
            ));
        }
        if let Some(queue) = self.queue() {
            queue.leave_folder(self.connection.name(), &full).await;
        }
        let drive = self.drive().await?;
        let found = entry(drive.stat(&full).await?);
        if !found.is_dir {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("{path}: not a folder"),
            ));
        }
        let first = drive.children_page(&drive.children_url(&full)).await?;
        if !first.0.is_empty() {
            return Err(Error::new(
                ErrorKind::DirectoryNotEmpty,
                format!("{path}: folder not empty"),
            ));
        }
        self.forget_tree(&full);
        drive.delete(&full).await?;
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let vpath = self
            .commit
            .as_ref()
            .map(|c| c.vpath(to))
            .unwrap_or_default();
        let (from, to) = (self.full(from), self.full(to));
        self.forget_tree(&from);
        self.forget_tree(&to);
        if let Some(queue) = self.queue() {
            let connection = self.connection.name();
            if let Some(stale) = queue.rename(connection, &from, &to, &vpath).await? {
                return self.delete_stale(stale).await;
            }
            // Files queued for `to` give way to the renamed item (an upload to it already under
            // way finishes first, so that it cannot land over it); files queued below a
            // renamed folder follow it.
            let drive = self.drive().await?;
            let held = queue.hold_rename(connection, &from, &to).await;
            let renamed = drive.rename(&from, &to, true).await;
            queue
                .release_rename(&held, renamed.is_ok().then_some((&*from, &*to)))
                .await?;
            renamed?;
            return Ok(());
        }
        self.drive().await?.rename(&from, &to, true).await?;
        Ok(())
    }

    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        let full = self.full(path);
        if let Some(queue) = self.queue()
            && queue
                .set_modified(self.connection.name(), &full, at)
                .await?
        {
            return Ok(());
        }
        self.forget(&full);
        self.drive().await?.set_modified(&full, at).await?;
        Ok(())
    }

    async fn space(&self) -> Result<Option<Space>> {
        let drive = self.drive().await?;
        // Asked for now (a client asks rarely); what was heard last if SharePoint cannot say.
        let quota = drive
            .refresh_quota()
            .await
            .unwrap_or_else(|_| drive.quota());
        Ok(quota.map(|q| Space {
            total: q.total,
            free: q.remaining,
        }))
    }
}

/// A folder's entries with their names as clients see them (`decoding` as
/// [`SharePoint::decoding`]).
fn shown(mut entries: Vec<Entry>, decoding: Option<bool>, folder: &str) -> Vec<Entry> {
    if let Some(at_library_root) = decoding {
        entries.retain_mut(|e| {
            let shown = lookalike::decode_reachable(&e.name, at_library_root);
            if shown.is_none() {
                tracing::warn!(%folder, name = %e.name, "left out of a listing: \
                    names = \"encode\" cannot reach this stored name");
            }
            shown.map(|name| e.name = name).is_some()
        });
    }
    entries
}

fn segments_empty(full: &str) -> bool {
    graph::names::segments(full).is_empty()
}

/// Writes spooled to an unlinked temporary file, uploaded at close; or, with a queued commit,
/// to a spool file of the queue, queued at close.
struct Writer {
    /// Set when closes go through the queue.
    commit: Option<Commit>,
    connection: String,
    /// The queue's spool file, until it is queued (removed if it never is).
    spooled: Option<std::path::PathBuf>,
    /// A queued file goes to disk while it is written: the fsync that queues it is short.
    writeback: crate::fsio::Writeback,
    drive: Arc<Drive>,
    /// The library path (stored names).
    path: String,
    /// The path as the backend was given it, for errors.
    shown: String,
    spool: Arc<std::fs::File>,
    size: u64,
    modified: Option<DateTime<Utc>>,
    create_new: bool,
    /// The existing content was kept and nothing was written (nor a time set) since.
    unchanged: bool,
    cache: Arc<DashMap<String, (Entry, Instant)>>,
    /// As [`SharePoint::decoding`] for the file's folder.
    decoding: Option<bool>,
}

/// The most one read of a file being written returns.
const MAX_READ_BACK: usize = 4 << 20;

impl Writer {
    /// Starts from the content of the queued file `pending`; false when it is gone (delivered
    /// meanwhile).
    async fn copy_queued(&mut self, pending: &queue::Pending) -> Result<bool> {
        let (from, spool) = (pending.file.clone(), self.spool.clone());
        let copied = tokio::task::spawn_blocking(move || {
            let mut source = match std::fs::File::open(from) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                opened => opened?,
            };
            std::io::copy(&mut source, &mut &*spool).map(Some)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Failed, "copying the queued file").with_source(e))?;
        match copied? {
            Some(size) => {
                self.size = size;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Hands the spooled file to the queue; the answer as for [`WriteHandle::close`].
    async fn close_queued(&mut self, commit: &Commit) -> Result<Entry> {
        self.writeback.settle().await?;
        self.check_room(commit).await?;
        let spooled = self
            .spooled
            .take()
            .expect("a queued writer has a spool file");
        let handover = Handover {
            connection: self.connection.clone(),
            path: self.path.clone(),
            shown: self.shown.clone(),
            size: self.size,
            modified: self.modified,
            replace: !self.create_new,
            spooled,
        };
        self.cache.remove(&self.path);
        match queued::hand_over(commit, handover).await? {
            Some(verdict) => self.stored(verdict),
            None => {
                let name = self.path.rsplit('/').next().unwrap_or_default();
                let mut written = Entry::new(
                    name.to_string(),
                    self.size,
                    false,
                    self.modified.unwrap_or_else(Utc::now),
                );
                if let Some(at_library_root) = self.decoding {
                    written.name = lookalike::decode_name(&written.name, at_library_root);
                }
                Ok(written)
            }
        }
    }

    /// The quota check a queued close makes before answering: a file the library cannot hold
    /// (by its free space as last heard, less what is queued for it already) is refused now,
    /// after asking SharePoint again (one request, made only then), rather than accepted and
    /// quarantined later. If SharePoint cannot be asked, the file is queued.
    async fn check_room(&self, commit: &Commit) -> Result<()> {
        let queued = commit.queue.queued_bytes(&self.connection, &self.path);
        let fits = |quota: Option<graph::drive::Quota>| {
            quota.is_none_or(|q| self.size.saturating_add(queued) <= q.remaining)
        };
        if fits(self.drive.quota()) {
            return Ok(());
        }
        match self.drive.refresh_quota().await {
            Ok(quota) if !fits(quota) => Err(Error::new(
                ErrorKind::QuotaExceeded,
                format!(
                    "{}: the SharePoint library is full ({} bytes free, {queued} of them taken by queued uploads; the file has {})",
                    self.shown,
                    quota.map_or(0, |q| q.remaining),
                    self.size
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The answer to a close from SharePoint's verdict on the upload.
    fn stored(&self, verdict: graph::Result<graph::Entry>) -> Result<Entry> {
        let on_conflict = OnConflict::replacing(!self.create_new);
        let stored = match verdict {
            Ok(stored) => entry(stored),
            Err(e) => {
                self.cache.remove(&self.path);
                return Err(match (e.kind, on_conflict) {
                    // Replacing answers a conflict only for a folder of that name.
                    (graph::Kind::AlreadyExists, OnConflict::Replace) => Error::new(
                        ErrorKind::IsADirectory,
                        format!("{}: is a folder", self.shown),
                    ),
                    (graph::Kind::AlreadyExists, OnConflict::Fail) => Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{}: already exists", self.shown),
                    ),
                    _ => e.into(),
                });
            }
        };
        // The answer is the new item: a client's stat after the upload costs no request.
        self.cache
            .insert(self.path.clone(), (stored.clone(), Instant::now()));
        let mut stored = stored;
        if let Some(at_library_root) = self.decoding {
            stored.name = lookalike::decode_name(&stored.name, at_library_root);
        }
        Ok(stored)
    }

    async fn fetch_existing(&mut self, size: u64) -> Result<()> {
        let mut download = self.drive.download(&self.path, 0, None).await?;
        let mut offset = 0;
        while let Some(chunk) = download.body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::new(ErrorKind::Unavailable, "reading the existing file failed")
                    .with_source(e)
            })?;
            let len = chunk.len() as u64;
            write_all_at(&self.spool, &self.path, offset, chunk).await?;
            offset += len;
        }
        self.size = size;
        Ok(())
    }

    /// The spooled bytes in pieces of `piece` bytes, each read on the blocking pool straight
    /// into its own buffer.
    fn spool_pieces(&self, piece: usize) -> impl Stream<Item = std::io::Result<Bytes>> + use<> {
        crate::fsio::pieces(self.spool.clone(), 0, self.size, piece)
    }
}

#[async_trait]
impl WriteHandle for Writer {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        let end = offset + data.len() as u64;
        self.unchanged = false;
        let len = data.len() as u64;
        write_all_at(&self.spool, &self.path, offset, data).await?;
        self.size = self.size.max(end);
        if self.commit.is_some() {
            self.writeback.wrote(&self.spool, len).await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let len = (len.min(MAX_READ_BACK) as u64).min(self.size.saturating_sub(offset)) as usize;
        if len == 0 {
            return Ok(Bytes::new());
        }
        read_at(&self.spool, &self.path, offset, len).await
    }

    fn set_modified(&mut self, at: DateTime<Utc>) {
        self.unchanged = false;
        self.modified = Some(at);
    }

    async fn close(mut self: Box<Self>) -> Result<Entry> {
        if self.unchanged {
            // Opened to keep its content (`r+`) and never written: nothing to upload.
            self.cache.remove(&self.path);
            return self
                .drive
                .stat(&self.path)
                .await
                .map(entry)
                .map_err(Error::from);
        }
        if let Some(commit) = self.commit.clone() {
            return self.close_queued(&commit).await;
        }
        // The upload's own conflict behaviour settles create-or-replace in the same request.
        let on_conflict = OnConflict::replacing(!self.create_new);
        // Pieces of the fragment size go out without a copy.
        let piece = self.drive.client.upload_chunk() as usize;
        let stored = self
            .drive
            .upload_pieces(
                &self.path,
                Box::pin(self.spool_pieces(piece)),
                piece,
                self.size,
                self.modified,
                on_conflict,
            )
            .await;
        if stored.is_ok() {
            self.drive.note_stored(self.size);
        }
        self.stored(stored)
    }

    async fn abort(self: Box<Self>) {}
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(spooled) = self.spooled.take() {
            let _ = std::fs::remove_file(spooled);
        }
    }
}
