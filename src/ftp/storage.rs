//! libunftp's `StorageBackend` over spgate's virtual file system: the one adapter (the session's
//! [`Session`] carries its `Vfs`, so the adapter itself holds nothing).
//!
//! libunftp keeps each session's working directory and passes absolute virtual paths; they are
//! normalised again with [`vfs::normalize`] before use. Downloads stream through a small bounded
//! channel fed by `read_at`; uploads are written chunk by chunk into the `WriteHandle` as they
//! arrive (never buffered whole) and aborted on any failure, so a failed STOR leaves nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use unftp_core::storage::{
    self as ftp, FEATURE_RESTART, Fileinfo, Metadata, Permissions, StorageBackend,
};

use super::auth::Session;
use super::control::Control;
use super::reply;
use crate::session::transfers::Transfers;
use crate::storage::{Entry, Error, ErrorKind, WriteHandle, WriteMode};
use crate::vfs;

/// Bytes per `read_at` / `write_at` call (an upload has two such buffers: one being written,
/// one being received). 1 MiB writes made local-mount uploads twice as slow on disk.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the client during a download.
const READ_AHEAD: usize = 4;
/// How soon after a failed lookup a put of the same path from offset 0 is taken for an `APPE`
/// (libunftp makes the two calls back to back).
const APPE_LOOKUP_WINDOW: Duration = Duration::from_secs(2);

/// The storage adapter libunftp creates for each session.
pub struct Files {
    /// How long an upload may wait for the client's next bytes before it is aborted (libunftp
    /// has no timeout on data connections).
    idle: Duration,
    /// The session's working directory as of its last successful `CWD`, for the `SITE`
    /// commands (libunftp 0.24 does not pass the working directory to their handlers).
    working_dir: Mutex<String>,
    /// The last lookup that failed for another reason than "not there", and when: see
    /// [`Files::refuses_put`].
    failed_lookup: Mutex<Option<(String, Instant)>>,
    /// The session's control connection, when it could be told: an upload is committed only
    /// while it is open.
    control: Option<Control>,
    /// The connection's transfers in progress (a shutdown waits for them).
    transfers: Arc<Transfers>,
}

impl Files {
    pub fn new(idle: Duration, control: Option<Control>, transfers: Arc<Transfers>) -> Files {
        Files {
            idle,
            working_dir: Mutex::new("/".to_string()),
            failed_lookup: Mutex::new(None),
            control,
            transfers,
        }
    }

    /// Remembers how the lookup of `path` went.
    fn note_lookup(&self, path: &str, result: Result<&Entry, &Error>) {
        let failed = match result {
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Failed | ErrorKind::Unavailable | ErrorKind::Disabled
                ) =>
            {
                Some((path.to_string(), Instant::now()))
            }
            _ => None,
        };
        if let Ok(mut last) = self.failed_lookup.lock() {
            *last = failed;
        }
    }

    /// Whether a put of `path` from `start_pos` must be refused: libunftp 0.24's `APPE` looks
    /// the file up for its size and, when the lookup fails for any reason, writes from offset 0,
    /// which replaces the file with the appended bytes. A put from 0 of a path whose lookup
    /// just failed (SharePoint unavailable) may be such an `APPE`, so it is refused (451: the
    /// client may try again) instead of risking the file.
    fn refuses_put(&self, path: &str, start_pos: u64) -> bool {
        let last = self.failed_lookup.lock().ok().and_then(|mut l| l.take());
        refuses_put(last.as_ref(), path, start_pos, Instant::now())
    }

    /// The folder of the session's last successful `CWD` ("/" before the first). A `CDUP`
    /// since then is not seen here: libunftp handles it without calling the storage.
    pub fn working_dir(&self) -> String {
        self.working_dir
            .lock()
            .map(|dir| dir.clone())
            .unwrap_or_else(|_| "/".to_string())
    }

    /// The clean virtual path of a path libunftp passes. Every command passes an absolute path
    /// (the working directory joined with the client's) except `MLST`, whose argument libunftp
    /// 0.24 passes as the client wrote it: relative ones are resolved against [`working_dir`].
    ///
    /// [`working_dir`]: Files::working_dir
    fn vpath(&self, path: &Path) -> ftp::Result<String> {
        let path = path.to_string_lossy();
        vfs::normalize(&self.working_dir(), &path).map_err(reply::error)
    }
}

