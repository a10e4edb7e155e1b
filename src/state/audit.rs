//! The transfer audit in the store: every audit line, kept for `[audit] retention` (30 days by
//! default) and queried by the admin API, newest first. The audit's own sink (the JSONL file or
//! standard output) stays the complete record; the table is for looking things up, across
//! instances sharing a store.

use sqlx::Row;

use super::{Result, Store};

/// One audit event as stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Orders the events of one millisecond (random).
    pub seq: i64,
    pub user: String,
    pub action: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The audit line's JSON.
    pub event: String,
}

impl Entry {
    pub fn new(time_ms: i64, user: &str, action: &str, outcome: &str, event: String) -> Entry {
        Entry {
            time_ms,
            seq: rand::random::<i64>() & i64::MAX,
            user: user.to_string(),
            action: action.to_string(),
            outcome: outcome.to_string(),
            event,
        }
    }

    /// Where the next page starts: the events older than this one.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.time_ms, self.seq)
    }
}

/// A page's start, [`Entry::cursor`]: `(time_ms, seq)`.
pub fn parse_cursor(text: &str) -> Option<(i64, i64)> {
    let (time, seq) = text.split_once('.')?;
    Some((time.parse().ok()?, seq.parse().ok()?))
}

/// Which events a query answers.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub user: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only events before this time (Unix milliseconds).
    pub before_ms: Option<i64>,
    /// Only events older than this one (a previous page's last, [`parse_cursor`]).
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

impl Store {
    /// Appends `entries`, in one transaction.
    pub async fn append_audit(&self, entries: &[Entry]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for entry in entries {
            sqlx::query(
                "INSERT INTO audit (time_ms, seq, user_name, action, outcome, event)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(entry.time_ms)
            .bind(entry.seq)
            .bind(&entry.user)
            .bind(&entry.action)
            .bind(&entry.outcome)
            .bind(&entry.event)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The events `query` selects, newest first, as their JSON lines.
    pub async fn audit(&self, query: &Query) -> Result<Vec<Entry>> {
        // Each filter is either given or matches everything: one statement for every query.
        // The older-than bound: the cursor's event, else the start of `before`'s millisecond.
        let (until_ms, until_seq) = match (query.after, query.before_ms) {
            (Some((time, seq)), before) => match before {
                Some(before) if before <= time => (before, i64::MIN),
                _ => (time, seq),
            },
            (None, Some(before)) => (before, i64::MIN),
            (None, None) => (i64::MAX, i64::MAX),
        };
        let rows = sqlx::query(
            "SELECT time_ms, seq, user_name, action, outcome, event FROM audit
             WHERE ($1 IS NULL OR user_name = $1) AND ($2 IS NULL OR action = $2)
               AND ($3 IS NULL OR outcome = $3) AND time_ms >= $4
               AND (time_ms < $5 OR (time_ms = $5 AND seq < $6))
             ORDER BY time_ms DESC, seq DESC LIMIT $7",
        )
        .bind(query.user.as_deref())
        .bind(query.action.as_deref())
        .bind(query.outcome.as_deref())
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(until_ms)
        .bind(until_seq)
        .bind(query.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    time_ms: row.try_get("time_ms")?,
                    seq: row.try_get("seq")?,
                    user: row.try_get("user_name")?,
                    action: row.try_get("action")?,
                    outcome: row.try_get("outcome")?,
                    event: row.try_get("event")?,
                })
            })
            .collect()
    }

    /// Deletes the events older than `before_ms`: how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE time_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
