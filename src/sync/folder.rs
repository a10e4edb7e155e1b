//! Is a job's local folder the folder the job was synced with? Instances sharing a store
//! share each job's baseline, so the job's local folder must be the one folder they all see
//! (shared storage): a folder that is another one on some host would look, against the shared
//! baseline, like files deleted there. The first run writes a marker file into the folder
//! (`.spgate.folder`: the store's cluster id and a random folder id) and records the folder id
//! in the store; every later run, on whichever instance, checks the marker before it touches
//! anything, and refuses (an aborted run, with the job's alert) where it differs or is missing.
//! The check runs under the job's run lock, so two instances never both make the first marker.

use std::path::{Path, PathBuf};

use super::store::Store;
use super::{Error, Result, TEMP_PREFIX};
use crate::config::SyncJob;

/// The marker's file name; spgate's temp prefix keeps it out of every scan, and local mounts
/// hide it from clients.
pub const MARKER: &str = crate::storage::local::FOLDER_MARKER;

/// What a marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    cluster: String,
    folder: String,
}

impl Marker {
    fn parse(text: &str) -> Option<Marker> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Some(Marker {
            cluster: field("cluster")?,
            folder: field("folder")?,
        })
    }

    fn text(&self) -> String {
        format!(
            "spgate sync folder: keep this file; spgate checks it before every run.\n\
             cluster {}\nfolder {}\n",
            self.cluster, self.folder
        )
    }
}

fn marker_path(root: &Path) -> PathBuf {
    root.join(MARKER)
}

/// Reads the marker of `root`, if any. A marker that cannot be read is an error: the folder is
/// then not known to be the right one.
fn read(root: &Path) -> Result<Option<Marker>> {
    let path = marker_path(root);
    match std::fs::read_to_string(&path) {
        Ok(text) => Marker::parse(&text).map(Some).ok_or_else(|| {
            Error::Aborted(format!(
                "{} is not an spgate folder marker; move it away, then run the job again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Aborted(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes `marker` into `root` (a temp file renamed into place, so a reader never sees half).
fn write(root: &Path, marker: &Marker) -> std::io::Result<()> {
    // A temp name the leftover sweep removes, should a crash leave it.
    let temp = root.join(format!(
        "{TEMP_PREFIX}folder.{:016x}.partial",
        rand::random::<u64>()
    ));
    let written = std::fs::write(&temp, marker.text())
        .and_then(|()| std::fs::rename(&temp, marker_path(root)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Checks (and on a first run, marks) the job's local folder; `adopt` (a resync, its baseline
/// cleared already) makes the folder found the job's folder. A folder that does not exist yet
/// is left to the run (a first run creates it; the next run marks it). A folder spgate may not
/// write to (a read-only push source) cannot be marked: it is used unchecked, with a warning.
/// A job whose folder was never marked (made by an earlier version) gets its marker at its
/// next run, on whichever instance runs it.
pub async fn check(job: &SyncJob, store: &Store, adopt: bool) -> Result<()> {
    let root = job.local.clone();
    if !root.is_dir() {
        return Ok(());
    }
    let cluster = store.cluster_id().await?;
    let recorded = store.folder_id(&job.name).await?;
    let found = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || read(&root))
            .await
            .map_err(|e| Error::Aborted(format!("reading the folder marker: {e}")))??
    };
    let refuse = |why: String| {
        Err(Error::Aborted(format!(
            "the local folder {} {why}; run `spgate syncs run {} --resync` where the folder is the right one to make it the job's folder",
            root.display(),
            job.name
        )))
    };
    let folder = match (&recorded, &found) {
        (_, Some(m)) if m.cluster != cluster => {
            return refuse(format!(
                "belongs to another spgate cluster (its marker names cluster {}, this one is {cluster})",
                m.cluster
            ));
        }
        (Some(id), Some(m)) if *id == m.folder => return Ok(()),
        (Some(_), _) if !adopt => {
            return refuse(
                "is not the folder this job was synced with: its marker is missing or names another folder (is it this host's own folder instead of the storage every instance shares?)"
                    .into(),
            );
        }
        // The store forgot the folder (or never knew it): the marker's folder is the job's.
        (_, Some(m)) => m.folder.clone(),
        (_, None) => format!("{:032x}", rand::random::<u128>()),
    };
    // The marker first: a folder id is recorded only once the folder carries it.
    if found.as_ref().map(|m| &m.folder) != Some(&folder) {
        let marker = Marker {
            cluster,
            folder: folder.clone(),
        };
        let at = root.clone();
        let written = tokio::task::spawn_blocking(move || write(&at, &marker))
            .await
            .map_err(|e| Error::Aborted(format!("writing the folder marker: {e}")))?;
        if let Err(e) = written {
            tracing::warn!(job = %job.name, folder = %root.display(), error = %crate::logging::chain(&e),
                "cannot write the folder marker: whether every instance sees this same folder is not checked");
            return Ok(());
        }
    }
    store.set_folder_id(&job.name, &folder).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back() {
        let m = Marker {
            cluster: "c1".into(),
            folder: "f1".into(),
        };
        assert_eq!(Marker::parse(&m.text()), Some(m));
        assert_eq!(Marker::parse("cluster c1\n"), None);
        assert_eq!(Marker::parse("hello"), None);
    }
}
