//! The read-ahead against a scripted source: order, bounds, retries, failures, jumps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::*;

const BLOCK: u64 = 1000;

/// What one fetch of a range does instead of sending it all.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The request fails (a 5xx beyond the connection's retries).
    Refuse,
    /// The request fails for good (not worth a retry).
    Deny,
    /// `n` bytes (fewer than asked), then the body breaks.
    BreakAfter(usize),
    /// `n` bytes (fewer than asked), then the body ends as if complete.
    EndAfter(usize),
    /// The range and a byte more.
    Extra,
}

/// A file of `data` served in chunks of `chunk` bytes, each after `delay(start)`, the first
/// after `latency` more.
struct Source {
    data: Arc<Vec<u8>>,
    chunk: usize,
    delay: fn(u64) -> Duration,
    latency: Duration,
    /// Faults for fetches starting in a block (by the block's start), used in turn.
    faults: Mutex<HashMap<u64, VecDeque<Fault>>>,
    /// Every fetch: (start, len).
    fetches: Mutex<Vec<(u64, u64)>>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

fn source(size: usize) -> Source {
    Source {
        data: Arc::new((0..size).map(|i| (i * 7 % 251) as u8).collect()),
        chunk: 300,
        delay: |_| Duration::from_millis(1),
        latency: Duration::ZERO,
        faults: Mutex::new(HashMap::new()),
        fetches: Mutex::new(Vec::new()),
        in_flight: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
    }
}

impl Source {
    fn fault(self, start: u64, faults: &[Fault]) -> Self {
        self.faults
            .lock()
            .entry(start)
            .or_default()
            .extend(faults.iter().copied());
        self
    }

    fn fetches(&self) -> Vec<(u64, u64)> {
        self.fetches.lock().clone()
    }
}

/// Counts a body in flight until it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Fetch for Source {
    async fn fetch(
        &self,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        self.fetches.lock().push((start, len));
        let fault = self
            .faults
            .lock()
            .get_mut(&(start - start % BLOCK))
            .and_then(|f| f.pop_front());
        let (from, mut to) = (start as usize, (start + len) as usize);
        let short = |n: usize| from + n.min(len as usize - 1);
        let mut broken = false;
        match fault {
            Some(Fault::Refuse) => return Err(Error::new(ErrorKind::Unavailable, "503")),
            Some(Fault::Deny) => return Err(Error::new(ErrorKind::PermissionDenied, "403")),
            Some(Fault::BreakAfter(n)) => (to, broken) = (short(n), true),
            Some(Fault::EndAfter(n)) => to = short(n),
            Some(Fault::Extra) => to += 1,
            None => {}
        }
        let to = to.min(self.data.len());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(self.in_flight.clone());
        let (data, chunk, delay) = (self.data.clone(), self.chunk, (self.delay)(start));
        let latency = self.latency;
        let body = futures_util::stream::unfold(Some((from, guard)), move |state| {
            let data = data.clone();
            async move {
                let (at, guard) = state?;
                if at >= to {
                    let reset = std::io::Error::other("connection reset");
                    return broken.then_some((Err(reset), None));
                }
                if at == from {
                    tokio::time::sleep(latency).await;
                }
                tokio::time::sleep(delay).await;
                let end = (at + chunk).min(to);
                Some((
                    Ok(Bytes::copy_from_slice(&data[at..end])),
                    Some((end, guard)),
                ))
            }
        });
        Ok(Box::pin(body))
    }
}

fn prefetch(source: &Arc<Source>, streams: usize, at: u64) -> Prefetch {
    let size = source.data.len() as u64;
    Prefetch::new(source.clone(), size, BLOCK, streams, at)
}

/// Reads the whole file front to back in pieces of `piece` bytes.
async fn read_all(reader: &mut Prefetch, piece: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let got = reader.read(out.len() as u64, piece).await?;
        if got.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&got);
    }
}

