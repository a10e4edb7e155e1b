//! Uploads: one simple `PUT` for small files (and the only way to create an empty file), upload
//! sessions for the rest. A session is fed like a writer: bytes are buffered into fragments of
//! the connection's chunk size (a multiple of 320 KiB) and sent in order; a fragment that fails
//! is resumed from the session's `nextExpectedRanges`; the file appears in SharePoint only when
//! the last fragment is accepted. A session that is not finished is cancelled.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use reqwest::{Method, StatusCode, header};
use serde_json::json;
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

use super::client::{Client, backoff};
use super::drive::{Drive, Entry, decode, send_json, split_parent};
use super::error::{Error, Kind, Result};
use crate::wire::{DriveItem, UploadSession};

/// Files up to this size go in one simple upload (when no modification time must be set).
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;

/// A reader source is read in pieces of up to this size.
const READ_PIECE: usize = 1 << 20;
/// Source bytes read ahead of the upload, in the source's pieces (at least one piece).
const READ_AHEAD_BYTES: usize = 12 << 20;

/// Failed fragment attempts in a row before an upload gives up.
const MAX_FRAGMENT_FAILURES: u32 = 6;

/// Fragments must be multiples of this (but the last).
const FRAGMENT_UNIT: u64 = 320 * 1024;
/// Graph refuses fragments of 60 MiB or more.
const FRAGMENT_LIMIT: u64 = 60 * 1024 * 1024;
/// A fragment read from a file is sent in pieces of this size.
const FILE_PIECE: u64 = 1 << 20;

/// The fragment size for a file of `size` bytes sent straight from disk: each fragment costs a
/// round trip, so a large file goes in about 16 of them (at least `base`, the connection's
/// chunk; at most just under Graph's 60 MiB), a multiple of 320 KiB. Read from the file as
/// they are sent, large fragments hold no memory.
pub fn fragment_for(size: u64, base: u64) -> u64 {
    let most = FRAGMENT_LIMIT - FRAGMENT_UNIT;
    let want = (size / 16).clamp(base.min(most), most);
    (want / FRAGMENT_UNIT).max(1) * FRAGMENT_UNIT
}

/// Where a fragment's bytes come from.
enum Fragment {
    /// Taken out of `pending` (or not yet added to it); put back when not all accepted.
    Bytes(Bytes),
    /// `len` bytes of a file from the upload's acknowledged offset, read as they are sent.
    File { file: Arc<std::fs::File>, len: u64 },
}

impl Fragment {
    fn len(&self) -> u64 {
        match self {
            Fragment::Bytes(bytes) => bytes.len() as u64,
            Fragment::File { len, .. } => *len,
        }
    }

    /// The request body (a new one for each attempt).
    fn body(&self, start: u64) -> reqwest::Body {
        match self {
            Fragment::Bytes(bytes) => bytes.clone().into(),
            Fragment::File { file, len } => {
                let pieces =
                    crate::fsio::pieces(file.clone(), start, start + len, FILE_PIECE as usize);
                reqwest::Body::wrap_stream(pieces)
            }
        }
    }
}

/// Whether a file of `len` bytes goes up in one request (no upload session): small, and no
/// time to send with it.
pub fn one_request(len: u64, modified: Option<DateTime<Utc>>) -> bool {
    len == 0 || (len <= SIMPLE_UPLOAD_MAX && modified.is_none())
}

/// What an upload does when its name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// An existing file is replaced (a folder of that name is an `AlreadyExists` error).
    Replace,
    /// Any existing item is an `AlreadyExists` error and stays as it is.
    Fail,
}

impl OnConflict {
    /// `Replace` when the uploader may replace an existing file, else `Fail`.
    pub fn replacing(replace: bool) -> Self {
        if replace {
            OnConflict::Replace
        } else {
            OnConflict::Fail
        }
    }

    /// Graph's `@microsoft.graph.conflictBehavior` value.
    fn behaviour(self) -> &'static str {
        match self {
            OnConflict::Replace => "replace",
            OnConflict::Fail => "fail",
        }
    }
}

/// An upload session being filled.
pub struct Upload {
    client: Arc<Client>,
    url: String,
    total: u64,
    chunk: usize,
    /// Bytes the service has acknowledged.
    acked: u64,
    /// Bytes from `acked` on, not yet acknowledged.
    pending: BytesMut,
    /// Failed fragment attempts in a row.
    failures: u32,
    finished: bool,
    /// An unfinished session stays open when dropped (its URL is kept to resume it later).
    keep: bool,
}

impl Drive {
    /// Uploads `len` bytes read from `source` to `path`, replacing an existing file.
    pub async fn upload(
        &self,
        path: &str,
        source: impl AsyncRead + Unpin,
        len: u64,
        modified: Option<DateTime<Utc>>,
    ) -> Result<Entry> {
        let pieces = ReaderStream::with_capacity(source, READ_PIECE);
        self.upload_pieces(path, pieces, READ_PIECE, len, modified, OnConflict::Replace)
            .await
    }

