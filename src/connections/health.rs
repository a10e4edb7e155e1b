//! Connection health and alerts, kept in the state store (see [`crate::state::alerts`]): a
//! connection is disabled while an alert about it is open, and enabled again when that alert is
//! cleared. Every instance sharing the store sees the same alerts, and a restart does not start
//! hammering a dead credential again.
//!
//! Each connection keeps its state in memory too ([`Health`]), so that a request checks it
//! without asking the store; a server puts in force what other processes changed
//! ([`Health::follow`], within a second). Sync jobs and the upload queue raise and clear alerts
//! of their own ([`raise`], [`clear`]).
//!
//! A connection disabled here (its alert newly raised in the store) is announced on the event
//! bus as a [`Notice`] by the one process that raised it; enabled again, by the first process
//! with an event bus that cleared the alert or saw it cleared (a claim in the store): instances
//! sharing it announce each change once, and an enable made by the CLI is announced too.
//!
//! Earlier versions kept this in files under `[state] dir` (`alerts.jsonl`, one
//! `connections/NAME.json` per connection): [`import`] moves them into the store once and leaves
//! them as `.imported`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::events::{Events, Kind, Notice};
use crate::state::Store;
use crate::state::alerts::{self as stored, Raise, WhenOpen};

/// An alert: why a connection was disabled (or a sync job or an upload failed) and what an
/// administrator should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub time: DateTime<Utc>,
    /// The connection (or `sync:JOB`, `queue:ID`) it is about.
    pub connection: String,
    /// E.g. `invalid_client AADSTS7000222`.
    pub code: String,
    pub message: String,
    pub action: String,
}

impl From<&stored::Alert> for Alert {
    fn from(a: &stored::Alert) -> Alert {
        Alert {
            time: time(a.raised_ms),
            connection: a.source.clone(),
            code: a.code.clone(),
            message: a.message.clone(),
            action: a.action.clone(),
        }
    }
}

/// One alert of the history, open or cleared.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(flatten)]
    pub alert: Alert,
    /// When it was cleared (absent: still open), and why.
    pub cleared: Option<DateTime<Utc>>,
    pub cleared_why: Option<String>,
}

