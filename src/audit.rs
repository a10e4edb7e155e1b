//! The transfer audit log: one JSON line per login, upload, download, delete and rename, with
//! time, user, protocol, source address, path, size, duration and outcome; to
//! `<state dir>/audit.jsonl` (rotated by size) or to standard output (`[audit] target`).
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

use crate::config::Audit as Config;

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// `login`, `upload`, `download`, `delete`, `rename`.
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
    /// `ok` or `failed`.
    pub outcome: &'a str,
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

/// Where audit lines go.
pub struct Audit {
    sink: Sink,
    /// The last [`RECENT`] transfers (not logins), newest last, for the status page; kept even
    /// when the log is off.
    recent: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

impl Audit {
    pub fn open(config: &Config, state_dir: &Path) -> Audit {
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
            recent: Mutex::default(),
        }
    }

    /// An audit log that records nothing (tests, the sync CLI).
    pub fn off() -> Audit {
        Audit {
            sink: Sink::Off,
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
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "audit: cannot encode an event");
                return;
            }
        };
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
            tracing::warn!(error = %e, "audit: cannot write the audit log");
        }
    }
}

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
        error: None,
    }
}
