//! The transfers in progress on one client connection, so that a shutdown can close idle
//! connections at once and let the others finish their files first (both front-ends).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long after its last transfer a connection counts as idle (see [`Transfers::settled`]).
const SETTLE: Duration = Duration::from_millis(200);

/// How many transfers of one connection are in progress: uploads from their opening to their
/// commit, downloads until the client has read the last byte (FTP), closed the handle (SFTP)
/// or gone.
#[derive(Debug)]
pub struct Transfers(watch::Sender<usize>);

/// One transfer in progress; dropping it ends it.
pub struct Transfer(Arc<Transfers>);

impl Default for Transfers {
    fn default() -> Self {
        Transfers(watch::Sender::new(0))
    }
}

impl Transfers {
    /// A transfer starts; it ends when the answer is dropped.
    pub fn start(self: &Arc<Self>) -> Transfer {
        self.0.send_modify(|n| *n += 1);
        Transfer(self.clone())
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
