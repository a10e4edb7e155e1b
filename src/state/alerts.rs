//! Alerts in the store: each one raised about a source (a connection's name, `sync:JOB`,
//! `queue:ID`) and later cleared, kept as history. At most one alert per source is open at a
//! time, whichever instance raises it (a unique index on the open ones). An open alert whose
//! source is a connection's name is what disables that connection. Every alert raised or
//! cleared bumps [`Counter::Health`], so that every instance sharing the store follows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Counter, Result, Store, bump};

/// One alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: String,
    /// What it is about: a connection's name, `sync:JOB`, `queue:ID`.
    pub source: String,
    /// E.g. `invalid_client AADSTS7000222`.
    pub code: String,
    pub message: String,
    /// What an administrator should do.
    pub action: String,
    /// The configuration a connection was disabled under.
    pub fingerprint: Option<String>,
    /// Unix milliseconds.
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    pub cleared_why: Option<String>,
}

/// An alert to raise.
#[derive(Debug, Clone, Copy)]
pub struct Raise<'a> {
    pub source: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub action: &'a str,
    pub fingerprint: Option<&'a str>,
    pub time_ms: i64,
}

/// What raising does when the source has an open alert already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenOpen {
    /// The open alert stays (a disabled connection keeps the alert that disabled it).
    Keep,
    /// An open alert saying something else (code or message) is cleared, superseded.
    Replace,
}

/// The columns every query of the table answers.
macro_rules! columns {
    () => {
        "id, source, code, message, action, fingerprint, raised_ms, cleared_ms, cleared_why"
    };
}

impl Store {
    /// Raises `raise` unless its source has an open alert (see [`WhenOpen`]); answers the
    /// source's open alert afterwards and whether it is the one just raised.
    pub async fn raise_alert(
        &self,
        raise: &Raise<'_>,
        when_open: WhenOpen,
    ) -> Result<(Alert, bool)> {
        let mut tx = self.pool().begin().await?;
        if when_open == WhenOpen::Replace {
            // Writes come first, so that an SQLite transaction holds the write lock from its
            // first statement on.
            sqlx::query(
                "UPDATE alerts SET cleared_ms = $1, cleared_why = $2
                 WHERE source = $3 AND cleared_ms IS NULL AND NOT (code = $4 AND message = $5)",
            )
            .bind(raise.time_ms)
            .bind("superseded by a newer alert")
            .bind(raise.source)
            .bind(raise.code)
            .bind(raise.message)
            .execute(&mut *tx)
            .await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO alerts (id, source, code, message, action, fingerprint, raised_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (source) WHERE cleared_ms IS NULL DO NOTHING",
        )
        .bind(new_id())
        .bind(raise.source)
        .bind(raise.code)
        .bind(raise.message)
        .bind(raise.action)
        .bind(raise.fingerprint)
        .bind(raise.time_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            bump(&mut tx, Counter::Health).await?;
        }
        let open = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM alerts WHERE source = $1 AND cleared_ms IS NULL"
        ))
        .bind(raise.source)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match open {
            Some(open) => Ok((alert(&open)?, inserted)),
            // Cleared by another instance between this insert and this read: raise again.
            None => Box::pin(self.raise_alert(raise, when_open)).await,
        }
    }

    /// Clears the open alert of `source`, if there is one, and answers it.
    pub async fn clear_alert(
        &self,
        source: &str,
        why: &str,
        time_ms: i64,
    ) -> Result<Option<Alert>> {
        let mut tx = self.pool().begin().await?;
        let cleared = sqlx::query(concat!(
            "UPDATE alerts SET cleared_ms = $1, cleared_why = $2
             WHERE source = $3 AND cleared_ms IS NULL RETURNING ",
            columns!()
        ))
        .bind(time_ms)
        .bind(why)
        .bind(source)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| alert(&row))
        .transpose()?;
        if cleared.is_some() {
            bump(&mut tx, Counter::Health).await?;
        }
        tx.commit().await?;
        Ok(cleared)
    }

    /// The open alert of `source`.
    pub async fn open_alert(&self, source: &str) -> Result<Option<Alert>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM alerts WHERE source = $1 AND cleared_ms IS NULL"
        ))
        .bind(source)
        .fetch_optional(self.pool())
        .await?
        .map(|row| alert(&row))
        .transpose()
    }

    /// Every open alert, oldest first.
    pub async fn open_alerts(&self) -> Result<Vec<Alert>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM alerts WHERE cleared_ms IS NULL ORDER BY raised_ms, id"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(alert)
        .collect()
    }

    /// Alerts open and cleared, newest first: those of `source` (or all), raised before
    /// `before_ms` (or any time), at most `limit`.
    pub async fn alert_history(
        &self,
        source: Option<&str>,
        before_ms: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Alert>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM alerts
             WHERE ($1 IS NULL OR source = $1) AND raised_ms < $2
             ORDER BY raised_ms DESC, id DESC LIMIT $3"
        ))
        .bind(source)
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(alert)
        .collect()
    }

    /// Deletes the alerts cleared before `before_ms` (open ones stay, however old).
    pub async fn prune_alerts(&self, before_ms: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM alerts WHERE cleared_ms IS NOT NULL AND cleared_ms < $1")
                .bind(before_ms)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Stores `alerts` (open or cleared, from the files an earlier version kept in state
    /// directory `dir`, by its [`super::dir_id`]) once: false, and nothing written, when that
    /// directory's were imported before. An imported open alert whose source has one open
    /// already (another instance's) is stored as cleared.
    pub async fn import_alerts(&self, alerts: &[Alert], dir: &str, time_ms: i64) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        if !super::mark_imported(&mut tx, "alerts", dir).await? {
            return Ok(false);
        }
        for a in alerts {
            let open = a.cleared_ms.is_none()
                && sqlx::query("SELECT id FROM alerts WHERE source = $1 AND cleared_ms IS NULL")
                    .bind(&a.source)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_none();
            let (cleared_ms, cleared_why) = if open || a.cleared_ms.is_some() {
                (a.cleared_ms, a.cleared_why.clone())
            } else {
                (
                    Some(time_ms),
                    Some("superseded by a newer alert".to_string()),
                )
            };
            sqlx::query(concat!(
                "INSERT INTO alerts (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(&a.id)
            .bind(&a.source)
            .bind(&a.code)
            .bind(&a.message)
            .bind(&a.action)
            .bind(&a.fingerprint)
            .bind(a.raised_ms)
            .bind(cleared_ms)
            .bind(cleared_why)
            .execute(&mut *tx)
            .await?;
        }
        bump(&mut tx, Counter::Health).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A new alert's id: random, so that instances never collide.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn alert(row: &AnyRow) -> Result<Alert> {
    Ok(Alert {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        code: row.try_get("code")?,
        message: row.try_get("message")?,
        action: row.try_get("action")?,
        fingerprint: row.try_get("fingerprint")?,
        raised_ms: row.try_get("raised_ms")?,
        cleared_ms: row.try_get("cleared_ms")?,
        cleared_why: row.try_get("cleared_why")?,
    })
}
