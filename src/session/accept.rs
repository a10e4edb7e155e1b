//! Accepting connections without spinning when the process runs out of descriptors.
//!
//! An accept that fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) fails again at
//! once until something is closed: [`Acceptor`] waits before trying again, 5 ms doubling to
//! 1 s, and logs such failures at most once a second with their count. Other accept errors
//! (a connection reset before it was accepted) are about one connection and are retried at once.

use std::net::SocketAddr;
use std::time::Duration;

use rustix::io::Errno;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
const REPORT_EVERY: Duration = Duration::from_secs(1);

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
