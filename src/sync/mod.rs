//! Mirrored folders: the sync worker that keeps a local folder and a SharePoint folder in step
//! (`push`, `pull` or `two-way`), following `shared/SYNC.md` rule by rule.
//!
//! A run has three inputs, each compared only with the job's own last-synced state:
//! - [`local`]: a full scan of the local folder (size and mtime; quickXorHash on demand);
//! - [`remote`]: the job's remote snapshot, kept current from `root/delta` (the snapshot and its
//!   delta link change together in one transaction, so a crash never skips a change);
//! - [`store`]: the durable state (SQLite): the baseline row of every synced path, the remote
//!   snapshot, the delta link, the run history, open problems and the run lock.
//!
//! [`plan`] turns the three into actions (the decision table, pure and unit-tested);
//! [`run`] checks the safety guards and has [`apply`] carry the actions out with verification,
//! recording each path's row as soon as it is done. [`command`] is `spgate sync run|status`;
//! [`schedule`] runs the jobs inside `spgate serve`, and [`notice`] announces the runs that
//! start or end a job's failures.

pub mod apply;
pub mod command;
pub mod folder;
pub mod local;
pub mod notice;
pub mod plan;
pub mod remote;
pub mod run;
pub mod schedule;
pub mod store;

use unicode_normalization::UnicodeNormalization;

use crate::config::Names;
use crate::graph::lookalike;

/// The prefix of every temporary file spgate writes; such files are never synced.
pub const TEMP_PREFIX: &str = ".spgate.";

/// The comparison key of a job-relative path: NFC, then lower case. SharePoint (and Windows)
/// treat two names with the same key as the same name.
pub fn key(path: &str) -> String {
    path.nfc().collect::<String>().to_lowercase()
}

/// The SharePoint path of the job path `path` in the job's folder `remote`: with
/// `names = "encode"`, each step as SharePoint stores it ([`crate::graph::lookalike`]).
pub fn remote_path(remote: &str, names: Names, path: &str) -> String {
    let root = remote.trim_end_matches('/');
    match names {
        Names::Encode => {
            let library = lookalike::is_library_root(remote);
            format!("{root}/{}", lookalike::encode_path(path, library))
        }
        Names::Refuse => format!("{root}/{path}"),
    }
}

/// What the local scan found at one path. Paths are relative to the job root, segments joined
/// by `/`, no leading or trailing slash, NFC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    pub path: String,
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Modification time, whole seconds since the Unix epoch.
    pub modified: i64,
}

/// One item of the job's remote snapshot: its folder on SharePoint as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteItem {
    pub id: String,
    /// The parent's item id (the job's root folder for top-level items).
    pub parent_id: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub etag: Option<String>,
    pub ctag: Option<String>,
    pub hash: Option<String>,
    /// `fileSystemInfo.lastModifiedDateTime`, whole seconds since the Unix epoch.
    pub modified: i64,
}

/// A remote item placed at its job-relative path (built from the snapshot's parent links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub path: String,
    pub item: RemoteItem,
}

/// A synced path as both sides were when it was last synced: the baseline each side is
/// compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub path: String,
    pub is_dir: bool,
    pub remote_id: String,
    pub remote_etag: Option<String>,
    pub remote_ctag: Option<String>,
    pub remote_size: u64,
    pub remote_hash: Option<String>,
    pub remote_modified: i64,
    pub local_size: u64,
    pub local_modified: i64,
    pub local_hash: Option<String>,
}

/// What one run did, for the history and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub uploaded: u64,
    pub downloaded: u64,
    pub deleted_local: u64,
    pub deleted_remote: u64,
    pub conflicts: u64,
    pub skipped: u64,
    pub errors: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.uploaded += other.uploaded;
        self.downloaded += other.downloaded;
        self.deleted_local += other.deleted_local;
        self.deleted_remote += other.deleted_remote;
        self.conflicts += other.conflicts;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every planned action was done.
    Success,
    /// The run finished, but some actions failed (they are retried next run).
    Partial,
    /// A safety guard or a fatal error stopped the run before (or while) changing anything.
    Aborted,
    /// Shutdown interrupted the run between files.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Aborted => "aborted",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Success,
            Outcome::Partial,
            Outcome::Aborted,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// A path a run could not sync and skipped, repeated each run until fixed (case collisions,
/// names SharePoint refuses, paths over 400 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `local` or `remote`.
    pub side: &'static str,
    pub path: String,
    pub reason: String,
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SharePoint: {0}")]
    Graph(#[from] crate::graph::Error),
    #[error("sync state: {0}")]
    Store(#[from] store::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A safety rule stopped the run before it changed anything; an alert was raised.
    #[error("run aborted: {0}")]
    Aborted(String),
    /// Another run of the job holds the lock.
    #[error("the job is already running ({0})")]
    Busy(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
