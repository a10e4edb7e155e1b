//! Change notifications on PostgreSQL. Every bump of a change counter also sends `NOTIFY
//! spgate_changes` in the bump's transaction (delivered when it commits); a server LISTENs on a
//! connection of its own and follows the store at once instead of at its next poll. The poll
//! stays as the safety net: a notification lost while the listening connection is down costs
//! at most one poll interval. SQLite has no notifications (and one host): the poll alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Counter, Store};
use crate::config::Secret;

/// The channel every change is announced on.
pub const CHANNEL: &str = "spgate_changes";

/// How long a listening connection that failed waits before it connects again.
const RECONNECT: Duration = Duration::from_secs(5);

/// The statement announcing a change of `counter` (within a transaction: sent at commit).
pub(super) fn statement(counter: Counter) -> &'static str {
    match counter {
        Counter::Records => "NOTIFY spgate_changes, 'records'",
        Counter::Health => "NOTIFY spgate_changes, 'health'",
        Counter::Queue => "NOTIFY spgate_changes, 'queue'",
    }
}

impl Store {
    /// On PostgreSQL, a wake-up for each change committed by any process on the store, until
    /// `stop`; `None` on SQLite.
    pub fn listen(&self, stop: CancellationToken) -> Option<Arc<Notify>> {
        let url = self.listen_url.clone()?;
        let changed = Arc::new(Notify::new());
        tokio::spawn(listen(url, changed.clone(), stop));
        Some(changed)
    }
}

async fn listen(url: Secret, changed: Arc<Notify>, stop: CancellationToken) {
    let mut failing = false;
    loop {
        let session = async {
            let mut listener = sqlx::postgres::PgListener::connect(url.expose()).await?;
            listener.listen(CHANNEL).await?;
            if failing {
                tracing::info!("listening for state store changes again");
            }
            // What was committed while nobody listened: the follower reads the counters now.
            changed.notify_one();
            loop {
                listener.recv().await?;
                changed.notify_one();
            }
        };
        let ended: Result<(), sqlx::Error> = tokio::select! {
            _ = stop.cancelled() => return,
            ended = session => ended,
        };
        if let Err(e) = ended
            && !failing
        {
            tracing::warn!(error = %crate::logging::chain(&e), "listening for state store changes failed; following by polling each second until it works again");
            failing = true;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT) => {}
        }
    }
}