/// How long an upload waits after its data connection's end for the control connection to
/// show a client that went away: a killed client's kernel sends FIN on both connections at
/// once (usually the control connection's first: it has the lower descriptor), and the
/// control connection's may arrive a little after the data connection's. Every FTP upload
/// waits this long once: it was 20 ms, more than the upload itself for a small file.
const CONTROL_SETTLE: Duration = Duration::from_millis(5);

/// Whether the control connection is still open [`CONTROL_SETTLE`] after the data connection
/// ended.
async fn control_stays_open(control: Control) -> bool {
    control.is_open() && {
        tokio::time::sleep(CONTROL_SETTLE).await;
        control.is_open()
    }
}

/// [`Files::refuses_put`] given the last failed lookup.
fn refuses_put(
    failed_lookup: Option<&(String, Instant)>,
    path: &str,
    start_pos: u64,
    now: Instant,
) -> bool {
    start_pos == 0
        && failed_lookup.is_some_and(|(failed, at)| {
            failed == path && now.duration_since(*at) < APPE_LOOKUP_WINDOW
        })
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Files")
    }
}

/// Every entry of folder `path`, all pages.
async fn entries(user: &Session, path: &str) -> ftp::Result<Vec<Entry>> {
    let mut pages = user.vfs.list(path).await.map_err(reply::error)?;
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(page.map_err(reply::error)?);
    }
    Ok(out)
}

/// A listing's path whose last part holds `*` (any characters) or `?` (one): its folder, and
/// the part as a pattern matching names case-insensitively. Every other character stands for
/// itself (`[`, `{` are common in SharePoint names).
fn wildcard(path: &str) -> Option<(&str, globset::GlobMatcher)> {
    let (folder, name) = path.rsplit_once('/')?;
    if !name.contains(['*', '?']) {
        return None;
    }
    let pattern: String = name
        .chars()
        .map(|c| match c {
            '*' | '?' => c.to_string(),
            c => globset::escape(&c.to_string()),
        })
        .collect();
    let glob = globset::GlobBuilder::new(&pattern)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .ok()?;
    Some((
        if folder.is_empty() { "/" } else { folder },
        glob.compile_matcher(),
    ))
}

/// An entry as libunftp's metadata.
#[derive(Debug, Clone)]
pub struct Meta(pub Entry);

impl Metadata for Meta {
    fn len(&self) -> u64 {
        self.0.size
    }
    fn is_dir(&self) -> bool {
        self.0.is_dir
    }
    fn is_file(&self) -> bool {
        !self.0.is_dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> ftp::Result<SystemTime> {
        Ok(SystemTime::from(self.0.modified))
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    /// Folders 0755, files 0644 (as the SFTP front-end shows them).
    fn permissions(&self) -> Permissions {
        Permissions(if self.0.is_dir { 0o755 } else { 0o644 })
    }
}

/// Aborts the upload if it is dropped before `close` (the client aborted, the session ended).
struct Upload(Option<Box<dyn WriteHandle>>);

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(handle.abort());
        }
    }
}

/// The next chunk of `input`: [`CHUNK`] bytes, short only at the end of the data (empty
/// there); fails if the client sends nothing for `idle`. A fresh buffer each time: the
/// backend takes it over without a copy.
async fn read_chunk<R: AsyncRead + Unpin>(input: &mut R, idle: Duration) -> Result<Bytes, Error> {
    let mut buf = BytesMut::with_capacity(CHUNK);
    while buf.len() < CHUNK {
        let read = tokio::time::timeout(idle, input.read_buf(&mut buf))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no data from the client",
                ))
            });
        let n = read.map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "the data connection failed during the upload",
            )
            .with_source(e)
        })?;
        if n == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Reads all of `input` into the upload from `offset` on, each chunk written while the next