/// Lets the block tasks run (time stands still in these tests unless everything waits).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn blocks_of(size: u64) -> Vec<(u64, u64)> {
    (0..size.div_ceil(BLOCK))
        .map(|i| (i * BLOCK, BLOCK.min(size - i * BLOCK)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn blocks_come_in_order_however_they_finish() {
    // Later blocks finish first.
    let mut s = source(10_500);
    s.delay = |start| Duration::from_millis(20 - start / 1000);
    let s = Arc::new(s);
    for piece in [1, 299, 1000, 4096] {
        s.fetches.lock().clear();
        let mut reader = prefetch(&s, 4, 0);
        let got = read_all(&mut reader, piece).await.unwrap();
        assert!(got == *s.data, "piece {piece}: wrong bytes");
        let mut fetches = s.fetches();
        fetches.sort();
        assert_eq!(fetches, blocks_of(10_500), "piece {piece}");
    }
    // Four streams, and a fifth block started as one of them neared its end.
    assert_eq!(s.peak.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_streams_and_one_blocks_are_held() {
    let s = Arc::new(source(20_000));
    let mut reader = prefetch(&s, 3, 0);
    assert_eq!(reader.read(0, 10).await.unwrap().len(), 10);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The three blocks have arrived; the reader has not moved on, so nothing more starts.
    assert_eq!(s.fetches(), blocks_of(20_000)[..3]);
    // Block 0 handed out: the streams of 1 and 2 are free, but only four blocks may be held.
    assert_eq!(reader.read(10, 990).await.unwrap().len(), 990);
    settle().await;
    assert_eq!(s.fetches(), blocks_of(20_000)[..5]);
    assert_eq!(reader.blocks.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_stream_asks_for_its_next_block_a_round_trip_before_its_block_ends() {
    // 100 bytes a millisecond per stream, the first byte 5 ms after the request: a block takes
    // 14 ms, 10 of them receiving. Two streams one block after the other would take 5 x 14 ms.
    let mut s = source(10_000);
    s.chunk = 100;
    s.latency = Duration::from_millis(4);
    let s = Arc::new(s);
    let begun = Instant::now();
    let mut reader = prefetch(&s, 2, 0);
    assert!(read_all(&mut reader, 4096).await.unwrap() == *s.data);
    let took = begun.elapsed();
    assert!(took <= Duration::from_millis(60), "took {took:?}");
    // Never more than two streams far from their ends: a third block only overlaps a tail.
    assert_eq!(s.peak.load(Ordering::SeqCst), 3);
    assert_eq!(s.fetches(), blocks_of(10_000));
}

#[tokio::test(start_paused = true)]
async fn one_stream_fetches_one_block_at_a_time() {
    let s = Arc::new(source(5_500));
    let mut reader = prefetch(&s, 1, 0);
    assert!(read_all(&mut reader, 700).await.unwrap() == *s.data);
    // The next block overlaps only the last chunk of the one before.
    assert_eq!(s.peak.load(Ordering::SeqCst), 2);
    assert_eq!(s.fetches(), blocks_of(5_500));
}

#[tokio::test(start_paused = true)]
async fn a_block_that_fails_once_is_fetched_again_from_where_it_stopped() {
    let s = source(8_000)
        .fault(1000, &[Fault::Refuse])
        .fault(2000, &[Fault::BreakAfter(450)])
        .fault(3000, &[Fault::EndAfter(600)])
        .fault(4000, &[Fault::Extra]);
    let s = Arc::new(s);
    let mut reader = prefetch(&s, 4, 0);
    assert!(read_all(&mut reader, 512).await.unwrap() == *s.data);
    let fetches = s.fetches();
    for again in [(1000, 1000), (2450, 550), (3600, 400)] {
        assert!(fetches.contains(&again), "{again:?} in {fetches:?}");
    }
    // The first try of 4000 sent a byte too many in its last chunk: that chunk was refused.
    assert!(fetches.contains(&(4900, 100)), "{fetches:?}");
    assert_eq!(fetches.len(), 8 + 4);
}

#[tokio::test(start_paused = true)]
async fn a_block_failing_twice_fails_the_read_that_needs_it() {
    for fault in [
        Fault::Refuse,
        Fault::BreakAfter(100),
        Fault::EndAfter(999),
        Fault::Extra,
    ] {
        let s = Arc::new(source(6_000).fault(3000, &[fault, fault]));
        let mut reader = prefetch(&s, 4, 0);
        // Everything before the block comes, right.
        let first = reader.read(0, 3000).await.unwrap();
        assert!(first[..] == s.data[..3000], "{fault:?}");
        let mut err = None;
        for at in (3000..6000).step_by(50) {
            match reader.read(at, 50).await {
                Ok(got) => assert!(got[..] == s.data[at as usize..at as usize + 50]),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let err = err.unwrap_or_else(|| panic!("{fault:?}: the reads went through"));
        assert_eq!(err.kind, ErrorKind::Unavailable, "{fault:?}: {err}");
        assert_eq!(
            s.fetches()
                .iter()
                .filter(|f| f.0 >= 3000 && f.0 < 4000)
                .count(),
            2,
            "{fault:?}: one retry"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() {
    let s = Arc::new(source(4_000).fault(1000, &[Fault::Deny]));
    let mut reader = prefetch(&s, 4, 0);
    let err = read_all(&mut reader, 4096).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert_eq!(s.fetches().iter().filter(|f| f.0 == 1000).count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_jump_restarts_with_one_block_then_widens() {
    let s = Arc::new(source(20_000));
    let mut reader = prefetch(&s, 4, 0);
    reader.read(0, 100).await.unwrap();
    // Forward within the blocks in flight: read through, no new fetch.
    let got = reader.read(2500, 100).await.unwrap();
    assert!(got[..] == s.data[2500..2600]);
    // Blocks 0 and 1 were handed out, so 4 and 5 started, and 6 as 2 neared its end.
    settle().await;
    assert_eq!(s.fetches(), blocks_of(20_000)[..7]);

    // Far ahead: one block from there.
    s.fetches.lock().clear();
    let got = reader.read(12_345, 10).await.unwrap();
    assert!(got[..] == s.data[12_345..12_355]);
    settle().await;
    assert_eq!(s.fetches(), [(12_345, 1000)]);
    // Reading on widens the window: 1, 2, 4 blocks far from their ends (and one more each
    // time as one nears its end).
    let got = reader.read(12_355, 990).await.unwrap();
    assert!(got[..] == s.data[12_355..13_345]);
    settle().await;
    assert_eq!(s.fetches().len(), 3);
    reader.read(13_345, 1000).await.unwrap();
    settle().await;
    assert_eq!(s.fetches().len(), 3 + 4);
    assert_eq!(reader.blocks.len(), 5);

    // Back: restarts there too.
    s.fetches.lock().clear();
    let got = reader.read(50, 5000).await.unwrap();
    assert!(got[..] == s.data[50..5050]);
    assert_eq!(s.fetches()[0], (50, 1000));
}

#[tokio::test(start_paused = true)]
async fn reads_past_the_end_are_empty_and_the_last_block_is_short() {
    let s = Arc::new(source(2_500));
    let mut reader = prefetch(&s, 4, 0);
    assert_eq!(reader.read(0, 10).await.unwrap().len(), 10);
    assert_eq!(reader.read(2_400, 1000).await.unwrap().len(), 100);
    assert!(reader.read(2_500, 10).await.unwrap().is_empty());
    assert!(reader.read(9_999, 10).await.unwrap().is_empty());
    assert!(s.fetches().contains(&(2000, 500)));
}
