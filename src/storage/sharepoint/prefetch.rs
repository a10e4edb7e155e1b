//! Parallel read-ahead for a file read front to back: the file is fetched in blocks, up to
//! `streams` of them at once, each by a task of its own, and handed out strictly in order.
//!
//! - Each stream is kept busy: a block's successor starts about one round trip before the block
//!   ends (when what is still to come of it would arrive within the last block's time to first
//!   byte, at its rate), so the stream's next bytes follow without a gap. At most `window`
//!   (<= `streams`) blocks are downloading with more than that to come.
//! - Memory is bounded: at most `window + 1` blocks are held (in flight or waiting), each at most
//!   `block` bytes; the block after them starts when the first one is handed out.
//! - A block that fails (an error, a body that breaks off, too few or too many bytes) is
//!   fetched again once from where it stopped; a second failure is the error of the read that
//!   needs the block. No byte is handed out past a gap, out of order, or twice.
//! - A read elsewhere drops every block and starts over at its offset with one block in flight,
//!   doubling with each block handed out (random access does not fetch `streams` blocks per
//!   read); the first read starts with all `streams`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::storage::{Error, ErrorKind, Result};

/// Where blocks come from: exact byte ranges of one file, any number at once.
#[async_trait]
pub trait Fetch: Send + Sync + 'static {
    /// Exactly `len` (> 0) bytes from `start`; a body that yields fewer or more has failed.
    async fn fetch(
        &self,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>>;
}

/// The blocks of one file ahead of its reader.
pub struct Prefetch {
    source: Arc<dyn Fetch>,
    size: u64,
    block: u64,
    streams: usize,
    /// Blocks allowed in flight now.
    window: usize,
    /// The offset of the next byte handed out.
    position: u64,
    /// The end of the last block started.
    started: u64,
    blocks: VecDeque<Block>,
    pace: Arc<Pace>,
}

/// What the blocks' tasks tell the reader about the link.
#[derive(Default)]
struct Pace {
    /// Bytes one stream receives in one time to first byte: a block with no more than this
    /// still to come frees its stream for the next block.
    lead: AtomicU64,
    /// Woken when a block gets that near its end (or ends).
    nearing: Notify,
}

impl Pace {
    fn lead(&self) -> u64 {
        self.lead.load(Ordering::Relaxed)
    }
}

impl Prefetch {
    /// Read-ahead of a file of `size` bytes from `at`, `streams` blocks of `block` bytes at once.
    pub fn new(source: Arc<dyn Fetch>, size: u64, block: u64, streams: usize, at: u64) -> Self {
        Prefetch {
            source,
            size,
            block: block.max(1),
            streams: streams.max(1),
            window: streams.max(1),
            position: at,
            started: at,
            blocks: VecDeque::new(),
            pace: Arc::default(),
        }
    }

    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    pub async fn read(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let want = (len as u64).min(self.size.saturating_sub(offset));
        if want == 0 {
            return Ok(Bytes::new());
        }
        if offset != self.position && !(self.position..self.started).contains(&offset) {
            self.restart(offset);
        }
        let mut skip = offset - self.position;
        while skip > 0 {
            skip -= self.next_piece(skip).await?.len() as u64;
        }
        let first = self.next_piece(want).await?;
        if first.len() as u64 == want {
            return Ok(first);
        }
        let mut out = BytesMut::with_capacity(want as usize);
        out.extend_from_slice(&first);
        while (out.len() as u64) < want {
            let piece = self.next_piece(want - out.len() as u64).await?;
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// Drops every block and starts again at `at`, one block at a time.
    fn restart(&mut self, at: u64) {
        tracing::debug!(
            from = self.position,
            to = at,
            "read elsewhere; restarting the read-ahead"
        );
        self.blocks.clear();
        self.position = at;
        self.started = at;
        self.window = 1;
    }

    /// Starts blocks until `window` are far from their end, `window + 1` are held, or the file
    /// is covered.
    fn top_up(&mut self) {
        let lead = self.pace.lead();
        while self.blocks.len() <= self.window && self.started < self.size {
            let busy = self.blocks.iter().filter(|b| !b.nearly_done(lead)).count();
            if busy >= self.window {
                return;
            }
            let len = self.block.min(self.size - self.started);
            let block = Block::start(self.source.clone(), self.started, len, self.pace.clone());
            self.blocks.push_back(block);
            self.started += len;
        }
    }

    /// The next 1 to `max` bytes at `position`, in order. `position` < `size`.
    async fn next_piece(&mut self, max: u64) -> Result<Bytes> {
        loop {
            self.top_up();
            let head = self
                .blocks
                .front_mut()
                .expect("a block covers every offset below the size");
            if head.pending.is_empty() {
                // Nearing blocks free their streams while the reader waits on the head.
                let nearing = self.pace.nearing.notified();
                tokio::select! {
                    biased;
                    chunk = head.next() => head.pending = chunk?,
                    () = nearing => {}
                }
                continue;
            }
            let n = (head.pending.len() as u64).min(max) as usize;
            let piece = head.pending.split_to(n);
            self.position += n as u64;
            if head.pending.is_empty() && head.received == head.len {
                self.blocks.pop_front();
                self.window = (self.window * 2).min(self.streams);
                self.top_up();
            }
            return Ok(piece);
        }
    }
}

/// One block being fetched by its task; dropping it stops the task.
struct Block {
    start: u64,
    len: u64,
    /// Bytes taken off `chunks`.
    received: u64,
    /// Received bytes not handed out yet.
    pending: Bytes,
    /// Bytes the task has received (ahead of `received` by what is in `chunks`).
    arrived: Arc<AtomicU64>,
    /// Unbounded, but the task sends at most `len` bytes.
    chunks: mpsc::UnboundedReceiver<Result<Bytes>>,
    _task: AbortOnDropHandle<()>,
}

impl Block {
    fn start(source: Arc<dyn Fetch>, start: u64, len: u64, pace: Arc<Pace>) -> Block {
        let (tx, chunks) = mpsc::unbounded_channel();
        let arrived = Arc::new(AtomicU64::new(0));
        let progress = Progress {
            len,
            arrived: arrived.clone(),
            pace,
            asked: Instant::now(),
            first: None,
            near: false,
        };
        let task = tokio::spawn(fetch_block(source, start, progress, tx).in_current_span());
        Block {
            start,
            len,
            received: 0,
            pending: Bytes::new(),
            arrived,
            chunks,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Whether no more than `lead` bytes of it are still to come.
    fn nearly_done(&self, lead: u64) -> bool {
        self.arrived.load(Ordering::Relaxed).saturating_add(lead) >= self.len
    }

    /// The next non-empty chunk; an error if the task failed or sent too few or too many.
    async fn next(&mut self) -> Result<Bytes> {
        loop {
            match self.chunks.recv().await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.len {
                        return Err(Error::new(
                            ErrorKind::Failed,
                            format!("bytes {}+{}: too many arrived", self.start, self.len),
                        ));
                    }
                    return Ok(chunk);
                }
                Some(Err(e)) => return Err(e),
                None => return Err(short(self.start, self.len, self.received)),
            }
        }
    }
}

fn short(start: u64, len: u64, got: u64) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("the download broke off: bytes {start}+{len} ended after {got}"),
    )
}

