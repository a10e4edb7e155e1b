//! What one part of the gateway announces for others to act on, without either importing the
//! other: the session layer publishes, the sync scheduler subscribes. A subscriber that falls
//! more than [`CAPACITY`] events behind is told it lagged (and acts as if it had seen them all).

use std::path::PathBuf;

use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it is told it lagged.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub enum Event {
    /// A client stored a file (an upload closed and stored, a rename landed).
    Stored(Place),
}

/// Where a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file on this host.
    Local(PathBuf),
    /// A file in a connection's library, by its path there.
    SharePoint { connection: String, path: String },
}

/// The gateway's event bus; kept across configuration reloads.
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Events {
    /// Announces `event` to every current subscriber (none is fine).
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// Everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
