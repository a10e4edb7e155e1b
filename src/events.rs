//! What one part of the gateway announces for others to act on, without either importing the
//! other: the session layer publishes files stored (the sync scheduler subscribes), and the
//! connections' health, the sync scheduler and the login checks publish [`Notice`]s (the
//! notifier, [`crate::notify`], subscribes and delivers them). A subscriber that falls more than
//! [`CAPACITY`] events behind is told it lagged (and acts as if it had seen them all).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it is told it lagged.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub enum Event {
    /// A client stored a file (an upload closed and stored, a rename landed).
    Stored(Place),
    /// Something an administrator should hear about.
    Notice(Notice),
}

/// Where a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file on this host.
    Local(PathBuf),
    /// A file in a connection's library, by its path there.
    SharePoint { connection: String, path: String },
}

/// What a [`Notice`] says happened; `[[notify]] events` names them as [`Kind::as_str`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A connection was disabled and its alert raised.
    ConnectionDisabled,
    /// A disabled connection was enabled again (its alert cleared).
    ConnectionEnabled,
    /// A sync run was aborted (a safety guard or a fatal error).
    SyncAborted,
    /// A sync run finished with some actions failed.
    SyncPartial,
    /// The first successful run of a job after an aborted or partial one.
    SyncRecovered,
    /// A user was locked out from an address after repeated failed logins.
    UserLocked,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ConnectionDisabled,
        Kind::ConnectionEnabled,
        Kind::SyncAborted,
        Kind::SyncPartial,
        Kind::SyncRecovered,
        Kind::UserLocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConnectionDisabled => "connection_disabled",
            Kind::ConnectionEnabled => "connection_enabled",
            Kind::SyncAborted => "sync_aborted",
            Kind::SyncPartial => "sync_partial",
            Kind::SyncRecovered => "sync_recovered",
            Kind::UserLocked => "user_locked",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// What the notice is about: `connection`, `sync_job` or `user`.
    pub fn subject(self) -> &'static str {
        match self {
            Kind::ConnectionDisabled | Kind::ConnectionEnabled => "connection",
            Kind::SyncAborted | Kind::SyncPartial | Kind::SyncRecovered => "sync_job",
            Kind::UserLocked => "user",
        }
    }

    /// Whether it says something went wrong (rather than that it is over).
    pub fn is_problem(self) -> bool {
        !matches!(self, Kind::ConnectionEnabled | Kind::SyncRecovered)
    }
}

/// One thing that happened, for administrators. Its `id` is made once, when it is published:
/// every delivery of it, retries included, carries the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: String,
    pub kind: Kind,
    pub time: DateTime<Utc>,
    /// The connection's, sync job's or user's name (see [`Kind::subject`]).
    pub subject: String,
    pub message: String,
    /// What an administrator should do about it.
    pub action: String,
}

impl Notice {
    /// A notice of `kind` about `subject`, now, with a new id.
    pub fn new(
        kind: Kind,
        subject: impl Into<String>,
        message: impl Into<String>,
        action: impl Into<String>,
    ) -> Notice {
        Notice {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            time: Utc::now(),
            subject: subject.into(),
            message: message.into(),
            action: action.into(),
        }
    }
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

    /// Announces `notice` (see [`Event::Notice`]).
    pub fn notice(&self, notice: Notice) {
        self.publish(Event::Notice(notice));
    }

    /// Everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
