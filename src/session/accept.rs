//! Accepting connections without spinning when the process runs out of descriptors.
//!
//! An accept that fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) fails again at
//! once until something is closed: [`Acceptor`] waits before trying again, 5 ms doubling to
//! 1 s, and logs such failures at most once a second with their count. Other accept errors
//! (a connection reset before it was accepted) are about one connection and are retried at once.
//!
//! Then, for each connection, what every front-end does the same way: [`admit`] it under
//! `[limits]` (or [`refuse`] it with the protocol's own words), keep a [`with_closer`] handle
//! to cut it later, and log why a connection was cut ([`cut_off`]).

use std::net::SocketAddr;
use std::time::Duration;

use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::admission::{Full, Ticket};
use crate::session::Gateway;

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long a refused connection is kept for the client to read why.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// A listener's accept loop state.
pub struct Acceptor {
    listener: TcpListener,
    /// `sftp` or `ftp`, for the log.
    protocol: &'static str,
    pause: Duration,
    /// Failures not reported yet, and when the last report was.
    unreported: u64,
    reported: Option<Instant>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, protocol: &'static str) -> Acceptor {
        Acceptor {
            listener,
            protocol,
            pause: Duration::ZERO,
            unreported: 0,
            reported: None,
        }
    }

    /// The next connection; failures are waited out as the module docs say.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let error = match self.listener.accept().await {
                Ok(accepted) => {
                    self.pause = Duration::ZERO;
                    return accepted;
                }
                Err(e) => e,
            };
            let starved = Errno::from_io_error(&error).is_some_and(|e| {
                [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&e)
            });
            self.unreported += 1;
            if self.reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                tracing::warn!(protocol = self.protocol, %error, failures = self.unreported,
                    "accepting connections failed (failures since the last such line)");
                self.unreported = 0;
                self.reported = Some(Instant::now());
            }
            if starved {
                self.pause = (self.pause * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE);
                tokio::time::sleep(self.pause).await;
            }
        }
    }
}

/// Admits a connection from `peer` under `[limits]`, or logs and counts why not.
pub fn admit(gateway: &Gateway, protocol: &'static str, peer: SocketAddr) -> Result<Ticket, Full> {
    let admitted = gateway.admission.admit(&gateway.config.limits, peer.ip());
    if let Err(full) = admitted {
        tracing::warn!(protocol, %peer, limit = %full, "connection refused: too many connections");
        gateway.metrics.refused(protocol, full.as_str());
    }
    admitted
}

/// Tells a refused client why (`reason`, in its protocol's words) and closes its connection:
/// our half first, then reading what it still sends until it closes too (at most
/// [`REFUSAL_LINGER`]), so that closing does not reset the connection before the client has
/// read the reason.
pub async fn refuse(mut socket: TcpStream, reason: &[u8]) {
    let told = async {
        socket.write_all(reason).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 1024];
        while socket.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, told).await;
}

/// Logs why `ticket`'s connection was cut: kicked (a session closed through the API, or its
/// user disabled or deleted), or, not logged in yet, cut for a newer one (also counted).
pub fn cut_off(gateway: &Gateway, protocol: &'static str, peer: SocketAddr, ticket: &Ticket) {
    if let Some(why) = ticket.kicked() {
        tracing::info!(protocol, %peer, why, "session closed");
        return;
    }
    tracing::info!(protocol, %peer, "connection closed before its login: max_unauthenticated connections were waiting");
    gateway.metrics.refused(protocol, "max_unauthenticated");
}

/// `socket` and a second handle on it, which can cut the connection (`shutdown`) while the
/// session owns the first.
pub fn with_closer(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let socket = socket.into_std()?;
    let closer = socket.try_clone()?;
    Ok((TcpStream::from_std(socket)?, closer))
}
