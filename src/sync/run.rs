//! One run of a sync job: lock, scan both sides, plan, check the guards, apply, record.
//!
//! Guards, in the order they are checked (SYNC.md "First run", "Safety"): one run per job
//! (lock with owner and heartbeat); a missing or unreadable root, or a root that lists as empty
//! while the state says it held files, aborts; the max-delete guard (percent and count, per
//! side) is checked after the whole plan is known and before anything changes. Every abort
//! raises an alert. A dry run works on an in-memory copy of the state, so it writes nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use unicode_normalization::UnicodeNormalization;

use super::apply::{Context, Effect};
use super::local::{self, Filter, ScanError};
use super::plan::{self, Action, Policy, Sides};
use super::remote::{self, Refresh};
use super::store::Store;
use super::{Counts, Error, Outcome, Problem, Result, key};
use crate::config::{AfterCopy, SyncJob};
use crate::connections::Connection;
use crate::connections::health;
use crate::connections::store::Paths;

/// How often a run refreshes its lock's heartbeat (see [`Store::lock_stale`]).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Transfers in flight at once per job.
pub const PARALLEL: usize = 4;

/// How a run was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Plan only: change nothing, write nothing to the state store.
    pub dry_run: bool,
    /// Override the max-delete and empty-root guards for this run.
    pub force: bool,
    /// Forget the baseline and rebuild it copy-only (never deletes).
    pub resync: bool,
    /// An interrupted run hands the job over at once (the scheduler, at a shutdown: another
    /// instance goes on with it); otherwise the job waits for its next due time.
    pub hand_over: bool,
}

/// What a run did (or, dry, would do).
#[derive(Debug)]
pub struct Report {
    pub counts: Counts,
    pub outcome: Outcome,
    pub message: Option<String>,
    pub actions: Vec<Action>,
    pub problems: Vec<Problem>,
    pub errors: Vec<String>,
}

/// Receives progress while a run applies its plan.
pub trait Progress: Send + Sync {
    /// The plan is known: `files` transfers of `bytes` in all.
    fn planned(&self, files: u64, bytes: u64);
    /// One action ended.
    fn done(&self, action: &Action, effect: &Effect, error: Option<&Error>);
}

/// Progress that goes nowhere (the scheduler logs through `tracing` instead).
pub struct Quiet;

impl Progress for Quiet {
    fn planned(&self, _: u64, _: u64) {}
    fn done(&self, _: &Action, _: &Effect, _: Option<&Error>) {}
}

/// The alert source name of a job in the alert log.
pub fn alert_source(job: &str) -> String {
    format!("sync:{job}")
}

fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Runs `job` once. `stop` lets the files in flight finish, then ends the run as interrupted.
pub async fn run(
    job: &SyncJob,
    connection: &Connection,
    store: &Store,
    paths: &Paths,
    options: Options,
    progress: &dyn Progress,
    stop: &CancellationToken,
) -> Result<Report> {
    let store = if options.dry_run {
        store.copy_of(&job.name).await?
    } else {
        store.clone()
    };
    // Unique to this run: instances sharing a store may run as the same pid on hosts of the
    // same name. The instance (its state directory's id) shows which one holds the job.
    let instance = crate::state::dir_id(&paths.state_dir)
        .map_err(|e| abort(format!("reading the state directory's id: {e}")))?;
    let owner = format!(
        "{}pid {} on {} run {:016x}",
        crate::state::instances::lock_owner_prefix(&instance),
        std::process::id(),
        host(),
        rand::random::<u64>()
    );
    if let Some(holder) = store
        .try_lock(&job.name, &owner, store.lock_stale())
        .await?
    {
        return Err(Error::Busy(holder.owner));
    }
    let result = run_locked(
        job, connection, &store, paths, options, progress, stop, &owner,
    )
    .await;
    // An interrupted run (a shutdown) hands the job over: another instance goes on with it
    // at once, from the stored state.
    let interrupted = matches!(&result, Ok(r) if r.outcome == Outcome::Interrupted);
    let unlocked = match interrupted && options.hand_over && !options.dry_run {
        true => store.hand_over(&job.name, &owner).await,
        false => store.unlock(&job.name, &owner).await,
    };
    let report = result?;
    unlocked?;
    Ok(report)
}

