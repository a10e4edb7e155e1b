//! The operator's sync commands: `spgate sync run JOB` (foreground, with a progress bar on a
//! terminal and plain log lines otherwise) and `spgate sync status`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::apply::Effect;
use super::plan::Action;
use super::run::{self, Options, Progress, Report};
use super::store::Store;
use super::{Error, Outcome};
use crate::config::Config;
use crate::connections::Connection;
use crate::connections::store::Paths;

/// A progress bar of bytes, with the file count in its message.
struct Bar {
    bar: ProgressBar,
    files: AtomicU64,
    done: AtomicU64,
}

impl Progress for Bar {
    fn planned(&self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
        self.files.store(files, Ordering::Relaxed);
    }

    fn done(&self, action: &Action, effect: &Effect, error: Option<&Error>) {
        self.bar.inc(effect.bytes_up + effect.bytes_down);
        if matches!(
            action,
            Action::Upload { .. } | Action::Download { .. } | Action::Conflict { .. }
        ) {
            let total = self.files.load(Ordering::Relaxed);
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{done}/{total} files"));
        }
        if let Some(e) = error {
            self.bar.println(format!("failed  {}: {e}", action.path()));
        }
    }
}

/// Plain lines, one per action, for logs and pipes.
struct Lines;

impl Progress for Lines {
    fn planned(&self, files: u64, bytes: u64) {
        println!("plan: {files} transfer(s), {bytes} bytes");
    }

    fn done(&self, action: &Action, effect: &Effect, error: Option<&Error>) {
        match error {
            Some(e) => println!("failed  {}: {e}", action.path()),
            None => println!(
                "{:<9}{}{}",
                verb(action),
                action.path(),
                match effect.bytes_up + effect.bytes_down {
                    0 => String::new(),
                    n => format!(" ({n} bytes)"),
                }
            ),
        }
    }
}

pub fn verb(action: &Action) -> &'static str {
    match action {
        Action::Upload { .. } => "upload",
        Action::Download { .. } => "download",
        Action::DeleteRemote { .. } => "delete-r",
        Action::DeleteLocal { .. } => "delete-l",
        Action::Record { .. } => "same",
        Action::Forget { .. } => "forget",
        Action::Conflict { .. } => "conflict",
        Action::MkdirRemote { .. } => "mkdir-r",
        Action::MkdirLocal { .. } => "mkdir-l",
        Action::RemoveDirRemote { .. } => "rmdir-r",
        Action::RemoveDirLocal { .. } => "rmdir-l",
    }
}

/// Why a disabled job does not run on request.
pub fn disabled(name: &str) -> String {
    format!(
        "sync job {name} is disabled: enable it first (`spgate syncs enable {name}`, the API, or \
         `enabled = true` in the configuration file that declares it)"
    )
}

/// `spgate sync run JOB`: runs the job once in the foreground; true when it succeeded.
pub async fn run_job(
    config: &Config,
    name: &str,
    options: Options,
    stop: &CancellationToken,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let Some(job) = config.syncs.iter().find(|j| j.name == name) else {
        let names: Vec<&str> = config.syncs.iter().map(|j| j.name.as_str()).collect();
        writeln!(
            out,
            "no sync job named '{name}' (jobs: {})",
            names.join(", ")
        )?;
        return Ok(false);
    };
    if !job.enabled {
        writeln!(out, "{}", disabled(name))?;
        return Ok(false);
    }
    let Some(connection_config) = config.connection(&job.connection) else {
        writeln!(out, "job '{name}' names an unknown connection")?;
        return Ok(false);
    };
    let paths = Paths::of(config);
    let connection = Connection::open(connection_config, &paths).await?;
    let store = Store::open(&paths).await.map_err(std::io::Error::other)?;
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal() && !options.dry_run;
    let mut bar = None;
    let progress: &dyn Progress = if terminal {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        bar.insert(Bar {
            bar: b,
            files: AtomicU64::new(0),
            done: AtomicU64::new(0),
        })
    } else if options.dry_run {
        &run::Quiet
    } else {
        &Lines
    };
    let result = run::run(job, &connection, &store, &paths, options, progress, stop).await;
    if let Some(bar) = &bar {
        bar.bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            writeln!(out, "sync {name}: {e}")?;
            return Ok(false);
        }
    };
    if options.dry_run {
        print_plan(&report, out)?;
    }
    summary(name, &report, started.elapsed(), options.dry_run, out)?;
    Ok(matches!(report.outcome, Outcome::Success))
}