/// A block's task's account of its bytes, and what it tells [`Pace`].
struct Progress {
    len: u64,
    arrived: Arc<AtomicU64>,
    pace: Arc<Pace>,
    /// When the block was asked for.
    asked: Instant,
    /// When its first byte came, and the bytes received then.
    first: Option<(Instant, u64)>,
    /// Whether the reader was told the block is nearing its end.
    near: bool,
}

impl Progress {
    /// Bytes of the block received so far.
    fn got(&self) -> u64 {
        self.arrived.load(Ordering::Relaxed)
    }

    /// Starts measuring again, for a new request of the rest.
    fn again(&mut self) {
        self.asked = Instant::now();
        self.first = None;
    }

    /// Counts `n` more bytes; measures the link once a first chunk and a later one came.
    fn add(&mut self, n: u64) {
        let got = self.arrived.fetch_add(n, Ordering::Relaxed) + n;
        let now = Instant::now();
        match self.first {
            None => self.first = Some((now, got)),
            Some((first, then)) => {
                let receiving = now - first;
                if receiving >= Duration::from_millis(1) {
                    let rate = (got - then) as f64 / receiving.as_secs_f64();
                    let lead = rate * (first - self.asked).as_secs_f64();
                    self.pace.lead.store(lead as u64, Ordering::Relaxed);
                }
            }
        }
        if !self.near && got.saturating_add(self.pace.lead()) >= self.len {
            self.ended();
        }
    }

    /// Tells the reader this block no longer holds its stream.
    fn ended(&mut self) {
        if !self.near {
            self.near = true;
            self.pace.nearing.notify_one();
        }
    }
}

/// Fetches the block into `tx`, fetching the rest again once if the first try fails; a failure
/// after that is sent as the block's last item.
async fn fetch_block(
    source: Arc<dyn Fetch>,
    start: u64,
    mut progress: Progress,
    tx: mpsc::UnboundedSender<Result<Bytes>>,
) {
    let mut retried = false;
    loop {
        match pump(&*source, start, &mut progress, &tx).await {
            Ok(()) => return progress.ended(),
            Err(e) if !retried && e.kind == ErrorKind::Unavailable => {
                retried = true;
                progress.again();
                let (len, got) = (progress.len, progress.got());
                tracing::debug!(start, len, got, error = %crate::logging::chain(&e), "a download block broke off; fetching the rest again");
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return progress.ended();
            }
        }
    }
}

/// One try at the rest of a block (from what `progress` has got): `Ok` once it all arrived, or
/// the reader went away.
async fn pump(
    source: &dyn Fetch,
    start: u64,
    progress: &mut Progress,
    tx: &mpsc::UnboundedSender<Result<Bytes>>,
) -> Result<()> {
    let len = progress.len;
    let got = progress.got();
    let mut body = source.fetch(start + got, len - got).await?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Error::new(ErrorKind::Unavailable, "the download broke off").with_source(e)
        })?;
        if progress.got() + chunk.len() as u64 > len {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("bytes {start}+{len}: SharePoint sent more than asked"),
            ));
        }
        progress.add(chunk.len() as u64);
        if tx.send(Ok(chunk)).is_err() {
            return Ok(());
        }
    }
    if progress.got() < len {
        return Err(short(start, len, progress.got()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