/// Aborts the lock's heartbeat when the run ends, however it ends.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`run`], with the job's lock held by `owner`. A run whose lock is taken over (its heartbeat
/// was late, another instance took the job) stops between files.
#[allow(clippy::too_many_arguments)]
async fn run_locked(
    job: &SyncJob,
    connection: &Connection,
    store: &Store,
    paths: &Paths,
    options: Options,
    progress: &dyn Progress,
    stop: &CancellationToken,
    owner: &str,
) -> Result<Report> {
    let stop = stop.child_token();
    let _beat = {
        let (store, name, owner, lost) = (
            store.clone(),
            job.name.clone(),
            owner.to_string(),
            stop.clone(),
        );
        // A run that cannot renew its lock for half the stale time stops (between files)
        // before another instance may take the job over.
        let limit = store.lock_stale() / 2;
        Heartbeat(tokio::spawn(async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match tokio::time::timeout(limit, store.heartbeat(&name, &owner)).await {
                    Ok(Ok(true)) => renewed = tokio::time::Instant::now(),
                    Ok(Ok(false)) => {
                        tracing::error!(job = %name, "sync run stopped: its lock was taken over");
                        lost.cancel();
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(job = %name, error = %crate::logging::chain(&e), "sync lock heartbeat failed")
                    }
                    Err(_) => tracing::warn!(job = %name, "sync lock heartbeat timed out"),
                }
                if renewed.elapsed() >= limit {
                    tracing::error!(job = %name, "sync run stopped: its lock could not be renewed");
                    lost.cancel();
                    return;
                }
            }
        }))
    };
    let run_id = if options.dry_run {
        None
    } else {
        Some(store.start_run(&job.name).await?)
    };
    if !options.dry_run {
        let root = job.local.clone();
        let _ = tokio::task::spawn_blocking(move || crate::storage::local::sweep_leftovers(&root))
            .await;
    }
    let result = execute(job, connection, store, options, progress, &stop).await;
    finish(job, store, paths, run_id, result).await
}

/// Records how run `run_id` (none: a dry run) ended, with the job's alert.
async fn finish(
    job: &SyncJob,
    store: &Store,
    paths: &Paths,
    run_id: Option<i64>,
    result: Result<Report>,
) -> Result<Report> {
    // A run stopped by its connection being disabled raises no alert of its own: the
    // connection's alert says it all, and saving the connection starts the job again.
    let connection_disabled = matches!(
        &result,
        Err(Error::Graph(e)) if e.kind == crate::graph::Kind::Disabled
    );
    let report = match result {
        Ok(report) => report,
        Err(e) => Report {
            counts: Counts::default(),
            // Stopped, not refused by a safety rule: the job goes on once the connection is
            // enabled again.
            outcome: if connection_disabled {
                Outcome::Interrupted
            } else {
                Outcome::Aborted
            },
            message: Some(e.to_string()),
            actions: Vec::new(),
            problems: Vec::new(),
            errors: vec![e.to_string()],
        },
    };
    if let Some(id) = run_id {
        store
            .finish_run(
                &job.name,
                id,
                &report.counts,
                report.outcome,
                report.message.as_deref(),
            )
            .await?;
        if !connection_disabled {
            alert(job, paths, &report).await;
        }
    }
    Ok(report)
}

/// Raises or clears the job's alert after a real run.
async fn alert(job: &SyncJob, paths: &Paths, report: &Report) {
    let source = alert_source(&job.name);
    let store = match paths.store().await {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(job = %job.name, error = %crate::logging::chain(&e), "cannot reach the state store for the job's alert");
            return;
        }
    };
    let store = &*store;
    let result = match (report.outcome, report.problems.first()) {
        (Outcome::Aborted, _) => {
            health::raise(
                store,
                &source,
                "sync_aborted",
                report.message.as_deref().unwrap_or("the run was aborted"),
                "check the job's folders, then run `spgate sync run` (with --force if the deletions are intended)",
            )
            .await
        }
        (_, Some(first)) => {
            let message = format!(
                "{} path(s) cannot be synced, e.g. {}: {}",
                report.problems.len(),
                first.path,
                first.reason
            );
            health::raise(
                store,
                &source,
                "sync_skipped",
                &message,
                "rename or remove the paths listed by `spgate sync status`",
            )
            .await
        }
        (Outcome::Success, None) => {
            health::clear(store, &source, "the last run succeeded").await
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(job = %job.name, error = %crate::logging::chain(&e), "cannot save the job's alert");
    }
}

fn abort(message: String) -> Error {
    Error::Aborted(message)
}

