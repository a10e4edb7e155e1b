//! Connection health: `enabled`, or `disabled` with the alert that explains why, kept durably
//! under `[state] dir` so that a restart does not start hammering a dead credential again.
//!
//! Every change is appended to the alert log (`alerts.jsonl`, one JSON object per line):
//! `raised` when a connection is disabled, `cleared` when it is enabled again.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::store::{self, Paths};

/// Why a connection was disabled and what an administrator should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub time: DateTime<Utc>,
    pub connection: String,
    /// E.g. `invalid_client AADSTS7000222`.
    pub code: String,
    pub message: String,
    pub action: String,
}

/// One line of the alert log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub event: EventKind,
    #[serde(flatten)]
    pub alert: Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Raised,
    Cleared,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    disabled: Option<Alert>,
    fingerprint: String,
}

pub struct Health {
    name: String,
    paths: Paths,
    fingerprint: String,
    disabled: RwLock<Option<Alert>>,
}

impl crate::graph::access::Standing for Health {
    fn disabled(&self) -> Option<String> {
        self.alert()
            .map(|a| format!("{} ({}). {}", a.message, a.code, a.action))
    }
}

impl Health {
    /// Loads the saved state. A connection disabled under a different configuration
    /// (`fingerprint`) starts enabled again: its configuration was changed.
    pub fn open(name: &str, paths: &Paths, fingerprint: &str) -> std::io::Result<Health> {
        let saved: Option<Saved> = store::read_json(&paths.health(name))?;
        let health = Health {
            name: name.to_string(),
            paths: paths.clone(),
            fingerprint: fingerprint.to_string(),
            disabled: RwLock::new(None),
        };
        if let Some(saved) = saved
            && let Some(alert) = saved.disabled
        {
            *health.disabled.write() = Some(alert);
            if saved.fingerprint != fingerprint {
                health.enable("its configuration changed")?;
            }
        }
        Ok(health)
    }

    pub fn alert(&self) -> Option<Alert> {
        self.refresh();
        self.disabled.read().clone()
    }

    pub fn is_disabled(&self) -> bool {
        self.alert().is_some()
    }

    /// A disabled connection looks at its saved state again: `spgate connections enable`, run
    /// beside a running gateway, enables it there at once. An enabled connection reads
    /// nothing, so the usual path costs nothing.
    fn refresh(&self) {
        if self.disabled.read().is_none() {
            return;
        }
        let saved: Option<Saved> = match store::read_json(&self.paths.health(&self.name)) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(connection = %self.name, error = %e, "reading the connection's saved state failed");
                return;
            }
        };
        if saved.is_none_or(|s| s.disabled.is_none()) {
            let mut disabled = self.disabled.write();
            if disabled.take().is_some() {
                tracing::info!(connection = %self.name, "SharePoint connection enabled again by an operator");
            }
        }
    }

    /// Disables the connection and raises an alert (once; later calls keep the first alert).
    pub fn disable(&self, code: &str, message: &str, action: &str) -> std::io::Result<Alert> {
        let mut disabled = self.disabled.write();
        if let Some(existing) = &*disabled {
            return Ok(existing.clone());
        }
        let alert = Alert {
            time: Utc::now(),
            connection: self.name.clone(),
            code: code.to_string(),
            message: message.to_string(),
            action: action.to_string(),
        };
        tracing::error!(connection = %self.name, code, message, action, "SharePoint connection disabled");
        *disabled = Some(alert.clone());
        self.save(Some(&alert))?;
        append(&self.paths.alerts(), EventKind::Raised, &alert)?;
        Ok(alert)
    }

    /// Enables the connection again, clearing its alert; `reason` goes to the log.
    pub fn enable(&self, reason: &str) -> std::io::Result<bool> {
        let mut disabled = self.disabled.write();
        let Some(alert) = disabled.take() else {
            return Ok(false);
        };
        tracing::info!(connection = %self.name, reason, "SharePoint connection enabled again");
        self.save(None)?;
        let cleared = Alert {
            time: Utc::now(),
            message: format!("enabled again: {reason}"),
            ..alert
        };
        append(&self.paths.alerts(), EventKind::Cleared, &cleared)?;
        Ok(true)
    }

    fn save(&self, alert: Option<&Alert>) -> std::io::Result<()> {
        store::write_json(
            &self.paths.health(&self.name),
            &Saved {
                disabled: alert.cloned(),
                fingerprint: self.fingerprint.clone(),
            },
        )
    }
}

fn append(log: &Path, event: EventKind, alert: &Alert) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        store::ensure_private_dir(dir)?;
    }
    let mut line = serde_json::to_vec(&Event {
        event,
        alert: alert.clone(),
    })
    .map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)?;
    file.write_all(&line)?;
    file.sync_data()
}

/// Raises an alert for `source` (a connection name, or `sync:JOB`) unless the same alert is
/// already open.
pub fn raise(
    paths: &Paths,
    source: &str,
    code: &str,
    message: &str,
    action: &str,
) -> std::io::Result<()> {
    let open = open_alerts(paths)?;
    if open
        .iter()
        .any(|a| a.connection == source && a.code == code && a.message == message)
    {
        return Ok(());
    }
    tracing::error!(source, code, message, action, "alert raised");
    let alert = Alert {
        time: Utc::now(),
        connection: source.to_string(),
        code: code.to_string(),
        message: message.to_string(),
        action: action.to_string(),
    };
    append(&paths.alerts(), EventKind::Raised, &alert)
}

/// Clears the open alert of `source`, if there is one.
pub fn clear(paths: &Paths, source: &str, reason: &str) -> std::io::Result<()> {
    let Some(open) = open_alerts(paths)?
        .into_iter()
        .find(|a| a.connection == source)
    else {
        return Ok(());
    };
    tracing::info!(source, reason, "alert cleared");
    let cleared = Alert {
        time: Utc::now(),
        message: format!("cleared: {reason}"),
        ..open
    };
    append(&paths.alerts(), EventKind::Cleared, &cleared)
}

/// The alerts still open: the last event of each connection, where it is `raised`.
pub fn open_alerts(paths: &Paths) -> std::io::Result<Vec<Alert>> {
    let text = match std::fs::read_to_string(paths.alerts()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut last: Vec<Event> = Vec::new();
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
    {
        last.retain(|e| e.alert.connection != event.alert.connection);
        last.push(event);
    }
    Ok(last
        .into_iter()
        .filter(|e| e.event == EventKind::Raised)
        .map(|e| e.alert)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_state_survives_reopening_until_the_configuration_changes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        let health = Health::open("p", &paths, "fp1").unwrap();
        health
            .disable("invalid_client AADSTS7000222", "secret expired", "renew it")
            .unwrap();
        health.disable("other", "ignored", "ignored").unwrap();
        assert_eq!(open_alerts(&paths).unwrap().len(), 1);

        let same = Health::open("p", &paths, "fp1").unwrap();
        assert_eq!(same.alert().unwrap().code, "invalid_client AADSTS7000222");

        let changed = Health::open("p", &paths, "fp2").unwrap();
        assert!(!changed.is_disabled());
        assert!(open_alerts(&paths).unwrap().is_empty());
        assert!(!Health::open("p", &paths, "fp2").unwrap().is_disabled());
    }
}
