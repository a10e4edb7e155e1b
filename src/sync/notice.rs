//! What the scheduler announces about a job's runs ([`Notice`]s on the event bus): a run that
//! was aborted or partly failed when the run before it had not ended that way, and the first
//! successful run after such runs. A job failing the same way run after run is announced once,
//! and again when it recovers; interrupted runs (a shutdown, a disabled connection) count for
//! nothing. The job's run lock means one instance runs (and announces) each run.

use super::Outcome;
use super::run::Report;
use super::store::Store;
use crate::config::SyncJob;
use crate::events::{Events, Kind, Notice};

/// Runs of the history looked at to find the last one that was not interrupted.
const LOOK_BACK: usize = 20;

/// Announces the run `report` tells of on `events`, if it changes the job's standing.
pub async fn announce(job: &SyncJob, store: &Store, report: &Report, events: &Events) {
    if report.outcome == Outcome::Interrupted {
        return;
    }
    let previous = match store.runs(&job.name, LOOK_BACK).await {
        // The newest run is the one just finished.
        Ok(runs) => runs
            .iter()
            .skip(1)
            .filter_map(|r| r.outcome)
            .find(|o| *o != Outcome::Interrupted),
        Err(e) => {
            tracing::warn!(job = %job.name, error = %e, "cannot read the job's run history; its run is not announced");
            return;
        }
    };
    if let Some(notice) = notice(job, report, previous) {
        events.notice(notice);
    }
}

/// What to announce after a run that ended as `report` says, the last run before it that was
/// not interrupted having ended `previous`ly (`None`: there was none).
fn notice(job: &SyncJob, report: &Report, previous: Option<Outcome>) -> Option<Notice> {
    let failed_before = matches!(previous, Some(Outcome::Aborted | Outcome::Partial));
    let message = report.message.as_deref().unwrap_or_default();
    let (kind, message, action) = match report.outcome {
        Outcome::Interrupted => return None,
        _ if previous == Some(report.outcome) => return None,
        Outcome::Success if !failed_before => return None,
        Outcome::Success => {
            let c = &report.counts;
            (
                Kind::SyncRecovered,
                format!(
                    "sync job {} ran successfully again ({} uploaded, {} downloaded, {} deleted)",
                    job.name,
                    c.uploaded,
                    c.downloaded,
                    c.deleted_local + c.deleted_remote
                ),
                "none".to_string(),
            )
        }
        Outcome::Aborted => (
            Kind::SyncAborted,
            format!("sync job {} was aborted: {message}", job.name),
            format!(
                "check the job's folders (`spgate sync status {}`), then run `spgate sync run {}` \
                 (with --force if the deletions are intended)",
                job.name, job.name
            ),
        ),
        Outcome::Partial => (
            Kind::SyncPartial,
            format!("sync job {} finished partly: {message}", job.name),
            format!(
                "the failed actions are retried at the next run; if they keep failing, see \
                 `spgate sync status {}` and the log",
                job.name
            ),
        ),
    };
    Some(Notice::new(kind, &job.name, message, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Counts;

    fn report(outcome: Outcome) -> Report {
        Report {
            counts: Counts::default(),
            outcome,
            message: Some("2 action(s) failed, e.g. a.txt: refused".into()),
            actions: Vec::new(),
            problems: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn kind(outcome: Outcome, previous: Option<Outcome>) -> Option<Kind> {
        let job = crate::config::parse_str(
            "[state]\ndir = \"/tmp/x\"\n[[connections]]\nname = \"sp\"\ntenant = \"t\"\n\
             client_id = \"c\"\nclient_secret = \"s\"\nsite = \"https://h/sites/s\"\n\
             [[syncs]]\nname = \"inv\"\nlocal = \"/tmp/inv\"\nconnection = \"sp\"\n\
             remote = \"/Inv\"\ndirection = \"push\"\n",
        )
        .unwrap()
        .syncs
        .remove(0);
        notice(&job, &report(outcome), previous).map(|n| n.kind)
    }

    #[test]
    fn failures_are_announced_when_they_start_and_when_they_end() {
        use Outcome::*;
        assert_eq!(kind(Aborted, None), Some(Kind::SyncAborted));
        assert_eq!(kind(Aborted, Some(Success)), Some(Kind::SyncAborted));
        assert_eq!(kind(Aborted, Some(Aborted)), None);
        assert_eq!(kind(Partial, Some(Aborted)), Some(Kind::SyncPartial));
        assert_eq!(kind(Partial, Some(Partial)), None);
        assert_eq!(kind(Success, Some(Partial)), Some(Kind::SyncRecovered));
        assert_eq!(kind(Success, Some(Aborted)), Some(Kind::SyncRecovered));
        assert_eq!(kind(Success, Some(Success)), None);
        assert_eq!(kind(Success, None), None);
        assert_eq!(kind(Interrupted, Some(Aborted)), None);
    }
}
