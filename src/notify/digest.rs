//! The daily digest of a target with `digest = "HH:MM"`: at that time (UTC) one message with
//! the alerts open in the state store (connections, sync jobs, uploads) and how many were raised
//! and cleared over the last day. Of the instances sharing the store, the first to claim the
//! day's digest of the target sends it ([`Store::claim_once`]); it is queued like any
//! notification, and so tried again on failure.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::sync::mpsc::WeakSender;
use tokio_util::sync::CancellationToken;

use super::message::{Message, clean};
use crate::state::Store;
use crate::state::alerts::Alert;

/// The first `at` (UTC) after `now`.
pub fn next(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

/// What a digest says.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Open alerts, oldest first.
    pub open: Vec<Alert>,
    /// Alerts raised over the last day, and cleared.
    pub raised: usize,
    pub cleared: usize,
}

/// The summary at `now` from `store`.
pub async fn summarize(store: &Store, now: DateTime<Utc>) -> crate::state::Result<Summary> {
    let since = (now - Duration::days(1)).timestamp_millis();
    let open = store.open_alerts().await?;
    let history = store.alert_history(None, None, 10_000).await?;
    Ok(Summary {
        open,
        raised: history.iter().filter(|a| a.raised_ms >= since).count(),
        cleared: history
            .iter()
            .filter(|a| a.cleared_ms.is_some_and(|c| c >= since))
            .count(),
    })
}

/// What an alert's source is: a connection, a sync job or a queued upload.
fn what(source: &str) -> String {
    match source.split_once(':') {
        Some(("sync", job)) => format!("sync job {}", clean(job)),
        Some(("queue", id)) => format!("queued upload {}", clean(id)),
        _ => format!("connection {}", clean(source)),
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Message {
    /// The digest of `summary`, made at `now` by instance `host`.
    pub fn digest(summary: &Summary, now: DateTime<Utc>, host: &str) -> Message {
        let id = uuid::Uuid::new_v4().to_string();
        let open = summary.open.len();
        let title = format!("daily digest: {open} alert(s) open");
        let mut text = format!("{title}\n\n");
        if summary.open.is_empty() {
            text.push_str("Nothing is disabled or failing.\n");
        }
        for a in &summary.open {
            text.push_str(&format!(
                "- {}, since {}: {} ({})\n  What to do: {}\n",
                what(&a.source),
                rfc3339(a.raised_ms),
                clean(&a.message),
                clean(&a.code),
                clean(&a.action)
            ));
        }
        let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        text.push_str(&format!(
            "\nOver the last day: {} alert(s) raised, {} cleared.\n\ntime: {time}\nhost: {host}\n\
             event: digest, id {id}\n",
            summary.raised, summary.cleared
        ));
        let alerts: Vec<_> = summary
            .open
            .iter()
            .map(|a| {
                json!({
                    "source": a.source, "code": a.code, "message": a.message,
                    "action": a.action, "since": rfc3339(a.raised_ms),
                })
            })
            .collect();
        let json = json!({
            "id": id, "kind": "digest", "time": time, "title": title,
            "open_alerts": alerts,
            "last_day": {"raised": summary.raised, "cleared": summary.cleared},
            "problem": open > 0, "host": host,
        });
        Message {
            id,
            kind: "digest",
            title,
            text,
            json,
        }
    }
}

/// Queues target `name`'s digest on `queue` at `at` every day, until `stop` or until the
/// target is gone (its queue closed).
pub async fn daily(
    name: String,
    at: NaiveTime,
    store: Arc<Store>,
    queue: WeakSender<Message>,
    host: String,
    stop: CancellationToken,
) {
    loop {
        let now = Utc::now();
        let due = next(now, at);
        let wait = (due - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        let key = format!("digest:{name}:{}", due.date_naive());
        let summary = match store.claim_once(&key).await {
            Ok(false) => continue, // another instance sends it
            Ok(true) => summarize(&store, due).await,
            Err(e) => Err(e),
        };
        match summary {
            Ok(summary) => {
                if queue
                    .try_send(Message::digest(&summary, due, &host))
                    .is_err()
                {
                    tracing::warn!(target = %name, "digest dropped: the target's queue is full");
                }
            }
            Err(e) => {
                tracing::warn!(target = %name, error = %e, "no digest today: the state store failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn the_next_digest_is_today_if_its_time_is_still_to_come() {
        let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        assert_eq!(
            next(at("2026-12-01T07:59:59Z"), eight),
            at("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            next(at("2026-12-01T08:00:00Z"), eight),
            at("2026-12-02T08:00:00Z")
        );
        assert_eq!(
            next(at("2026-12-31T23:00:00Z"), eight),
            at("2027-01-01T08:00:00Z")
        );
    }

    #[tokio::test]
    async fn a_digest_lists_the_open_alerts_and_counts_the_last_day_once_per_day() {
        use crate::state::alerts::{Raise, WhenOpen};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::connections::store::Paths::in_dir(dir.path())
            .store()
            .await
            .unwrap();
        let now = Utc::now();
        let raise = |source: &'static str, time_ms: i64| Raise {
            source,
            code: "code",
            message: "broken",
            action: "fix it",
            fingerprint: None,
            time_ms,
        };
        let old = (now - Duration::days(3)).timestamp_millis();
        store
            .raise_alert(&raise("sp", old), WhenOpen::Keep)
            .await
            .unwrap();
        let recent = now.timestamp_millis() - 1000;
        store
            .raise_alert(&raise("sync:mirror", recent), WhenOpen::Keep)
            .await
            .unwrap();
        store
            .raise_alert(&raise("queue:7", recent), WhenOpen::Keep)
            .await
            .unwrap();
        store
            .clear_alert("queue:7", "retried", recent)
            .await
            .unwrap();

        let summary = summarize(&store, now).await.unwrap();
        assert_eq!(
            (summary.open.len(), summary.raised, summary.cleared),
            (2, 2, 1)
        );
        let message = Message::digest(&summary, now, "gw1");
        assert_eq!(message.title, "daily digest: 2 alert(s) open");
        assert!(
            message.text.contains("- connection sp, since "),
            "{}",
            message.text
        );
        assert!(
            message.text.contains("- sync job mirror, since "),
            "{}",
            message.text
        );
        assert!(
            message.text.contains("2 alert(s) raised, 1 cleared"),
            "{}",
            message.text
        );
        assert_eq!(message.json["open_alerts"][1]["source"], "sync:mirror");

        assert!(store.claim_once("digest:t:2026-12-01").await.unwrap());
        assert!(!store.claim_once("digest:t:2026-12-01").await.unwrap());
        assert!(store.claim_once("digest:t:2026-12-02").await.unwrap());
    }
}
