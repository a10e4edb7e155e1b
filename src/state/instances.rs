//! The instances serving from the store: each `spgate serve` writes a heartbeat row every few
//! seconds (its state directory's id, host, version, sessions, queued uploads), so that every
//! instance, the CLI and the admin API can show the cluster. Times come from the database's
//! clock, one clock for every host.

use sqlx::Row;

use super::{Engine, Result, Store};

/// An instance whose heartbeat is older than this is shown as gone.
pub const GONE_AFTER_S: i64 = 30;
/// Rows of instances stopped or gone for longer than this are forgotten.
const FORGET_AFTER_S: i64 = 7 * 24 * 3600;

/// What an instance says of itself in each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// Its state directory's id (`[state] dir/state.id`).
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// The admin endpoint's address, when it has one.
    pub admin: Option<String>,
    pub sessions: i64,
    /// Uploads in its queue (waiting or under way).
    pub uploads: i64,
}

/// An instance as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub beat: Beat,
    /// Unix seconds (the database's clock).
    pub started: i64,
    pub heartbeat: i64,
    pub stopped: Option<i64>,
    /// The sync jobs whose run lock it holds.
    pub jobs: Vec<String>,
}

/// An instance's state, as of a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Stopped,
    /// No heartbeat for [`GONE_AFTER_S`]: killed, crashed or cut off.
    Gone,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Stopped => "stopped",
            Status::Gone => "gone",
        }
    }
}

impl Instance {
    /// Its state at `now` (Unix seconds, the database's clock).
    pub fn status(&self, now: i64) -> Status {
        if self.stopped.is_some() {
            Status::Stopped
        } else if now - self.heartbeat > GONE_AFTER_S {
            Status::Gone
        } else {
            Status::Up
        }
    }
}

/// The prefix of the run-lock owners of runs made by instance `id`.
pub fn lock_owner_prefix(id: &str) -> String {
    format!("instance {id} ")
}

impl Store {
    /// An SQL expression of the database's clock, in Unix seconds.
    pub(crate) fn clock_sql(&self) -> &'static str {
        match self.engine() {
            Engine::Sqlite => "unixepoch()",
            // FLOOR: a cast alone rounds, half a second early.
            Engine::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)",
        }
    }

    /// The database's clock, in Unix seconds.
    pub async fn clock(&self) -> Result<i64> {
        Ok(self.clock_on(self.pool()).await?)
    }

    /// [`Store::clock`], read through `executor` (a transaction or connection of the caller).
    pub(crate) async fn clock_on<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    ) -> std::result::Result<i64, sqlx::Error> {
        let sql = format!("SELECT {} AS now", self.clock_sql());
        // The statement is one of two fixed texts.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(executor)
            .await?
            .try_get("now")
    }

    /// Records a heartbeat of `beat`'s instance; `starting` marks its start.
    pub async fn instance_beat(&self, beat: &Beat, starting: bool) -> Result<()> {
        let clock = self.clock_sql();
        let started = match starting {
            true => "excluded.started",
            false => "instances.started",
        };
        let sql = format!(
            "INSERT INTO instances
                 (id, host, pid, version, admin, started, heartbeat, stopped, sessions, uploads)
             VALUES ($1, $2, $3, $4, $5, {clock}, {clock}, NULL, $6, $7)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                 version = excluded.version, admin = excluded.admin, started = {started},
                 heartbeat = excluded.heartbeat, stopped = NULL,
                 sessions = excluded.sessions, uploads = excluded.uploads"
        );
        // Built from fixed texts only; the values are bound.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&beat.id)
            .bind(&beat.host)
            .bind(beat.pid)
            .bind(&beat.version)
            .bind(&beat.admin)
            .bind(beat.sessions)
            .bind(beat.uploads)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks instance `id` as stopped (a graceful shutdown), and forgets instances stopped or
    /// gone for a week.
    pub async fn instance_stopped(&self, id: &str) -> Result<()> {
        let clock = self.clock_sql();
        let sql = format!(
            "UPDATE instances SET stopped = {clock}, heartbeat = {clock}, sessions = 0 WHERE id = $1"
        );
        // Built from fixed texts only.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .execute(self.pool())
            .await?;
        let sql = format!("DELETE FROM instances WHERE heartbeat < {clock} - $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(FORGET_AFTER_S)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every instance the store knows, by start, and the database's clock now.
    pub async fn instances(&self) -> Result<(i64, Vec<Instance>)> {
        let now = self.clock().await?;
        let locks: Vec<(String, String)> = sqlx::query("SELECT job, owner FROM sync_locks")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| Ok((row.try_get("job")?, row.try_get("owner")?)))
            .collect::<Result<_>>()?;
        let rows = sqlx::query(
            "SELECT id, host, pid, version, admin, started, heartbeat, stopped, sessions, uploads
             FROM instances ORDER BY started, id",
        )
        .fetch_all(self.pool())
        .await?;
        let instances = rows
            .iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let prefix = lock_owner_prefix(&id);
                let mut jobs: Vec<String> = locks
                    .iter()
                    .filter(|(_, owner)| owner.starts_with(&prefix))
                    .map(|(job, _)| job.clone())
                    .collect();
                jobs.sort();
                Ok(Instance {
                    beat: Beat {
                        id,
                        host: row.try_get("host")?,
                        pid: row.try_get("pid")?,
                        version: row.try_get("version")?,
                        admin: row.try_get("admin")?,
                        sessions: row.try_get("sessions")?,
                        uploads: row.try_get("uploads")?,
                    },
                    started: row.try_get("started")?,
                    heartbeat: row.try_get("heartbeat")?,
                    stopped: row.try_get("stopped")?,
                    jobs,
                })
            })
            .collect::<Result<_>>()?;
        Ok((now, instances))
    }

    /// The id of the cluster of instances sharing this store (made with the store).
    pub async fn cluster_id(&self) -> Result<String> {
        let fresh = format!("{:032x}", rand::random::<u128>());
        sqlx::query(
            "INSERT INTO spgate_meta (key, value) VALUES ('cluster_id', $1)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&fresh)
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT value FROM spgate_meta WHERE key = 'cluster_id'")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Claims the task `key` (e.g. one day's digest of a notification target) for the caller:
    /// true for the first claim among every instance sharing the store, false for the others.
    pub async fn claim_once(&self, key: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO spgate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(format!("claimed:{key}"))
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