async fn execute(
    job: &SyncJob,
    connection: &Connection,
    store: &Store,
    options: Options,
    progress: &dyn Progress,
    stop: &CancellationToken,
) -> Result<Report> {
    let filter = Filter::new(&job.exclude)
        .map_err(|e| abort(format!("an exclude pattern is invalid: {e}")))?;
    let drive = connection.drive().await?;
    if options.resync {
        store.clear_baseline(&job.name).await?;
    }
    if !options.dry_run {
        // Shared state needs the shared folder: a run on another folder stops here, before
        // it looks at either side.
        super::folder::check(job, store, options.resync).await?;
    }
    let mut baseline = store.baseline(&job.name).await?;
    baseline.retain(|b| !filter.excludes(&b.path, b.is_dir));
    let baseline_files = baseline.iter().filter(|b| !b.is_dir).count();
    let first_run = baseline.is_empty();

    // The local side.
    let scan = {
        // Exact (NFC) paths, not keys: of names differing only in case, the variant in the
        // state keeps its place.
        let known: HashSet<String> = baseline.iter().map(|b| b.path.nfc().collect()).collect();
        let (root, filter, drive, remote_root) = (
            job.local.clone(),
            filter.clone(),
            drive.clone(),
            job.remote.clone(),
        );
        let names = job.names;
        let scanned = tokio::task::spawn_blocking(move || {
            // The path as it would be stored: with names = "encode", only a path too long
            // for SharePoint is a problem.
            let check = |path: &str, is_dir: bool| {
                drive
                    .check_new_path(&super::remote_path(&remote_root, names, path), is_dir)
                    .map_err(|e| e.to_string())
            };
            let known = |path: &str| known.contains(path);
            match local::scan(&root, &filter, &known, &check) {
                // A dry run creates nothing: a first run's missing folder plans as empty.
                Err(ScanError::RootMissing(_)) if first_run && options.dry_run => {
                    Ok(local::Scan::default())
                }
                Err(ScanError::RootMissing(_)) if first_run => {
                    std::fs::create_dir_all(&root)
                        .map_err(|e| ScanError::RootUnreadable(root.clone(), e))?;
                    local::scan(&root, &filter, &known, &check)
                }
                other => other,
            }
        })
        .await
        .map_err(|e| abort(format!("the local scan failed: {e}")))?;
        scanned.map_err(|e| abort(e.to_string()))?
    };
    let local_files = scan.entries.iter().filter(|e| !e.is_dir).count();
    if local_files == 0 && baseline_files > 0 && !options.force && job.after_copy == AfterCopy::Keep
    {
        return Err(abort(format!(
            "the local folder {} is empty, but {baseline_files} file(s) were synced from it; \
             a vanished or unmounted folder must not look like deletions",
            job.local.display()
        )));
    }

    // The remote side.
    let create = first_run && !options.dry_run;
    let view =
        match remote::refresh(&drive, store, &job.name, &job.remote, create, job.names).await? {
            Refresh::Ready(view) => view,
            Refresh::RootMissing if first_run && options.dry_run => remote::View {
                root_id: String::new(),
                entries: Vec::new(),
                full_scan: true,
                problems: Vec::new(),
            },
            Refresh::RootMissing => {
                return Err(abort(format!(
                    "the SharePoint folder {} is missing (deleted, moved or renamed)",
                    job.remote
                )));
            }
        };
    let mut remote_entries = view.entries;
    remote_entries.retain(|e| !filter.excludes(&e.path, e.item.is_dir));
    let mut problems = scan.problems.clone();
    problems.extend(
        view.problems
            .into_iter()
            .filter(|p| !filter.excludes(&p.path, false)),
    );
    let remote_files = remote_entries.iter().filter(|e| !e.item.is_dir).count();
    if remote_files == 0
        && baseline_files > 0
        && !options.force
        && job.after_copy == AfterCopy::Keep
    {
        return Err(abort(format!(
            "the SharePoint folder {} is empty, but {baseline_files} file(s) were synced to it",
            job.remote
        )));
    }

    // The plan.
    let mut unknown = scan.incomplete.clone();
    unknown.extend(problems.iter().map(|p| p.path.clone()));
    let no_hashes = HashMap::new();
    let needed = plan::hashes_needed(&Sides {
        local: &scan.entries,
        remote: &remote_entries,
        baseline: &baseline,
        unknown: &unknown,
        hashes: &no_hashes,
    });
    let hashes = hash_all(job, needed).await?;
    let sides = Sides {
        local: &scan.entries,
        remote: &remote_entries,
        baseline: &baseline,
        unknown: &unknown,
        hashes: &hashes,
    };
    let policy = Policy {
        direction: job.direction,
        after_copy: job.after_copy,
        conflict: job.conflict,
        copy_only: first_run,
    };
    let plan = plan::plan(&policy, &sides);
    for problem in &problems {
        tracing::warn!(job = %job.name, side = problem.side, path = %problem.path, reason = %problem.reason, "skipped");
    }
    store.set_problems(&job.name, &problems).await?;
    guard(job, &plan, options)?;
    let mut report = Report {
        counts: Counts {
            skipped: problems.len() as u64,
            ..Counts::default()
        },
        outcome: Outcome::Success,
        message: None,
        actions: plan.actions.clone(),
        problems,
        errors: Vec::new(),
    };
    if options.dry_run {
        return Ok(report);
    }

    // Apply: folders first, then files in parallel, then folder removals.
    let context = Context {
        job,
        drive: &drive,
        store,
        root_id: view.root_id.clone(),
        local: scan
            .entries
            .iter()
            .map(|e| (key(&e.path), e.clone()))
            .collect(),
        hashes,
        baseline: baseline.iter().map(|b| (key(&b.path), b.clone())).collect(),
        remote: remote_entries
            .iter()
            .map(|e| (key(&e.path), e.clone()))
            .collect(),
        remote_dirs: tokio::sync::Mutex::new(
            remote_entries
                .iter()
                .filter(|e| e.item.is_dir)
                .map(|e| key(&e.path))
                .collect(),
        ),
        host: host(),
        root: open_root(job)?,
    };
    let (transfers, bytes) = plan.actions.iter().fold((0, 0), |(n, b), a| match a {
        Action::Upload { path, .. } => (
            n + 1,
            b + context.local.get(&key(path)).map_or(0, |l| l.size),
        ),
        Action::Download { remote, .. } | Action::Conflict { remote, .. } => {
            (n + 1, b + remote.item.size)
        }
        _ => (n, b),
    });
    progress.planned(transfers, bytes);
    let is_folder_step =
        |a: &Action| matches!(a, Action::MkdirLocal { .. } | Action::MkdirRemote { .. });
    let is_removal = |a: &Action| {
        matches!(
            a,
            Action::RemoveDirLocal { .. } | Action::RemoveDirRemote { .. }
        )
    };
    let mut changed_remote = false;
    let mut emptied: HashSet<String> = HashSet::new();
    let mut tally = |report: &mut Report, action: &Action, outcome: Result<Effect>| {
        match &outcome {
            Ok(effect) => {
                report.counts.add(effect);
                progress.done(action, effect, None);
                if let Some(parent) = source_deleted(job, action) {
                    emptied.insert(parent);
                }
            }
            Err(e) => {
                report.counts.errors += 1;
                tracing::warn!(job = %job.name, path = action.path(), error = %crate::logging::chain(&e), "sync action failed");
                report.errors.push(format!("{}: {e}", action.path()));
                progress.done(action, &Effect::default(), Some(e));
            }
        }
        changed_remote |= touches_remote(action);
    };
    for action in plan.actions.iter().filter(|a| is_folder_step(a)) {
        if stop.is_cancelled() {
            break;
        }
        let outcome = context.apply(action).await;
        tally(&mut report, action, outcome);
    }
    let files: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| !is_folder_step(a) && !is_removal(a))
        .collect();
    let mut pending = files.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        while running.len() < PARALLEL && !stop.is_cancelled() {
            match pending.next() {
                Some(action) => running.push(apply_one(&context, action)),
                None => break,
            }
        }
        match running.next().await {
            Some((action, outcome)) => tally(&mut report, action, outcome),
            None => break,
        }
    }
    drop(running);
    if !stop.is_cancelled() {
        for action in plan.actions.iter().filter(|a| is_removal(a)) {
            let outcome = context.apply(action).await;
            tally(&mut report, action, outcome);
        }
        remove_emptied(&context, emptied).await;
    }
    if changed_remote {
        // Take in the changes this run made, so that the next run's delta starts after them.
        if let Err(e) =
            remote::refresh(&drive, store, &job.name, &job.remote, false, job.names).await
        {
            tracing::warn!(job = %job.name, error = %crate::logging::chain(&e), "could not read back this run's changes");
        }
    }
    report.outcome = if stop.is_cancelled() {
        Outcome::Interrupted
    } else if report.counts.errors > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    };
    if report.counts.errors > 0 {
        report.message = Some(format!(
            "{} action(s) failed, e.g. {}",
            report.counts.errors,
            report
                .errors
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        ));
    }
    Ok(report)
}

