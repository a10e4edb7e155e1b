//! Sync jobs inside `spgate serve`: each enabled job runs at start and then every `interval`;
//! a file stored by an SFTP/FTP upload into a pushed local folder (the session layer's
//! [`Event::Stored`], which the scheduler subscribes to) starts its job after a short quiet
//! period instead. A run still going when the next is due makes that one be skipped
//! (the loop is sequential per job, and across processes the run lock refuses a second run).
//! Jobs whose connection is disabled pause until it is enabled again. Shutdown lets the files
//! in flight finish, records the run as interrupted and hands the job over: on a shared store,
//! another instance goes on with it at once, as it does (within seconds) with a job whose
//! instance died in the middle of a run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::run::{self, Options, Quiet};
use super::store::Store;
use super::{Error, Outcome};
use crate::config::{Config, Direction, SyncJob};
use crate::connections::Connection;
use crate::connections::store::Paths;
use crate::events::{Event, Events, Place};

/// How often each job's run lock is checked for a run to take over (an instance that died or
/// stopped in the middle of the job).
pub const WATCH: Duration = Duration::from_secs(1);

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

    /// A file was stored at `file`: wake the jobs whose folder holds it.
    pub fn stored(&self, file: &Path) {
        for (local, notify, name, pushes) in &self.jobs {
            if *pushes && file.starts_with(local) {
                tracing::debug!(job = %name, file = %file.display(), "upload into a sync folder");
                notify.notify_one();
            }
        }
    }

    /// Events were missed: wake every job that pushes, as one of them may concern it.
    fn lagged(&self) {
        for (_, notify, _, pushes) in &self.jobs {
            if *pushes {
                notify.notify_one();
            }
        }
    }

    /// Wakes the jobs `events` concern until `stop`.
    async fn follow(
        self: Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<Event>,
        stop: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(Event::Stored(Place::Local(file))) => self.stored(&file),
                Ok(Event::Stored(Place::SharePoint { .. }) | Event::Notice(_)) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "sync scheduler: file-stored events missed");
                    self.lagged();
                }
                Err(RecvError::Closed) => return,
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

/// Starts a task per enabled job on `tracker` (their state in `state`), and one following `events` for the jobs'
/// triggers; they stop (between files) when `stop` is cancelled.
pub fn start(
    config: &Config,
    state: &Arc<crate::state::Store>,
    connections: &HashMap<String, Arc<Connection>>,
    triggers: &Arc<Triggers>,
    events: &Arc<Events>,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let jobs: Vec<&SyncJob> = config.syncs.iter().filter(|j| j.enabled).collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let store = Store::new(state.clone());
    let paths = Paths::with_store(config, state.clone());
    tracker.spawn(triggers.clone().follow(events.subscribe(), stop.clone()));
    for job in jobs {
        let Some(connection) = connections.get(&job.connection).cloned() else {
            continue;
        };
        let notify = triggers.of(&job.name).unwrap_or_default();
        let job = Job {
            job: job.clone(),
            connection,
            store: store.clone(),
            paths: paths.clone(),
            events: events.clone(),
        };
        tracker.spawn(schedule(job, notify, stop.clone()));
    }
    Ok(())
}

/// Whether the job should run now rather than at its due time: the connection is enabled
/// again after a run was `missed`, or a run holding the job stopped or its instance is gone
/// (taken over at once).
async fn run_before_due(
    job: &SyncJob,
    connection: &Connection,
    store: &Store,
    missed: bool,
) -> bool {
    if connection.health.is_disabled() {
        return false;
    }
    if missed {
        tracing::info!(job = %job.name, connection = %job.connection, "the connection is enabled again: running the job");
        return true;
    }
    match store.lock_abandoned(&job.name, store.lock_stale()).await {
        Ok(true) => {
            tracing::info!(job = %job.name, "taking over the job: the run holding it stopped or its instance is gone");
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::debug!(job = %job.name, error = %crate::logging::chain(&e), "checking the job's run lock failed");
            false
        }
    }
}

/// A scheduled job and what its runs use.
struct Job {
    job: SyncJob,
    connection: Arc<Connection>,
    store: Store,
    paths: Paths,
    /// Where runs that start or end the job's failures are announced.
    events: Arc<Events>,
}

async fn schedule(job: Job, notify: Arc<Notify>, shutdown: CancellationToken) {
    let Job {
        job,
        connection,
        store,
        paths,
        events,
    } = job;
    tracing::info!(job = %job.name, every = ?job.interval, "sync job scheduled");
    let mut next = Instant::now();
    let mut watch = tokio::time::interval(WATCH);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A run was due (or cut short) while the connection was disabled: it runs as soon as the
    // connection is enabled again (its record saved), not at the next due time.
    let mut missed = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = sleep_until(next) => {}
            _ = watch.tick() => {
                if !run_before_due(&job, &connection, &store, missed).await {
                    continue;
                }
            }
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
        if shutdown.is_cancelled() {
            return;
        }
        next = Instant::now() + job.interval;
        if connection.health.is_disabled() {
            tracing::info!(job = %job.name, connection = %job.connection, "sync paused: the connection is disabled");
            missed = true;
            continue;
        }
        let started = std::time::Instant::now();
        match run::run(
            &job,
            &connection,
            &store,
            &paths,
            Options {
                hand_over: true,
                ..Options::default()
            },
            &Quiet,
            &shutdown,
        )
        .await
        {
            Ok(report) => {
                super::notice::announce(&job, &store, &report, &events).await;
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
            Err(e) => {
                tracing::warn!(job = %job.name, error = %crate::logging::chain(&e), "sync run failed")
            }
        }
        // Disabled during the run (which then stopped): run again once enabled.
        missed = connection.health.is_disabled();
    }
}