/// one is read from the client; fails if the client sends nothing for `idle`.
async fn copy_in<R: AsyncRead + Unpin>(
    input: &mut R,
    handle: &mut dyn WriteHandle,
    mut offset: u64,
    idle: Duration,
) -> Result<u64, Error> {
    let mut current = read_chunk(input, idle).await?;
    let mut total = 0u64;
    while !current.is_empty() {
        let len = current.len() as u64;
        let write = handle.write_at(offset, current);
        let (written, next) = if len < CHUNK as u64 {
            (write.await, Ok(Bytes::new())) // the client's data ended with this chunk
        } else {
            tokio::join!(write, read_chunk(input, idle))
        };
        written?;
        offset += len;
        total += len;
        current = next?;
    }
    Ok(total)
}

#[async_trait]
impl StorageBackend<Session> for Files {
    type Metadata = Meta;

    fn name(&self) -> &str {
        "spgate"
    }

    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<Meta> {
        let path = self.vpath(path.as_ref())?;
        let entry = user.vfs.stat(&path).await;
        self.note_lookup(&path, entry.as_ref());
        entry.map(Meta).map_err(reply::error)
    }

    /// `LIST`/`NLST` of a folder: its entries; of a file: the file (RFC 959); of a name that
    /// does not exist with `*` or `?` in its last part (`NLST *.csv`, which `mget *.csv`
    /// sends): the matching entries of its folder, compared as SharePoint compares names
    /// (case-insensitively), none being an empty listing. Names come back bare, as libunftp
    /// lists a folder.
    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<Vec<Fileinfo<PathBuf, Meta>>> {
        let path = self.vpath(path.as_ref())?;
        let info = |folder: &str, entry: Entry| Fileinfo {
            path: PathBuf::from(crate::storage::join(folder, &entry.name)),
            metadata: Meta(entry),
        };
        // A folder's own entry is cached for its listing (SharePoint), so this costs no round
        // trip more. A name that exists is listed as itself, even with `*` or `?` in it (names
        // SharePoint refuses are stored encoded); other failures are left to the listing,
        // which reports and audits them (a lookup is not audited: one LIST, one audit line).
        match user.vfs.lookup(&path).await {
            Ok(entry) if !entry.is_dir => {
                return Ok(vec![Fileinfo {
                    path: PathBuf::from(&path),
                    metadata: Meta(entry),
                }]);
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                if let Some((folder, pattern)) = wildcard(&path) {
                    let entries = entries(user, folder).await?;
                    return Ok(entries
                        .into_iter()
                        .filter(|e| pattern.is_match(&e.name))
                        .map(|e| info(folder, e))
                        .collect());
                }
            }
            _ => {}
        }
        let entries = entries(user, &path).await?;
        Ok(entries.into_iter().map(|e| info(&path, e)).collect())
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        let transfer = self.transfers.try_start().map_err(reply::error)?;
        let path = self.vpath(path.as_ref())?;
        let mut handle = user.vfs.open_read(&path).await.map_err(reply::error)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
        tokio::spawn(async move {
            let mut offset = start_pos;
            loop {
                let chunk = match handle.read_at(offset, CHUNK).await {
                    Ok(chunk) if chunk.is_empty() => return,
                    Ok(chunk) => chunk,
                    Err(e) => {
                        tracing::warn!(path, error = %crate::logging::chain(&e), "ftp download failed");
                        let _ = tx.send(Err(std::io::Error::other(e.message))).await;
                        return;
                    }
                };
                offset += chunk.len() as u64;
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        // The transfer lasts as long as libunftp holds the reader.
        let chunks = futures_util::stream::poll_fn(move |cx| {
            let _in_progress = &transfer;
            rx.poll_recv(cx)
        });
        Ok(Box::new(tokio_util::io::StreamReader::new(chunks)))
    }

    async fn put<
        P: AsRef<Path> + Send + fmt::Debug,
        R: AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &Session,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<u64> {
        let _transfer = self.transfers.try_start().map_err(reply::error)?;
        let path = self.vpath(path.as_ref())?;
        if self.refuses_put(&path, start_pos) {
            return Err(reply::error(Error::new(
                ErrorKind::Unavailable,
                format!("{path}: its size could not be read just now; not replacing it"),
            )));
        }
        // APPE and REST+STOR keep what is there and write from the offset.
        let mode = if start_pos > 0 {
            WriteMode::Keep
        } else {
            WriteMode::Truncate
        };
        let handle = user
            .vfs
            .open_write(&path, mode)
            .await
            .map_err(reply::error)?;
        let mut upload = Upload(Some(handle));
        let Some(handle) = upload.0.as_deref_mut() else {
            unreachable!("the upload was just opened");
        };
        let written = match copy_in(&mut input, handle, start_pos, self.idle).await {
            Ok(n) => n,
            Err(e) => {
                if let Some(handle) = upload.0.take() {
                    handle.abort().await;
                }
                return Err(reply::error(e));
            }
        };
        let Some(handle) = upload.0.take() else {
            unreachable!("the upload is still open");
        };
        let client_left = match self.control {
            Some(control) => !control_stays_open(control).await,
            None => false,
        };
        if client_left {
            // The data connection ended because the client went away (killed, cut off), not
            // because the file was complete: nothing is stored.
            tracing::warn!(user = %user, path, bytes = written, "FTP upload dropped: the client's control connection closed before the upload ended");
            handle.abort().await;
            return Err(reply::error(Error::new(
                ErrorKind::Failed,
                format!("{path}: the client left during the upload; nothing was stored"),
            )));
        }
        handle.close().await.map_err(reply::error)?;
        Ok(written)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<()> {
        let path = self.vpath(path.as_ref())?;
        user.vfs.remove_file(&path).await.map_err(reply::error)
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<()> {
        let path = self.vpath(path.as_ref())?;
        user.vfs.mkdir(&path).await.map_err(reply::error)
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        from: P,
        to: P,
    ) -> ftp::Result<()> {
        let from = self.vpath(from.as_ref())?;
        let to = self.vpath(to.as_ref())?;
        user.vfs.rename(&from, &to).await.map_err(reply::error)
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<()> {
        let path = self.vpath(path.as_ref())?;
        user.vfs.remove_dir(&path).await.map_err(reply::error)
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &Session,
        path: P,
    ) -> ftp::Result<()> {
        let path = self.vpath(path.as_ref())?;
        let entry = user.vfs.stat(&path).await.map_err(reply::error)?;
        if !entry.is_dir {
            return Err(reply::error(Error::new(
                ErrorKind::NotADirectory,
                format!("{path}: not a folder"),
            )));
        }
        if let Ok(mut dir) = self.working_dir.lock() {
            *dir = path;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_in_the_last_part_matches_names_of_its_folder() {
        let matches = |path: &str, name: &str| {
            let (_, pattern) = wildcard(path).unwrap();
            pattern.is_match(name)
        };
        assert_eq!(wildcard("/Outbound/*.csv").unwrap().0, "/Outbound");
        assert_eq!(wildcard("/*.csv").unwrap().0, "/");
        assert!(matches("/o/*.csv", "Export 2026.CSV"));
        assert!(matches("/o/inv-??.pdf", "INV-07.pdf"));
        assert!(!matches("/o/inv-??.pdf", "inv-7.pdf"));
        assert!(!matches("/o/*.csv", "a.csv.part"));
        // Only * and ? are wildcards: brackets and braces are part of names.
        assert!(matches("/o/[draft] *.docx", "[Draft] plan.docx"));
        assert!(!matches("/o/[draft] *.docx", "d plan.docx"));
        assert!(matches("/o/{a,b}*", "{a,b}1"));
        assert!(!matches("/o/{a,b}*", "a1"));
        assert!(wildcard("/o/plain.csv").is_none());
        assert!(wildcard("/o*/plain.csv").is_none());
    }

    #[test]
    fn a_put_from_zero_right_after_a_failed_lookup_of_its_path_is_refused() {
        let now = Instant::now();
        let failed = ("/log.txt".to_string(), now);
        assert!(refuses_put(Some(&failed), "/log.txt", 0, now));
        // A resumed upload has its offset; other paths and older failures are not affected.
        assert!(!refuses_put(Some(&failed), "/log.txt", 10, now));
        assert!(!refuses_put(Some(&failed), "/other.txt", 0, now));
        assert!(!refuses_put(
            Some(&failed),
            "/log.txt",
            0,
            now + APPE_LOOKUP_WINDOW
        ));
        assert!(!refuses_put(None, "/log.txt", 0, now));
    }
}
