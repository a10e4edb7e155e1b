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
    pub user: String,
    pub action: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The audit line's JSON.
    pub event: String,
}

/// Which events a query answers.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub user: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only events before this time (Unix milliseconds): the next page's `before`.
    pub before_ms: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Appends `entries`, in one transaction.
    pub async fn append_audit(&self, entries: &[Entry]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for entry in entries {
            sqlx::query(
                "INSERT INTO audit (time_ms, user_name, action, outcome, event)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(entry.time_ms)
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
        let rows = sqlx::query(
            "SELECT time_ms, user_name, action, outcome, event FROM audit
             WHERE ($1 IS NULL OR user_name = $1) AND ($2 IS NULL OR action = $2)
               AND ($3 IS NULL OR outcome = $3) AND time_ms >= $4 AND time_ms < $5
             ORDER BY time_ms DESC LIMIT $6",
        )
        .bind(query.user.as_deref())
        .bind(query.action.as_deref())
        .bind(query.outcome.as_deref())
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(query.before_ms.unwrap_or(i64::MAX))
        .bind(query.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    time_ms: row.try_get("time_ms")?,
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