fn print_plan(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    for action in &report.actions {
        writeln!(out, "would {:<9}{}", verb(action), action.path())?;
    }
    if report.actions.is_empty() {
        writeln!(out, "nothing to do")?;
    }
    Ok(())
}

fn summary(
    name: &str,
    report: &Report,
    elapsed: Duration,
    dry: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for problem in &report.problems {
        writeln!(
            out,
            "skipped {} ({}): {}",
            shown(&problem.path),
            problem.side,
            problem.reason
        )?;
    }
    for error in &report.errors {
        writeln!(out, "error   {error}")?;
    }
    let c = &report.counts;
    let outcome = if dry {
        "dry run"
    } else {
        report.outcome.as_str()
    };
    writeln!(
        out,
        "sync {name}: {outcome} in {:.1}s: {} uploaded, {} downloaded, {} deleted on SharePoint, \
         {} deleted locally, {} conflict(s), {} skipped, {} error(s); {} bytes up, {} bytes down",
        elapsed.as_secs_f64(),
        c.uploaded,
        c.downloaded,
        c.deleted_remote,
        c.deleted_local,
        c.conflicts,
        c.skipped,
        c.errors,
        c.bytes_up,
        c.bytes_down
    )?;
    if let Some(message) = &report.message {
        writeln!(out, "{message}")?;
    }
    Ok(())
}

fn time(at: i64) -> String {
    DateTime::<Utc>::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

/// `spgate sync status`: each job's last run, next run and open problems.
pub async fn status(config: &Config, out: &mut impl Write) -> std::io::Result<()> {
    if config.syncs.is_empty() {
        writeln!(out, "no sync jobs configured")?;
        return Ok(());
    }
    let store = Store::open(&Paths::of(config))
        .await
        .map_err(std::io::Error::other)?;
    for job in &config.syncs {
        let runs = store
            .runs(&job.name, 1)
            .await
            .map_err(std::io::Error::other)?;
        let state = if job.enabled { "enabled" } else { "disabled" };
        writeln!(
            out,
            "{}: {:?} {} <-> {}:{} every {}s ({state})",
            job.name,
            job.direction,
            job.local.display(),
            job.connection,
            job.remote,
            job.interval.as_secs()
        )?;
        match runs.first() {
            None => writeln!(out, "  last run: never")?,
            Some(r) => {
                let c = &r.counts;
                writeln!(
                    out,
                    "  last run: {} {}: {} up, {} down, {} deleted, {} conflict(s), {} error(s){}",
                    time(r.started),
                    r.outcome.map(Outcome::as_str).unwrap_or("running"),
                    c.uploaded,
                    c.downloaded,
                    c.deleted_local + c.deleted_remote,
                    c.conflicts,
                    c.errors,
                    r.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )?;
                if job.enabled {
                    let next = r.ended.unwrap_or(r.started) + job.interval.as_secs() as i64;
                    writeln!(out, "  next run: {} (when `spgate serve` runs)", time(next))?;
                }
            }
        }
        if let Some(ok) = store
            .last_success(&job.name)
            .await
            .map_err(std::io::Error::other)?
        {
            writeln!(out, "  last success: {}", time(ok))?;
        }
        for (problem, first, _) in store
            .problems(&job.name)
            .await
            .map_err(std::io::Error::other)?
        {
            writeln!(
                out,
                "  problem since {}: {} ({}): {}",
                time(first),
                shown(&problem.path),
                problem.side,
                problem.reason
            )?;
        }
    }
    Ok(())
}

/// A path as printed: quoted and escaped when it holds control characters (a hostile name must
/// not drive the terminal).
fn shown(path: &str) -> std::borrow::Cow<'_, str> {
    if crate::storage::unprintable(path) {
        format!("{path:?}").into()
    } else {
        path.into()
    }
}
