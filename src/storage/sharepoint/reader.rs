//! A SharePoint file open for reading. The first read chooses how bytes are fetched:
//!
//! - a file (from that offset) of two blocks or more, with `download_streams` > 1: blocks
//!   fetched side by side on one pre-authenticated URL and handed out in order
//!   ([`super::prefetch`]); a read elsewhere restarts the blocks at its offset;
//! - otherwise (small files, `download_streams = 1`): one streaming GET serves consecutive
//!   reads, exactly the requests a download always cost; a read elsewhere chooses again.
//!
//! After a read fails, every later read fails the same way at once.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::prefetch::{Fetch, Prefetch};
use crate::graph::{self, Drive, download::Body};
use crate::storage::{Error, ErrorKind, ReadHandle, Result};

/// How far ahead of the stream a read may be and still be read through to.
const READ_THROUGH: u64 = 4 << 20;

pub(super) struct Reader {
    drive: Arc<Drive>,
    path: String,
    size: u64,
    id: Option<String>,
    fetching: Fetching,
    /// The first failure, answered to every later read.
    failed: Option<(ErrorKind, String)>,
}

enum Fetching {
    Nothing,
    Stream(Streaming),
    Blocks(Prefetch),
}

impl Reader {
    pub(super) fn new(drive: Arc<Drive>, path: String, size: u64, id: Option<String>) -> Self {
        Reader {
            drive,
            path,
            size,
            id,
            fetching: Fetching::Nothing,
            failed: None,
        }
    }

    /// How to fetch a file of `size` bytes from `offset` on: blocks when at least two remain
    /// and parallel downloads are on (costing the redirect now), else one stream.
    async fn choose(drive: &Arc<Drive>, path: &str, size: u64, offset: u64) -> Result<Fetching> {
        let (streams, block) = (
            drive.client.download_streams(),
            drive.client.download_block(),
        );
        if streams > 1
            && size - offset >= 2 * block
            && let Some(ranges) = graph::Ranges::open(drive.clone(), path).await?
        {
            tracing::debug!(path, offset, streams, block, "parallel download");
            let prefetch = Prefetch::new(Arc::new(ranges), size, block, streams, offset);
            return Ok(Fetching::Blocks(prefetch));
        }
        Ok(Fetching::Stream(Streaming::default()))
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let follows = match &self.fetching {
            Fetching::Nothing => false,
            Fetching::Stream(stream) => stream.follows(offset),
            Fetching::Blocks(_) => true,
        };
        if !follows {
            self.fetching = Self::choose(&self.drive, &self.path, self.size, offset).await?;
        }
        match &mut self.fetching {
            Fetching::Nothing => unreachable!("chosen above"),
            Fetching::Stream(stream) => {
                let want = (len as u64).min(self.size - offset) as usize;
                stream.read(&self.drive, &self.path, offset, want).await
            }
            Fetching::Blocks(blocks) => blocks.read(offset, len).await,
        }
    }
}

#[async_trait]
impl ReadHandle for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        if let Some((kind, message)) = &self.failed {
            return Err(Error::new(*kind, message.clone()));
        }
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let read = self.read(offset, len).await;
        if let Err(e) = &read {
            self.failed = Some((e.kind, e.message.clone()));
            self.fetching = Fetching::Nothing;
        }
        read
    }
}

#[async_trait]
impl Fetch for graph::Ranges {
    async fn fetch(
        &self,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        Ok(graph::Ranges::fetch(self, start, len).await?)
    }
}

/// Reads served from one streaming ranged download.
#[derive(Default)]
struct Streaming {
    /// The offset of `buffer[0]`.
    position: u64,
    body: Option<Body>,
    buffer: BytesMut,
}

impl Streaming {
    /// Whether a read at `offset` continues this stream (at or a little ahead of it).
    fn follows(&self, offset: u64) -> bool {
        let buffered_end = self.position + self.buffer.len() as u64;
        self.body.is_some() && offset >= self.position && offset <= buffered_end + READ_THROUGH
    }

    /// `want` bytes at `offset` (fewer only where the stream ends).
    async fn read(&mut self, drive: &Drive, path: &str, offset: u64, want: usize) -> Result<Bytes> {
        if !self.follows(offset) {
            let download = drive.download(path, offset, None).await?;
            self.body = Some(download.body);
            self.position = offset;
            self.buffer.clear();
        }
        let mut resumed = false;
        while self.position + (self.buffer.len() as u64) < offset + want as u64 {
            let next = self.body.as_mut().expect("opened above").next().await;
            match next {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                // A download that broke off is resumed once where it stopped (a new ranged
                // GET, with the connection's retry budget); a second break fails the read.
                Some(Err(e)) if !resumed => {
                    resumed = true;
                    let at = self.position + self.buffer.len() as u64;
                    tracing::debug!(path, at, error = %crate::logging::chain(&e), "download broke off; resuming");
                    self.body = None;
                    let download = drive.download(path, at, None).await?;
                    self.body = Some(download.body);
                }
                Some(Err(e)) => {
                    self.body = None;
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("{path}: the download broke off"),
                    )
                    .with_source(e));
                }
                None => break,
            }
        }
        let skip = (offset - self.position) as usize;
        let _ = self.buffer.split_to(skip.min(self.buffer.len()));
        self.position = offset;
        let take = want.min(self.buffer.len());
        let out = self.buffer.split_to(take).freeze();
        self.position += take as u64;
        Ok(out)
    }
}
