//! Failed logins in the store: per user and address group, the failures in a row and the time
//! of the last one. The policy (how many lock, for how long) is the session layer's; the store
//! keeps the counts where every instance sharing it sees them, and where a restart does not
//! reset them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};

/// A user's failed logins in a row from one address group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    pub user: String,
    /// An IPv4 address (`/32`) or an IPv6 `/64`, as text.
    pub addresses: String,
    pub failures: i64,
    /// Unix milliseconds.
    pub last_ms: i64,
}

/// The columns every query of the table answers.
macro_rules! columns {
    () => {
        "user_name, addresses, failures, last_ms"
    };
}

impl Store {
    /// Counts a failed login of `user` from `addresses` at `now_ms`; a streak whose last failure
    /// is before `expired_ms` starts again. Answers the failures in a row now.
    pub async fn login_failed(
        &self,
        user: &str,
        addresses: &str,
        now_ms: i64,
        expired_ms: i64,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO lockouts (user_name, addresses, failures, last_ms) VALUES ($1, $2, 1, $3)
             ON CONFLICT (user_name, addresses) DO UPDATE SET
                 failures = CASE WHEN lockouts.last_ms < $4 THEN 1 ELSE lockouts.failures + 1 END,
                 last_ms = $3
             RETURNING failures",
        )
        .bind(user)
        .bind(addresses)
        .bind(now_ms)
        .bind(expired_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("failures")?)
    }

    /// The failed logins in a row of `user` from `addresses`.
    pub async fn login_failures(&self, user: &str, addresses: &str) -> Result<Option<Failures>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM lockouts WHERE user_name = $1 AND addresses = $2"
        ))
        .bind(user)
        .bind(addresses)
        .fetch_optional(self.pool())
        .await?
        .map(|row| failures(&row))
        .transpose()
    }

    /// Forgets the failures of `user` from `addresses` (a successful login).
    pub async fn login_succeeded(&self, user: &str, addresses: &str) -> Result<()> {
        sqlx::query("DELETE FROM lockouts WHERE user_name = $1 AND addresses = $2")
            .bind(user)
            .bind(addresses)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The streaks of at least `at_least` failures whose last one is at or after `since_ms`, by
    /// user then addresses.
    pub async fn lockouts(&self, at_least: i64, since_ms: i64) -> Result<Vec<Failures>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM lockouts WHERE failures >= $1 AND last_ms >= $2
             ORDER BY user_name, addresses"
        ))
        .bind(at_least)
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(failures)
        .collect()
    }

    /// Forgets the failures of `user` (or everyone's); answers what was forgotten.
    pub async fn clear_lockouts(&self, user: Option<&str>) -> Result<Vec<Failures>> {
        sqlx::query(concat!(
            "DELETE FROM lockouts WHERE ($1 IS NULL OR user_name = $1) RETURNING ",
            columns!()
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(failures)
        .collect()
    }

    /// Deletes the streaks whose last failure is before `before_ms`.
    pub async fn prune_lockouts(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM lockouts WHERE last_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}

fn failures(row: &AnyRow) -> Result<Failures> {
    Ok(Failures {
        user: row.try_get("user_name")?,
        addresses: row.try_get("addresses")?,
        failures: row.try_get("failures")?,
        last_ms: row.try_get("last_ms")?,
    })
}
