//! Sync jobs inside `spgate serve`: each enabled job runs at start and then every `interval`;
//! a file stored by an SFTP/FTP upload into a pushed local folder starts its job after a short
//! quiet period instead. A run still going when the next is due makes that one be skipped
//! (the loop is sequential per job, and across processes the run lock refuses a second run).
//! Jobs whose connection is disabled pause until it is enabled again. Shutdown lets the files
//! in flight finish and records the run as interrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::run::{self, Options, Quiet};
use super::store::Store;
use super::{Error, Outcome};
use crate::config::{Config, Direction, SyncJob};
use crate::connections::Connection;
use crate::connections::store::Paths;

/// How long uploads must pause before a triggered run starts (a partner uploading many files
/// starts one run, not one per file).
pub const QUIET: Duration = Duration::from_secs(3);

/// Which local folders feed which jobs, and a way to wake a job.
pub struct Triggers {
    /// Enabled jobs: local folder, wake-up, name, whether uploads into the folder concern it.
    jobs: Vec<(PathBuf, Arc<Notify>, String, bool)>,
}

impl Triggers {
    /// A trigger per enabled job; uploads wake only the jobs that push (push or two-way).
    pub fn new(config: &Config) -> Triggers {
        Triggers {
            jobs: config
                .syncs
                .iter()
                .filter(|j| j.enabled)
                .map(|j| {
                    let pushes = j.direction != Direction::Pull;
                    (
                        j.local.clone(),
                        Arc::new(Notify::new()),
                        j.name.clone(),
                        pushes,
                    )
                })
                .collect(),
        }
    }

    /// Asks the scheduler to run `job` soon; false when no enabled job has that name.
    pub fn run_now(&self, job: &str) -> bool {
        match self.of(job) {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// Whether files stored under `dir` may concern a job.
    pub fn watching(&self, dir: &Path) -> bool {
        self.jobs.iter().any(|(local, _, _, pushes)| {
            *pushes && (dir.starts_with(local) || local.starts_with(dir))
        })
    }

    /// A file was stored at `file`: wake the jobs whose folder holds it.
    pub fn stored(&self, file: &Path) {
        for (local, notify, name, pushes) in &self.jobs {
            if *pushes && file.starts_with(local) {
                tracing::debug!(job = %name, file = %file.display(), "upload into a sync folder");
                notify.notify_one();
            }
        }
    }

    fn of(&self, job: &str) -> Option<Arc<Notify>> {
        self.jobs
            .iter()
            .find(|(_, _, name, _)| name == job)
            .map(|(_, n, _, _)| n.clone())
    }
}

/// Starts a task per enabled job on `tracker`; they stop (between files) when `stop` is
/// cancelled.
pub fn start(
    config: &Config,
    connections: &HashMap<String, Arc<Connection>>,
    triggers: &Triggers,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let jobs: Vec<&SyncJob> = config.syncs.iter().filter(|j| j.enabled).collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let store = Store::open(&Store::path_in(&config.state.dir)).map_err(std::io::Error::other)?;
    let paths = Paths::of(config);
    for job in jobs {
        let Some(connection) = connections.get(&job.connection).cloned() else {
            continue;
        };
        let notify = triggers.of(&job.name).unwrap_or_default();
        let (job, store, paths, stop) = (job.clone(), store.clone(), paths.clone(), stop.clone());
        tracker.spawn(schedule(job, connection, store, paths, notify, stop));
    }
    Ok(())
}

async fn schedule(
    job: SyncJob,
    connection: Arc<Connection>,
    store: Store,
    paths: Paths,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) {
    tracing::info!(job = %job.name, every = ?job.interval, "sync job scheduled");
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(next) => {}
            _ = notify.notified() => {
                // Wait for a quiet period, so a burst of uploads makes one run.
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = sleep(QUIET) => break,
                        _ = notify.notified() => {}
                    }
                }
            }
        }
        next = Instant::now() + job.interval;
        if connection.health.is_disabled() {
            tracing::info!(job = %job.name, connection = %job.connection, "sync paused: the connection is disabled");
            continue;
        }
        let started = std::time::Instant::now();
        match run::run(
            &job,
            &connection,
            &store,
            &paths,
            Options::default(),
            &Quiet,
            &shutdown,
        )
        .await
        {
            Ok(report) => {
                let c = report.counts;
                let fields = (
                    c.uploaded,
                    c.downloaded,
                    c.deleted_local + c.deleted_remote,
                    c.conflicts,
                    c.errors,
                );
                match report.outcome {
                    Outcome::Success | Outcome::Interrupted => tracing::info!(
                        job = %job.name, outcome = report.outcome.as_str(), uploaded = fields.0, downloaded = fields.1,
                        deleted = fields.2, conflicts = fields.3, seconds = started.elapsed().as_secs_f64(), "sync run"
                    ),
                    Outcome::Partial | Outcome::Aborted => tracing::warn!(
                        job = %job.name, outcome = report.outcome.as_str(), uploaded = fields.0, downloaded = fields.1,
                        deleted = fields.2, conflicts = fields.3, errors = fields.4,
                        message = report.message.as_deref().unwrap_or_default(), "sync run"
                    ),
                }
            }
            Err(Error::Busy(holder)) => {
                tracing::info!(job = %job.name, holder, "sync run skipped: the previous one is still going");
            }
            Err(e) => tracing::warn!(job = %job.name, error = %e, "sync run failed"),
        }
    }
}
