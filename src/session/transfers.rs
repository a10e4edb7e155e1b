//! The transfers in progress on one client connection, so that a shutdown can close idle
//! connections at once and let the others finish their files first (both front-ends).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How long after its last transfer a connection counts as idle (see [`Transfers::settled`]).
const SETTLE: Duration = Duration::from_millis(200);

/// How many transfers of one connection are in progress: uploads from their opening to their
/// commit, downloads until the client has read the last byte (FTP), closed the handle (SFTP)
/// or gone.
#[derive(Debug)]
pub struct Transfers(watch::Sender<usize>, AtomicBool);

/// One transfer in progress; dropping it ends it.
pub struct Transfer(Arc<Transfers>);

impl Default for Transfers {
    fn default() -> Self {
        Transfers(watch::Sender::new(0), AtomicBool::new(false))
    }
}

impl Transfers {
    /// A transfer starts; it ends when the answer is dropped.
    pub fn start(self: &Arc<Self>) -> Transfer {
        self.0.send_modify(|n| *n += 1);
        Transfer(self.clone())
    }

    /// A transfer starts unless the connection is draining ([`Transfers::drain`]): then the
    /// error a front-end answers, so that a client uploading file after file lets a shutdown
    /// end its connection after the file under way, instead of at the grace time's end.
    pub fn try_start(self: &Arc<Self>) -> Result<Transfer, crate::storage::Error> {
        if self.1.load(Ordering::Relaxed) {
            return Err(crate::storage::Error::new(
                crate::storage::ErrorKind::Unavailable,
                "the server is shutting down; connect again to go on",
            ));
        }
        Ok(self.start())
    }

    /// The server is shutting down: no new transfer starts; returns once those under way
    /// ended (see [`Transfers::settled`]).
    pub async fn drain(&self) {
        self.1.store(true, Ordering::Relaxed);
        self.settled().await;
    }

    /// Returns once no transfer has been in progress for [`SETTLE`]: a front-end writes a
    /// transfer's reply (FTP's `226`, SFTP's close status) just after it ends.
    pub async fn settled(&self) {
        let mut count = self.0.subscribe();
        loop {
            let _ = count.wait_for(|n| *n == 0).await;
            tokio::time::sleep(SETTLE).await;
            // Unchanged since it was seen at zero: nothing started (and ended) meanwhile.
            if !count.has_changed().unwrap_or(false) {
                return;
            }
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n -= 1);
    }
}