impl From<&stored::Alert> for Event {
    fn from(a: &stored::Alert) -> Event {
        Event {
            alert: Alert::from(a),
            cleared: a.cleared_ms.map(time),
            cleared_why: a.cleared_why.clone(),
        }
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub struct Health {
    name: String,
    /// None: a detached health ([`Health::detached`]), which records nothing.
    store: Option<Arc<Store>>,
    fingerprint: String,
    disabled: RwLock<Option<Alert>>,
    /// Where a disable or enable is announced (none: nowhere).
    events: Option<Arc<Events>>,
}

impl crate::graph::access::Standing for Health {
    fn disabled(&self) -> Option<String> {
        self.alert()
            .map(|a| format!("{} ({}). {}", a.message, a.code, a.action))
    }
}

impl Health {
    /// Loads the connection's state from the store. A connection disabled under a different
    /// configuration (`fingerprint`) starts enabled again: its configuration was changed.
    /// Disables and enables are announced on `events`.
    pub async fn open(
        name: &str,
        store: Arc<Store>,
        fingerprint: &str,
        events: Option<Arc<Events>>,
    ) -> crate::state::Result<Health> {
        let open = store.open_alert(name).await?;
        let health = Health {
            name: name.to_string(),
            store: Some(store),
            fingerprint: fingerprint.to_string(),
            disabled: RwLock::new(None),
            events,
        };
        if let Some(open) = open {
            *health.disabled.write() = Some(Alert::from(&open));
            if open.fingerprint.is_some_and(|f| f != fingerprint) {
                health.enable("its configuration changed").await?;
            }
        }
        Ok(health)
    }

    /// A health of its own, enabled, that neither reads nor writes the store: a failure
    /// disables only this connection object, and raises no alert (`spgate check`, which must
    /// change nothing, reports failures itself).
    pub fn detached(name: &str) -> Health {
        Health {
            name: name.to_string(),
            store: None,
            fingerprint: String::new(),
            disabled: RwLock::new(None),
            events: None,
        }
    }

    pub fn alert(&self) -> Option<Alert> {
        self.disabled.read().clone()
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.read().is_some()
    }

    /// Puts in force the connection's open alert as the store has it (`spgate connections
    /// enable` or another instance may have changed it): `open` is every open alert. Answers
    /// whether the connection was enabled again elsewhere ([`Health::announce_enabled`] then
    /// tells the event bus, if no other process has).
    pub fn follow(&self, open: &[stored::Alert]) -> bool {
        let now = open.iter().find(|a| a.source == self.name).map(Alert::from);
        let mut disabled = self.disabled.write();
        let enabled = disabled.is_some() && now.is_none();
        match (&*disabled, &now) {
            (Some(_), None) => {
                tracing::info!(connection = %self.name, "SharePoint connection enabled again elsewhere")
            }
            (None, Some(a)) => {
                tracing::error!(connection = %self.name, code = %a.code, message = %a.message, "SharePoint connection disabled elsewhere")
            }
            _ => {}
        }
        *disabled = now;
        enabled
    }

    /// Announces the connection's newest alert as cleared, unless a process sharing the store
    /// announced it already: a server following an enable made where no event bus is (`spgate
    /// connections enable`, `spgate connections set`) announces it for them.
    pub async fn announce_enabled(&self) -> crate::state::Result<()> {
        let (Some(store), Some(events)) = (&self.store, &self.events) else {
            return Ok(());
        };
        let newest = store.alert_history(Some(&self.name), None, 1).await?;
        match newest.first() {
            Some(cleared) if cleared.cleared_ms.is_some() => announce(store, cleared, events).await,
            _ => Ok(()),
        }
    }

    /// Disables the connection and raises an alert (once, across every instance sharing the
    /// store: a connection disabled already keeps its first alert, which is answered). The
    /// connection is disabled here at once, even when the store cannot record it (the error
    /// is answered): a dead credential is not tried again meanwhile.
    pub async fn disable(
        &self,
        code: &str,
        message: &str,
        action: &str,
    ) -> crate::state::Result<Alert> {
        let time_ms = now_ms();
        let here = Alert {
            time: time(time_ms),
            connection: self.name.clone(),
            code: code.to_string(),
            message: message.to_string(),
            action: action.to_string(),
        };
        {
            let mut disabled = self.disabled.write();
            if let Some(existing) = &*disabled {
                return Ok(existing.clone());
            }
            *disabled = Some(here.clone());
        }
        let Some(store) = &self.store else {
            return Ok(here);
        };
        let raise = Raise {
            source: &self.name,
            code,
            message,
            action,
            fingerprint: Some(&self.fingerprint),
            time_ms,
        };
        let (open, raised) = store.raise_alert(&raise, WhenOpen::Keep).await?;
        if raised {
            tracing::error!(connection = %self.name, code, message, action, "SharePoint connection disabled");
            if let Some(events) = &self.events {
                events.notice(Notice::new(
                    Kind::ConnectionDisabled,
                    &self.name,
                    format!(
                        "SharePoint connection {} is disabled: {message} ({code})",
                        self.name
                    ),
                    action,
                ));
            }
        }
        let alert = Alert::from(&open);
        *self.disabled.write() = Some(alert.clone());
        Ok(alert)
    }

    /// Enables the connection again, clearing its alert; `reason` goes to the log and the
    /// alert's history. Answers whether it was disabled (here or in the store).
    pub async fn enable(&self, reason: &str) -> crate::state::Result<bool> {
        let cleared = match &self.store {
            Some(store) => enable_in(store, &self.name, reason, self.events.as_deref()).await?,
            None => false,
        };
        let was = self.disabled.write().take().is_some() || cleared;
        if was {
            tracing::info!(connection = %self.name, reason, "SharePoint connection enabled again");
        }
        Ok(was)
    }
}

/// Enables connection `name` again in `store` (every instance follows), clearing its open alert;
/// a cleared alert is announced on `events`. Answers whether there was one.
pub async fn enable_in(
    store: &Store,
    name: &str,
    reason: &str,
    events: Option<&Events>,
) -> crate::state::Result<bool> {
    let why = format!("{ENABLED}{reason}");
    let Some(cleared) = store.clear_alert(name, &why, now_ms()).await? else {
        return Ok(false);
    };
    // Enabled whatever becomes of the announcement: a store failing now is only logged.
    if let Some(events) = events
        && let Err(e) = announce(store, &cleared, events).await
    {
        tracing::warn!(connection = name, error = %crate::logging::chain(&e), "could not announce the connection enabled again");
    }
    Ok(true)
}

/// How a connection's cleared alert says why: then the reason.
const ENABLED: &str = "enabled again: ";

/// Announces connection alert `cleared` as cleared, once across every process sharing `store`:
/// the process that cleared it, or a server that saw it cleared by one without an event bus.
async fn announce(
    store: &Store,
    cleared: &stored::Alert,
    events: &Events,
) -> crate::state::Result<()> {
    if !store.claim_once(&format!("enabled:{}", cleared.id)).await? {
        return Ok(());
    }
    let why = cleared.cleared_why.as_deref().unwrap_or_default();
    let reason = why.strip_prefix(ENABLED).unwrap_or(why);
    events.notice(Notice::new(
        Kind::ConnectionEnabled,
        &cleared.source,
        format!(
            "SharePoint connection {} is enabled again ({reason}); it had been disabled: {} ({})",
            cleared.source, cleared.message, cleared.code
        ),
        "none: if its credentials are still refused, the next request disables it again with a new alert",
    ));
    Ok(())
}

/// Raises an alert for `source` (a connection name, `sync:JOB`, `queue:ID`) unless the same
/// alert is open already; an open alert of `source` saying something else is superseded.
pub async fn raise(
    store: &Store,
    source: &str,
    code: &str,
    message: &str,
    action: &str,
) -> crate::state::Result<()> {
    let raise = Raise {
        source,
        code,
        message,
        action,
        fingerprint: None,
        time_ms: now_ms(),
    };
    let (_, raised) = store.raise_alert(&raise, WhenOpen::Replace).await?;
    if raised {
        tracing::error!(source, code, message, action, "alert raised");
    }
    Ok(())
}

/// Clears the open alert of `source`, if there is one.
pub async fn clear(store: &Store, source: &str, reason: &str) -> crate::state::Result<()> {
    let why = format!("cleared: {reason}");
    if store.clear_alert(source, &why, now_ms()).await?.is_some() {
        tracing::info!(source, reason, "alert cleared");
    }
    Ok(())
}

/// The alerts still open, oldest first.
pub async fn open_alerts(store: &Store) -> crate::state::Result<Vec<Alert>> {
    Ok(store.open_alerts().await?.iter().map(Alert::from).collect())
}

/// Alerts open and cleared, newest first: those of `source` (or all), raised before `before`,
/// at most `limit`.
pub async fn history(
    store: &Store,
    source: Option<&str>,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> crate::state::Result<Vec<Event>> {
    Ok(store
        .alert_history(source, before.map(|t| t.timestamp_millis()), limit)
        .await?
        .iter()
        .map(Event::from)
        .collect())
}

/// A line of an earlier version's `alerts.jsonl`.
#[derive(Deserialize)]
struct OldEvent {
    event: OldKind,
    #[serde(flatten)]
    alert: Alert,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OldKind {
    Raised,
    Cleared,
}

/// An earlier version's `connections/NAME.json`.
#[derive(Deserialize)]
struct OldHealth {
    disabled: Option<Alert>,
    fingerprint: String,
}

/// Imports the alert log and connection states an earlier version kept under `state_dir`
/// (once per store; a second import finds it done), then leaves their files as `.imported`.
pub async fn import(store: &Store, state_dir: &Path) -> crate::state::Result<()> {
    let log = state_dir.join("alerts.jsonl");
    let states: Vec<PathBuf> = match std::fs::read_dir(state_dir.join("connections")) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let text = match std::fs::read_to_string(&log) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if text.is_none() && states.is_empty() {
        return Ok(());
    }
    let mut alerts: Vec<stored::Alert> = Vec::new();
    let open_of = |alerts: &mut Vec<stored::Alert>, source: &str| {
        alerts
            .iter_mut()
            .position(|a| a.source == source && a.cleared_ms.is_none())
    };
    for line in text.as_deref().unwrap_or_default().lines() {
        let Ok(old) = serde_json::from_str::<OldEvent>(line) else {
            continue; // a torn last line
        };
        let ms = old.alert.time.timestamp_millis();
        if let Some(i) = open_of(&mut alerts, &old.alert.connection) {
            alerts[i].cleared_ms = Some(ms);
            alerts[i].cleared_why = Some(match old.event {
                OldKind::Raised => "superseded by a newer alert".into(),
                OldKind::Cleared => old.alert.message.clone(),
            });
        }
        if old.event == OldKind::Raised {
            alerts.push(stored_alert(&old.alert, None));
        }
    }
    for file in &states {
        let Some(old) = crate::fsio::read_json::<OldHealth>(file)? else {
            continue;
        };
        let Some(disabled) = old.disabled else {
            continue;
        };
        match open_of(&mut alerts, &disabled.connection) {
            Some(i) => alerts[i].fingerprint = Some(old.fingerprint),
            None => alerts.push(stored_alert(&disabled, Some(old.fingerprint))),
        }
    }
    // A connection's state file said whether it was disabled: an alert about a connection (a
    // source without `:`) the log left open without a disabled state was over.
    let imported_ms = now_ms();
    for alert in alerts
        .iter_mut()
        .filter(|a| a.cleared_ms.is_none() && !a.source.contains(':') && a.fingerprint.is_none())
    {
        alert.cleared_ms = Some(imported_ms);
        alert.cleared_why = Some("the connection was enabled (imported)".into());
    }
    let dir = crate::state::dir_id(state_dir)?;
    if store.import_alerts(&alerts, &dir, imported_ms).await? {
        tracing::info!(
            alerts = alerts.len(),
            "imported the alert log and connection states into the state store"
        );
    }
    for file in text.is_some().then_some(&log).into_iter().chain(&states) {
        crate::state::keep_imported(file, false)?;
    }
    Ok(())
}

fn stored_alert(alert: &Alert, fingerprint: Option<String>) -> stored::Alert {
    stored::Alert {
        id: stored::new_id(),
        source: alert.connection.clone(),
        code: alert.code.clone(),
        message: alert.message.clone(),
        action: alert.action.clone(),
        fingerprint,
        raised_ms: alert.time.timestamp_millis(),
        cleared_ms: None,
        cleared_why: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disabled_state_survives_reopening_until_the_configuration_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::connections::store::Paths::in_dir(dir.path())
            .store()
            .await
            .unwrap();
        let health = Health::open("p", store.clone(), "fp1", None).await.unwrap();
        health
            .disable("invalid_client AADSTS7000222", "secret expired", "renew it")
            .await
            .unwrap();
        health.disable("other", "ignored", "ignored").await.unwrap();
        assert_eq!(open_alerts(&store).await.unwrap().len(), 1);

        let same = Health::open("p", store.clone(), "fp1", None).await.unwrap();
        assert_eq!(same.alert().unwrap().code, "invalid_client AADSTS7000222");

        let changed = Health::open("p", store.clone(), "fp2", None).await.unwrap();
        assert!(!changed.is_disabled());
        assert!(open_alerts(&store).await.unwrap().is_empty());
        assert!(
            !Health::open("p", store.clone(), "fp2", None)
                .await
                .unwrap()
                .is_disabled()
        );
        let history = history(&store, Some("p"), None, 10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            history[0].cleared_why.as_deref(),
            Some("enabled again: its configuration changed")
        );
    }

    #[tokio::test]
    async fn an_alert_is_raised_once_and_superseded_by_a_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::connections::store::Paths::in_dir(dir.path())
            .store()
            .await
            .unwrap();
        raise(&store, "sync:a", "sync_skipped", "1 path", "rename")
            .await
            .unwrap();
        raise(&store, "sync:a", "sync_skipped", "1 path", "rename")
            .await
            .unwrap();
        raise(&store, "sync:a", "sync_skipped", "2 paths", "rename")
            .await
            .unwrap();
        let open = open_alerts(&store).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].message, "2 paths");
        clear(&store, "sync:a", "the last run succeeded")
            .await
            .unwrap();
        clear(&store, "sync:a", "again").await.unwrap();
        assert!(open_alerts(&store).await.unwrap().is_empty());
        let history = history(&store, None, None, 10).await.unwrap();
        let mut why: Vec<Option<&str>> = history.iter().map(|e| e.cleared_why.as_deref()).collect();
        why.sort();
        assert_eq!(
            why,
            [
                Some("cleared: the last run succeeded"),
                Some("superseded by a newer alert")
            ]
        );
    }
}