async fn apply_one<'a>(context: &Context<'_>, action: &'a Action) -> (&'a Action, Result<Effect>) {
    (action, context.apply(action).await)
}

/// The max-delete guard, per side.
fn guard(job: &SyncJob, plan: &plan::Plan, options: Options) -> Result<()> {
    if options.force {
        return Ok(());
    }
    let limit = job.max_delete;
    let base = plan.baseline_files;
    for (n, side) in [
        (plan.deletes_remote, "on SharePoint"),
        (plan.deletes_local, "locally"),
    ] {
        let over_percent = n * 100 > u64::from(limit.percent) * base;
        let over_count = limit.count.is_some_and(|c| n > c);
        if n > 0 && (over_percent || over_count) {
            return Err(abort(format!(
                "the run would delete {n} of {base} synced file(s) {side}, over the max_delete \
                 limit ({}%{}); nothing was changed. Run with --force to allow it once",
                limit.percent,
                limit
                    .count
                    .map(|c| format!(", {c} files"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The job's local folder as a capability (see [`local::Root`]).
fn open_root(job: &SyncJob) -> Result<local::Root> {
    local::Root::open(&job.local).map_err(|e| {
        abort(format!(
            "cannot open the local folder {}: {e}",
            job.local.display()
        ))
    })
}

async fn hash_all(job: &SyncJob, paths: Vec<String>) -> Result<HashMap<String, String>> {
    if paths.is_empty() {
        return Ok(HashMap::new());
    }
    let root = open_root(job)?;
    tokio::task::spawn_blocking(move || {
        let mut out = HashMap::new();
        for path in paths {
            match root.open_read_blocking(&path).and_then(local::hash_reader) {
                Ok((hash, _)) => {
                    out.insert(path, hash);
                }
                // Gone or unreadable since the scan: the plan treats it as changed.
                Err(e) => tracing::warn!(path, error = %crate::logging::chain(&e), "cannot hash"),
            }
        }
        out
    })
    .await
    .map_err(|e| abort(format!("hashing failed: {e}")))
}

fn touches_remote(action: &Action) -> bool {
    !matches!(
        action,
        Action::Download {
            delete_source: false,
            ..
        } | Action::DeleteLocal { .. }
            | Action::Forget { .. }
            | Action::MkdirLocal { .. }
            | Action::RemoveDirLocal { .. }
            | Action::Record {
                delete_source: false,
                ..
            }
    )
}

/// The parent folder of a source deleted after copy (for the emptied-folder clean-up).
fn source_deleted(job: &SyncJob, action: &Action) -> Option<String> {
    let deletes = match action {
        Action::Upload { delete_source, .. }
        | Action::Download { delete_source, .. }
        | Action::Record { delete_source, .. } => *delete_source,
        _ => false,
    };
    (deletes && job.after_copy == AfterCopy::Delete)
        .then(|| action.path().rsplit_once('/').map(|(p, _)| p.to_string()))
        .flatten()
}

/// Removes, deepest first, the source folders this run emptied (never the job root).
async fn remove_emptied(context: &Context<'_>, emptied: HashSet<String>) {
    let mut folders: HashSet<String> = HashSet::new();
    for dir in emptied {
        let mut at = dir.as_str();
        loop {
            folders.insert(at.to_string());
            match at.rsplit_once('/') {
                Some((parent, _)) => at = parent,
                None => break,
            }
        }
    }
    let mut folders: Vec<String> = folders.into_iter().collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.matches('/').count()));
    let pull = context.job.direction == crate::config::Direction::Pull;
    for folder in folders {
        if pull {
            let path = context.remote_path(&folder);
            let empty =
                matches!(context.drive.list_all(&path).await, Ok(children) if children.is_empty());
            if empty && let Some(remote) = context.remote.get(&key(&folder)) {
                let _ = context.drive.delete_item(&remote.item.id, None).await;
            }
        } else {
            // remove_dir refuses a folder that is not empty.
            let _ = context.root.remove_dir(&folder).await;
        }
    }
}
