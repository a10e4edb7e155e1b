//! The transfer audit log: one JSON line per login, upload, download, delete, rename, mkdir and
//! rmdir, and per operation refused or failed (with its reason), with time, user, protocol,
//! source address, path, size, duration and outcome; to
//! `<state dir>/audit.jsonl` (rotated by size) or to standard output (`[audit] target`), and
//! to the state store, which keeps each event for `[audit] retention` (see `state::audit`).
//! Store writes leave the session's path at once: events go to a writer task that inserts them
//! in batches and prunes what is older than the retention every hour.
//! Nothing secret goes in: no passwords, keys or tokens, and failures carry the client-safe
//! error text only.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use parking_lot::Mutex;
use serde::Serialize;

use std::sync::Arc;

use crate::config::Audit as Config;
use crate::state::Store;
use crate::state::audit::Entry;

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// `login`, `upload`, `download`, `delete`, `rename`, `mkdir`, `rmdir`, `deliver`; for
    /// failures only also `list`, `stat`, `set_modified`.
    pub action: &'a str,
    pub user: &'a str,
    pub protocol: &'a str,
    pub peer: Option<IpAddr>,
    /// The user's virtual path (empty for logins).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub path: &'a str,
    /// A rename's new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// The mount's connection, or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The SharePoint (Graph driveItem) id of the file, when the mount is on SharePoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `ok`, `failed`, or `denied` (refused by the gateway's rules: permissions, names).
    pub outcome: &'a str,
    /// Why it was not `ok`, as one word (`permission_denied`, `not_found`,
    /// `connection_disabled`...), for operations that failed before they started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Event<'_> {
    pub fn duration(mut self, took: Duration) -> Self {
        self.duration_ms = Some(took.as_millis() as u64);
        self
    }
}

enum Sink {
    Off,
    Stdout,
    File(Box<Mutex<FileRotate<AppendCount>>>),
}

/// How many recent events the status page shows.
pub const RECENT: usize = 50;

/// Events waiting for the store writer at most; past it they are dropped (and logged).
const BACKLOG: usize = 10_000;

/// Where audit lines go.
pub struct Audit {
    sink: Sink,
    /// The store writer's queue.
    store: Option<tokio::sync::mpsc::Sender<Entry>>,
    /// The last [`RECENT`] transfers (not logins), newest last, for the status page; kept even
    /// when the log is off.
    recent: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

impl Audit {
    /// The audit `config` sets up, writing to `store` as well (keeping `retention`), when given.
    pub fn open(config: &Config, state_dir: &Path, store: Option<(Arc<Store>, Duration)>) -> Audit {
        let sink = match config {
            Config::Off => Sink::Off,
            Config::Stdout => Sink::Stdout,
            Config::File { max_bytes, keep } => {
                let mut options = std::fs::OpenOptions::new();
                options.read(true).create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                Sink::File(Box::new(Mutex::new(FileRotate::new(
                    state_dir.join("audit.jsonl"),
                    AppendCount::new(*keep as usize),
                    ContentLimit::BytesSurpassed(*max_bytes as usize),
                    Compression::None,
                    Some(options),
                ))))
            }
        };
        Audit {
            sink,
            store: store.and_then(|(store, retention)| writer(store, retention)),
            recent: Mutex::default(),
        }
    }

    /// An audit log that records nothing (tests, the sync CLI).
    pub fn off() -> Audit {
        Audit {
            sink: Sink::Off,
            store: None,
            recent: Mutex::default(),
        }
    }

    /// The most recent transfers, newest first.
    pub fn recent(&self) -> Vec<serde_json::Value> {
        self.recent.lock().iter().rev().cloned().collect()
    }

    pub fn record(&self, event: &Event) {
        if event.action != "login"
            && let Ok(value) = serde_json::to_value(event)
        {
            let mut recent = self.recent.lock();
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(value);
        }
        if matches!(self.sink, Sink::Off) && self.store.is_none() {
            return;
        }
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %crate::logging::chain(&e), "audit: cannot encode an event");
                return;
            }
        };
        if let Some(store) = &self.store {
            let entry = Entry::new(
                event.time.timestamp_millis(),
                event.user,
                event.action,
                event.outcome,
                String::from_utf8_lossy(&line).into_owned(),
            );
            if store.try_send(entry).is_err() {
                tracing::warn!(
                    "audit: the state store writer is behind; an event is left out of the store"
                );
            }
        }
        line.push(b'\n');
        let written = match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(&line),
            Sink::File(file) => {
                let mut file = file.lock();
                file.write_all(&line).and_then(|()| file.flush())
            }
        };
        if let Err(e) = written {
            tracing::warn!(error = %crate::logging::chain(&e), "audit: cannot write the audit log");
        }
    }
}

/// Starts the store writer of an audit (on the running Tokio runtime; none outside one): it
/// ends once the audit is dropped and its queue drained.
fn writer(store: Arc<Store>, retention: Duration) -> Option<tokio::sync::mpsc::Sender<Entry>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (sender, mut queue) = tokio::sync::mpsc::channel(BACKLOG);
    runtime.spawn(async move {
        let mut pruned = None::<std::time::Instant>;
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, 500).await > 0 {
            if let Err(e) = store.append_audit(&batch).await {
                tracing::warn!(error = %crate::logging::chain(&e), events = batch.len(), "audit: the state store refused events");
            }
            batch.clear();
            if pruned.is_none_or(|at| at.elapsed() > PRUNE_EVERY) {
                pruned = Some(std::time::Instant::now());
                let before = Utc::now().timestamp_millis() - retention.as_millis() as i64;
                match store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "audit: events past the retention deleted from the store"),
                    Err(e) => tracing::warn!(error = %crate::logging::chain(&e), "audit: pruning the state store failed"),
                }
                // Cleared alerts are history too, kept as long.
                if let Err(e) = store.prune_alerts(before).await {
                    tracing::warn!(error = %crate::logging::chain(&e), "pruning cleared alerts from the state store failed");
                }
            }
        }
    });
    Some(sender)
}

/// How often the store writer deletes events past the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An event with the fields every action has; the rest default to empty.
pub fn event<'a>(
    action: &'a str,
    user: &'a str,
    protocol: &'a str,
    peer: Option<IpAddr>,
    path: &'a str,
    outcome: bool,
) -> Event<'a> {
    Event {
        time: Utc::now(),
        action,
        user,
        protocol,
        peer,
        path,
        to: None,
        connection: None,
        size: None,
        item_id: None,
        duration_ms: None,
        outcome: if outcome { "ok" } else { "failed" },
        reason: None,
        error: None,
    }
}
