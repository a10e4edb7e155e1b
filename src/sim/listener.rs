//! Accepting the simulator's connections: [`Listener`] tags each with a [`Peer`] (its address
//! and its [`Connection`] for the handshake's latency) and wraps it in [`Shaped`], which holds
//! reads and writes to the live [`Network`]'s bandwidth, each direction its own token bucket.
//! Nothing is buffered: a limited read or write just asks the socket for fewer bytes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::link::{Connection, Network};

/// Who is on the other end of a request: `ConnectInfo<Peer>`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub connection: Arc<Connection>,
}

impl Peer {
    fn accepted_now(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            connection: Arc::new(Connection::accepted_now()),
        }
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Peer {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections follow `network`'s bandwidth.
pub struct Listener {
    tcp: TcpListener,
    network: Arc<Network>,
}

impl Listener {
    pub fn new(tcp: TcpListener, network: Arc<Network>) -> Listener {
        Listener { tcp, network }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Shaped<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.tcp.accept().await {
                Ok((stream, addr)) => {
                    return (
                        Shaped::new(stream, self.network.clone()),
                        Peer::accepted_now(addr),
                    );
                }
                // The client gave up before we accepted: nothing to wait for.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of file descriptors and the like: wait for connections to close.
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        self.tcp.local_addr().map(Peer::accepted_now)
    }
}

/// A stream whose reads and writes each keep to the network's bandwidth.
pub struct Shaped<S> {
    inner: S,
    network: Arc<Network>,
    read: Bucket,
    write: Bucket,
}

impl<S> Shaped<S> {
    pub fn new(inner: S, network: Arc<Network>) -> Shaped<S> {
        Shaped {
            inner,
            network,
            read: Bucket::default(),
            write: Bucket::default(),
        }
    }

    fn rate(&self) -> Option<u64> {
        self.network.link().bandwidth.bytes_per_s()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(rate) = this.rate().filter(|_| buf.remaining() > 0) else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let allowed = ready!(this.read.poll_take(cx, rate, buf.remaining()));
        let n = {
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(allowed));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
            limited.filled().len()
        };
        buf.advance(n);
        this.read.spend(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(rate) = this.rate().filter(|_| !buf.is_empty()) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        let allowed = ready!(this.write.poll_take(cx, rate, buf.len()));
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        this.write.spend(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rate().is_none() {
            return Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Smallest burst a bucket holds, so that small answers pass at once.
const MIN_BURST: f64 = 16.0 * 1024.0;
/// Longest wait before the rate is read again (it may change at run time).
const MAX_WAIT: Duration = Duration::from_millis(100);

/// A token bucket of bytes: fills at the rate, holds 10 ms of it (at least [`MIN_BURST`]).
struct Bucket {
    tokens: f64,
    filled: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket {
            // Starts full: the first refill caps it.
            tokens: f64::INFINITY,
            filled: Instant::now(),
            timer: None,
        }
    }
}

impl Bucket {
    /// How many of `want` (> 0) bytes may pass now at `rate` bytes/s; pending until at least
    /// `want` or a full burst may.
    fn poll_take(&mut self, cx: &mut Context<'_>, rate: u64, want: usize) -> Poll<usize> {
        let rate = rate as f64;
        let burst = (rate / 100.0).max(MIN_BURST);
        loop {
            let now = Instant::now();
            let gained = now.duration_since(self.filled).as_secs_f64() * rate;
            self.tokens = (self.tokens + gained).min(burst);
            self.filled = now;
            let need = (want as f64).min(burst);
            if self.tokens >= need {
                return Poll::Ready((self.tokens as usize).clamp(1, want));
            }
            let wait = Duration::from_secs_f64((need - self.tokens) / rate).min(MAX_WAIT);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::ZERO)));
            timer.as_mut().reset(now + wait);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::link::{Bandwidth, Link};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn network(mb_s: f64) -> Arc<Network> {
        Arc::new(Network::new(Link {
            bandwidth: Bandwidth::from_mb_s(mb_s).unwrap(),
            ..Link::default()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn writes_keep_to_the_rate() {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let mut near = Shaped::new(near, network(1.0));
        let start = Instant::now();
        tokio::spawn(async move {
            near.write_all(&vec![7u8; 1_000_000]).await.unwrap();
            near.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1_000_000);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(980), "{took:?}");
        assert!(took <= Duration::from_millis(1100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_keep_to_the_rate() {
        let (mut near, far) = tokio::io::duplex(64 * 1024);
        let mut far = Shaped::new(far, network(0.5));
        let start = Instant::now();
        tokio::spawn(async move { near.write_all(&vec![1u8; 500_000]).await });
        let mut got = vec![0u8; 500_000];
        far.read_exact(&mut got).await.unwrap();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(960), "{took:?}");
        assert!(took <= Duration::from_millis(1100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_change_reaches_an_open_stream() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let network = network(0.01);
        let mut near = Shaped::new(near, network.clone());
        let changer = network.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            changer.set(Link::default());
        });
        let start = Instant::now();
        near.write_all(&vec![3u8; 200_000]).await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(300));
        let mut got = vec![0u8; 200_000];
        far.read_exact(&mut got).await.unwrap();
    }
}