    /// Uploads the `len` bytes that `pieces` yields (each at most `piece` bytes) to `path`;
    /// `on_conflict` says what happens to an existing file. One request for a small file
    /// without a modification time; the answer is the stored item. Pieces of the connection's chunk size
    /// ([`Client::upload_chunk`]) go out as fragments without being copied.
    pub async fn upload_pieces(
        &self,
        path: &str,
        mut pieces: impl Stream<Item = std::io::Result<Bytes>> + Unpin,
        piece: usize,
        len: u64,
        modified: Option<DateTime<Utc>>,
        on_conflict: OnConflict,
    ) -> Result<Entry> {
        if one_request(len, modified) {
            let mut bytes = BytesMut::with_capacity(len as usize);
            while bytes.len() as u64 != len {
                match pieces.next().await.transpose()? {
                    Some(p) => {
                        bytes.extend_from_slice(&p[..p.len().min(len as usize - bytes.len())])
                    }
                    None => {
                        return Err(Error::new(
                            Kind::Io,
                            format!("the source ended after {} of {len} bytes", bytes.len()),
                        ));
                    }
                }
            }
            return self
                .upload_whole(path, bytes.freeze(), modified, on_conflict)
                .await;
        }
        let mut upload = self
            .upload_session(path, len, modified, on_conflict)
            .await?;
        // Read ahead while fragments are in flight: a reader task fills a small bounded queue.
        let ahead = (READ_AHEAD_BYTES / piece.max(1)).max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(ahead);
        let reader = async move {
            while let Some(piece) = pieces.next().await {
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
        };
        let writer = async {
            // Owning the receiver here drops it when the writer stops, which stops the reader.
            let mut rx = rx;
            while let Some(piece) = rx.recv().await {
                upload.write_bytes(piece?).await?;
            }
            Ok::<_, Error>(())
        };
        let ((), written) = tokio::join!(reader, writer);
        written?;
        upload.finish().await
    }

    /// A file uploaded in one request (and its time set in a second, when it has one).
    pub async fn upload_whole(
        &self,
        path: &str,
        bytes: Bytes,
        modified: Option<DateTime<Utc>>,
        on_conflict: OnConflict,
    ) -> Result<Entry> {
        let entry = self.upload_small(path, bytes, on_conflict).await?;
        match modified {
            Some(at) => self.set_modified(path, at).await,
            None => Ok(entry),
        }
    }

    /// One `PUT .../content`.
    pub async fn upload_small(
        &self,
        path: &str,
        bytes: Bytes,
        on_conflict: OnConflict,
    ) -> Result<Entry> {
        self.check_new_path(path, false)?;
        let url = format!(
            "{}?@microsoft.graph.conflictBehavior={}",
            self.item_url(path, "/content"),
            on_conflict.behaviour()
        );
        let response = self
            .client
            .send(
                |http| {
                    http.put(&url)
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                },
                true,
            )
            .await?;
        let item: DriveItem = decode(response).await?;
        Ok(item.into())
    }

    /// Opens an upload session for `total` bytes at `path`, with the modification time.
    pub async fn upload_session(
        &self,
        path: &str,
        total: u64,
        modified: Option<DateTime<Utc>>,
        on_conflict: OnConflict,
    ) -> Result<Upload> {
        self.check_new_path(path, false)?;
        if total == 0 {
            return Err(Error::new(
                Kind::Invalid,
                "an upload session cannot create an empty file",
            ));
        }
        split_parent(path)?;
        let mut item = json!({ "@microsoft.graph.conflictBehavior": on_conflict.behaviour() });
        if let Some(at) = modified {
            item["fileSystemInfo"] = json!({ "lastModifiedDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
        }
        let url = self.item_url(path, "/createUploadSession");
        let session: UploadSession =
            send_json(&self.client, Method::POST, &url, &json!({ "item": item })).await?;
        let upload_url = session
            .upload_url
            .ok_or_else(|| Error::new(Kind::Invalid, "the upload session has no uploadUrl"))?;
        Ok(Upload {
            client: self.client.clone(),
            url: upload_url,
            total,
            chunk: self.client.upload_chunk() as usize,
            acked: 0,
            pending: BytesMut::new(),
            failures: 0,
            finished: false,
            keep: false,
        })
    }

    /// Takes up an upload session opened earlier (its `uploadUrl`, kept across a restart) for
    /// `total` bytes, from where the service says it stands (`nextExpectedRanges`): the bytes
    /// before that are not sent again. `NotFound` when the session expired or was cancelled.
    pub async fn resume_upload(&self, url: &str, total: u64) -> Result<Upload> {
        let status: UploadSession =
            decode(self.client.send(|http| http.get(url), false).await?).await?;
        let acked = next_expected(&status)
            .filter(|&next| next < total)
            .ok_or_else(|| {
                Error::new(Kind::NotFound, "the upload session has nothing to resume")
            })?;
        Ok(Upload {
            client: self.client.clone(),
            url: url.to_string(),
            total,
            chunk: self.client.upload_chunk() as usize,
            acked,
            pending: BytesMut::new(),
            failures: 0,
            finished: false,
            keep: false,
        })
    }
}

fn next_expected(session: &UploadSession) -> Option<u64> {
    session
        .next_expected_ranges
        .first()
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
}

impl Upload {
    /// Bytes accepted so far by this upload (acknowledged or buffered).
    pub fn written(&self) -> u64 {
        self.acked + self.pending.len() as u64
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The session's `uploadUrl` (pre-authenticated: never logged).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Leaves the session open if this upload is dropped unfinished, to be resumed from its
    /// URL ([`Drive::resume_upload`]).
    pub fn keep_on_drop(&mut self) {
        self.keep = true;
    }

    /// Adds bytes; full fragments are sent as they fill.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_room(data.len())?;
        self.buffer(data);
        self.send_full().await
    }

    /// [`Upload::write`] for owned bytes: while nothing is pending, whole fragments are sent
    /// straight from `data`, without a copy.
    pub async fn write_bytes(&mut self, mut data: Bytes) -> Result<()> {
        self.check_room(data.len())?;
        while self.pending.is_empty() && data.len() >= self.chunk && self.more_than_a_chunk_left() {
            self.send_fragment(data.split_to(self.chunk)).await?;
        }
        self.buffer(&data);
        self.send_full().await
    }

    /// Appends `data` to `pending`, with room for a whole fragment at once (growing it by
    /// doubling would copy each fragment several times).
    fn buffer(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let fragment = self.chunk.min((self.total - self.acked) as usize);
        let room = fragment.saturating_sub(self.pending.len());
        self.pending.reserve(data.len().max(room));
        self.pending.extend_from_slice(data);
    }

    fn check_room(&self, len: usize) -> Result<()> {
        if self.written() + len as u64 > self.total {
            return Err(Error::new(
                Kind::Invalid,
                format!("more data than the {} bytes announced", self.total),
            ));
        }
        Ok(())
    }

    /// Whether a full chunk from `acked` on would not be the last fragment (the last one is
    /// sent by [`Upload::finish`]).
    fn more_than_a_chunk_left(&self) -> bool {
        self.acked + (self.chunk as u64) < self.total
    }

    /// Sends the full fragments that are pending.
    async fn send_full(&mut self) -> Result<()> {
        while self.pending.len() >= self.chunk && self.more_than_a_chunk_left() {
            let fragment = self.pending.split_to(self.chunk).freeze();
            self.send_fragment(fragment).await?;
        }
        Ok(())
    }

    /// Sends the rest of the upload (from what the service has acknowledged) straight from
    /// `file`, which holds the whole upload, in fragments of `fragment` bytes (see
    /// [`fragment_for`]); answers the new item. Nothing may be buffered.
    pub async fn finish_from_file(
        mut self,
        file: Arc<std::fs::File>,
        fragment: u64,
    ) -> Result<Entry> {
        if !self.pending.is_empty() {
            return Err(Error::new(Kind::Invalid, "bytes are buffered: use finish"));
        }
        loop {
            let len = fragment.min(self.total - self.acked);
            let fragment = Fragment::File {
                file: file.clone(),
                len,
            };
            if let Some(item) = self.send(fragment).await? {
                self.finished = true;
                return Ok(item.into());
            }
        }
    }

    /// Sends what is left; answers the new item once SharePoint has committed it.
    pub async fn finish(mut self) -> Result<Entry> {
        if self.written() != self.total {
            let message = format!(
                "the upload ended after {} of {} bytes",
                self.written(),
                self.total
            );
            return Err(Error::new(Kind::Io, message));
        }
        loop {
            let len = self.pending.len().min(self.chunk);
            let fragment = self.pending.split_to(len).freeze();
            if let Some(item) = self.send_fragment(fragment).await? {
                self.finished = true;
                return Ok(item.into());
            }
        }
    }

    /// Sends `fragment`, the bytes from `acked` on (taken out of `pending` or not yet added to
    /// it), once. When not all of it is accepted (rare), it is put back in front of `pending`.
    /// On a failure it asks the session where to go on (`nextExpectedRanges`) and returns, so
    /// that the caller cuts the next fragment from there with the 320 KiB rule intact. Answers
    /// the item when the file is done.
    async fn send_fragment(&mut self, fragment: Bytes) -> Result<Option<DriveItem>> {
        self.send(Fragment::Bytes(fragment)).await
    }

    async fn send(&mut self, fragment: Fragment) -> Result<Option<DriveItem>> {
        let start = self.acked;
        let len = fragment.len();
        let end = start + len - 1;
        let range = format!("bytes {start}-{end}/{}", self.total);
        let url = self.url.clone();
        let sent = self
            .client
            .send_once(|http| {
                http.put(&url)
                    .header(header::CONTENT_RANGE, &range)
                    .header(header::CONTENT_LENGTH, len)
                    .body(fragment.body(start))
            })
            .await;
        let e = match sent {
            Ok(response) if response.status() == StatusCode::ACCEPTED => {
                let decoded: Result<UploadSession> = decode(response).await;
                let next = decoded
                    .as_ref()
                    .ok()
                    .and_then(next_expected)
                    .unwrap_or(end + 1);
                if next == end + 1 {
                    self.acked = next;
                } else {
                    self.unsend(&fragment);
                    self.advance(next);
                }
                decoded?;
                self.failures = 0;
                return Ok(None);
            }
            Ok(response) => {
                self.acked = end + 1;
                let item: DriveItem = decode(response).await?;
                return Ok(Some(item));
            }
            Err(e)
                if matches!(
                    e.kind,
                    Kind::NotFound
                        | Kind::PermissionDenied
                        | Kind::Disabled
                        | Kind::QuotaExceeded
                        | Kind::AlreadyExists
                        | Kind::Locked
                ) =>
            {
                self.unsend(&fragment);
                return Err(e);
            }
            Err(e) => {
                self.unsend(&fragment);
                e
            }
        };
        self.failures += 1;
        if self.failures > MAX_FRAGMENT_FAILURES {
            return Err(e);
        }
        tracing::warn!(connection = %self.client.name, error = %crate::logging::chain(&e), "upload fragment failed; resuming from the session's status");
        self.client
            .counters
            .fragment_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(backoff(
            self.failures - 1,
            Duration::from_millis(200),
            Duration::from_secs(10),
        ))
        .await;
        let url = self.url.clone();
        let status: UploadSession =
            decode(self.client.send(|http| http.get(&url), false).await?).await?;
        let next = next_expected(&status)
            .ok_or_else(|| Error::new(Kind::Unavailable, "the upload session lost its place"))?;
        self.advance(next);
        if self.acked == self.total {
            return Err(Error::new(
                Kind::Unavailable,
                "the upload session holds every byte but did not commit",
            ));
        }
        Ok(None)
    }

    /// Puts a fragment that was not (wholly) accepted back in front of the pending bytes (a
    /// file's fragment is read again from the file).
    fn unsend(&mut self, fragment: &Fragment) {
        let Fragment::Bytes(fragment) = fragment else {
            return;
        };
        let mut restored = BytesMut::with_capacity(fragment.len() + self.pending.len());
        restored.extend_from_slice(fragment);
        restored.extend_from_slice(&self.pending);
        self.pending = restored;
    }

    fn advance(&mut self, next: u64) {
        if self.pending.is_empty() {
            // Sending from a file: nothing buffered to drop.
            self.acked = self.acked.max(next.min(self.total));
        } else if next > self.acked {
            let done = ((next - self.acked) as usize).min(self.pending.len());
            let _ = self.pending.split_to(done);
            self.acked += done as u64;
        }
    }

    /// Abandons the session (the partial content is discarded by SharePoint).
    pub async fn cancel(mut self) {
        self.finished = true;
        let url = self.url.clone();
        if let Err(e) = self.client.send(|http| http.delete(&url), false).await {
            tracing::warn!(connection = %self.client.name, error = %crate::logging::chain(&e), "could not cancel an upload session");
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.finished || self.keep {
            return;
        }
        let client = self.client.clone();
        let url = std::mem::take(&mut self.url);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.send(|http| http.delete(&url), false).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_go_in_about_16_fragments_of_320_kib_units_under_60_mib() {
        const MIB: u64 = 1 << 20;
        let base = 10 * MIB / FRAGMENT_UNIT * FRAGMENT_UNIT;
        for (size, want) in [
            (20 * MIB, base),
            (256 * MIB, 16 * MIB / FRAGMENT_UNIT * FRAGMENT_UNIT),
            (1024 * MIB, FRAGMENT_LIMIT - FRAGMENT_UNIT),
            (100 * 1024 * MIB, FRAGMENT_LIMIT - FRAGMENT_UNIT),
        ] {
            let got = fragment_for(size, base);
            assert_eq!(got, want, "{size}");
            assert_eq!(got % FRAGMENT_UNIT, 0);
            assert!(got < FRAGMENT_LIMIT);
        }
        assert_eq!(fragment_for(MIB, 1), FRAGMENT_UNIT, "never below one unit");
    }
}
