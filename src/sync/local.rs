//! The local side of a sync run: the job's exclude [`Filter`], the full [`scan`] of the local
//! folder, [`hash_reader`], the [`temp_path`] downloads are written to, and the job's folder as a
//! capability ([`Root`]) through which the engine reaches every local file.
//!
//! Blocking code: the engine calls it on tokio's blocking pool. The scan never aborts on one bad
//! path: what it cannot sync it reports as a [`Problem`], and what it cannot read it reports as
//! [`Scan::incomplete`], which the engine treats as unknown, never as deleted (`SYNC.md`, "A
//! failed transfer is never a deletion" applies to reads as much as to transfers).

mod root;
#[cfg(test)]
mod tests;

pub use root::{Root, Stat};

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use unicode_normalization::UnicodeNormalization;
use walkdir::{DirEntry, WalkDir};

use super::{LocalEntry, Problem, TEMP_PREFIX, key};
use crate::wire::QuickXor;

/// Buffer size of [`hash_reader`].
const HASH_BUFFER: usize = 1 << 20;

/// Which paths a job leaves alone, built from its `exclude` patterns. Excluded paths are
/// invisible to the sync on both sides: never copied, never deleted, never reported.
///
/// - A pattern containing `/` is matched against the whole job-relative path: `archive/**`,
///   `reports/*.tmp`. A leading `/` changes nothing (`/Thumbs.db` matches only at the top).
/// - A pattern without `/` is matched against the last segment of a path, at any depth:
///   `*.tmp`, `Thumbs.db`.
/// - A pattern ending in `/` matches folders only: `cache/`, `build/out/`. That trailing `/`
///   does not count as a `/` for the two rules above.
/// - `*`, `?` and `[...]` never match `/`; `**` matches any number of whole segments, so
///   `archive/**` matches everything under `archive` but not the folder itself (write `/archive/`
///   to leave out the folder and its content); `{a,b}` matches either alternative.
/// - An excluded folder excludes everything under it.
/// - Matching ignores case and Unicode normalisation, as SharePoint does: two paths SharePoint
///   takes for the same name are both excluded or both not.
/// - Names starting with `.spgate.` (spgate's own temporary files) are always excluded.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Patterns with a `/`, matched against whole paths.
    paths: Patterns,
    /// Patterns without a `/`, matched against last segments.
    names: Patterns,
}

#[derive(Debug, Clone)]
struct Patterns {
    set: GlobSet,
    /// Per pattern of `set`: whether it matches folders only.
    folders_only: Vec<bool>,
}

impl Patterns {
    fn matches(&self, text: &str, is_dir: bool) -> bool {
        !self.folders_only.is_empty()
            && self
                .set
                .matches(text)
                .into_iter()
                .any(|i| is_dir || !self.folders_only[i])
    }
}

impl Filter {
    pub fn new(patterns: &[String]) -> Result<Filter, globset::Error> {
        let mut paths = (GlobSetBuilder::new(), Vec::new());
        let mut names = (GlobSetBuilder::new(), Vec::new());
        for pattern in patterns {
            // Compared by key, as SharePoint compares names.
            let pattern = key(pattern);
            let folders_only = pattern.ends_with('/');
            let pattern = pattern.trim_end_matches('/');
            let (target, pattern) = if pattern.contains('/') {
                (&mut paths, pattern.trim_start_matches('/'))
            } else {
                (&mut names, pattern)
            };
            let glob = GlobBuilder::new(pattern).literal_separator(true).build()?;
            target.0.add(glob);
            target.1.push(folders_only);
        }
        let build = |(set, folders_only): (GlobSetBuilder, Vec<bool>)| {
            Ok::<_, globset::Error>(Patterns {
                set: set.build()?,
                folders_only,
            })
        };
        Ok(Filter {
            paths: build(paths)?,
            names: build(names)?,
        })
    }

    /// Whether the job-relative `path` (no leading slash) is excluded, itself or through one of
    /// its folders.
    pub fn excludes(&self, path: &str, is_dir: bool) -> bool {
        let path = key(path);
        let mut start = 0;
        for (end, _) in path.match_indices('/') {
            if self.hides(&path[..end], &path[start..end], true) {
                return true;
            }
            start = end + 1;
        }
        self.hides(&path, &path[start..], is_dir)
    }

    /// Whether `path`, whose last segment is `name`, is excluded itself (its folders unchecked).
    /// Both are keys ([`key`]).
    fn hides(&self, path: &str, name: &str, is_dir: bool) -> bool {
        name.starts_with(TEMP_PREFIX)
            || self.names.matches(name, is_dir)
            || self.paths.matches(path, is_dir)
    }
}

/// What a scan of the local folder found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Files and folders to sync, sorted by path (byte order); the root is not one of them.
    pub entries: Vec<LocalEntry>,
    /// Paths skipped because they cannot be synced or read (side `local`), sorted by path.
    pub problems: Vec<Problem>,
    /// Paths that could not be read (folders whose listing failed, entries whose metadata
    /// failed), sorted. Each covers itself and everything under it: such paths are unknown this
    /// run and must never be taken for deleted. Use [`Scan::is_incomplete`].
    pub incomplete: Vec<String>,
}

impl Scan {
    /// Whether `path` is, or is under, a path the scan could not read.
    pub fn is_incomplete(&self, path: &str) -> bool {
        self.incomplete.iter().any(|unread| {
            path.strip_prefix(unread.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Why a scan could not start: the run must abort (a vanished mount must not look like "the
/// user deleted everything").
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the local folder {0} does not exist")]
    RootMissing(PathBuf),
    #[error("the local folder {0} cannot be read")]
    RootUnreadable(PathBuf, #[source] io::Error),
    #[error("{0} is not a folder")]
    RootNotDir(PathBuf),
}

/// Scans the job's local folder `root`, fully.
///
/// - Excluded paths (`filter`) are invisible, and excluded folders are not entered.
/// - Symbolic links (never followed), names that are not UTF-8, paths `check` refuses (the
///   SharePoint name and length rules; the reason is its error) are skipped with a problem;
///   a skipped folder is one problem for its whole subtree. Sockets, fifos and devices are
///   skipped silently.
/// - Names that differ only in case (or Unicode normalisation) within one folder: one variant
///   is kept, the one `known` (already in the sync state) or else the first in byte order; the
///   others are skipped with a problem, folders with their whole subtree (never merged).
/// - Paths are NFC; `modified` is the mtime in whole seconds (floor).
pub fn scan(
    root: &Path,
    filter: &Filter,
    known: &dyn Fn(&str) -> bool,
    check: &dyn Fn(&str, bool) -> Result<(), String>,
) -> Result<Scan, ScanError> {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ScanError::RootMissing(root.to_path_buf()));
        }
        Err(e) => return Err(ScanError::RootUnreadable(root.to_path_buf(), e)),
        Ok(meta) if !meta.is_dir() => return Err(ScanError::RootNotDir(root.to_path_buf())),
        Ok(_) => {}
    }
    let mut walk = Walk {
        root,
        filter,
        check,
        found: Vec::new(),
        problems: Vec::new(),
        incomplete: Vec::new(),
        open: Vec::new(),
    };
    walk.run()?;
    Ok(walk.finish(known))
}

/// A path the walk found worth syncing, before case collisions are settled.
struct Found {
    /// Relative to the root, as on disk (two variants may have the same NFC `entry.path`).
    rel: PathBuf,
    entry: LocalEntry,
}

/// The first pass: walks the tree, keeping what can be synced and noting what cannot.
struct Walk<'a> {
    root: &'a Path,
    filter: &'a Filter,
    check: &'a dyn Fn(&str, bool) -> Result<(), String>,
    found: Vec<Found>,
    /// With the on-disk relative path, to drop those under a case-collision loser.
    problems: Vec<(PathBuf, Problem)>,
    incomplete: Vec<(PathBuf, String)>,
    /// The relative path of each folder being listed, by depth (the root's children at 0).
    open: Vec<PathBuf>,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<(), ScanError> {
        let mut it = WalkDir::new(self.root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(next) = it.next() {
            match next {
                Ok(entry) => {
                    let descend = self.visit(&entry);
                    if entry.file_type().is_dir() {
                        if descend {
                            self.open.truncate(entry.depth() - 1);
                            self.open.push(self.relative(entry.path()).to_path_buf());
                        } else {
                            it.skip_current_dir();
                        }
                    }
                }
                Err(e) => self.failed(e)?,
            }
        }
        Ok(())
    }

    fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.root)
            .expect("walkdir yields paths under its root")
    }

    /// Records one entry; returns whether to descend into it (folders only).
    fn visit(&mut self, entry: &DirEntry) -> bool {
        let rel = self.relative(entry.path());
        let path = job_path(rel);
        let kind = entry.file_type();
        let path_key = key(&path);
        let name_key = path_key.rsplit('/').next().unwrap_or_default();
        if self.filter.hides(&path_key, name_key, kind.is_dir()) {
            return false;
        }
        let skip = if entry.file_name().to_str().is_none() {
            Some("the name is not valid UTF-8".to_string())
        } else if kind.is_symlink() {
            Some("symbolic links are not synced".to_string())
        } else if !kind.is_dir() && !kind.is_file() {
            return false;
        } else {
            (self.check)(&path, kind.is_dir()).err()
        };
        if let Some(reason) = skip {
            self.problem(rel.to_path_buf(), path, reason);
            return false;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                self.unreadable(rel.to_path_buf(), path, &e);
                return false;
            }
        };
        self.found.push(Found {
            rel: rel.to_path_buf(),
            entry: LocalEntry {
                path,
                is_dir: kind.is_dir(),
                size: if kind.is_dir() { 0 } else { meta.len() },
                modified: meta.mtime(),
            },
        });
        true
    }

    /// A failed read: of the root (fatal), of a folder's listing or of one entry (incomplete).
    fn failed(&mut self, e: walkdir::Error) -> Result<(), ScanError> {
        let at = match e.path() {
            Some(path) if e.depth() > 0 => self.relative(path).to_path_buf(),
            // An error listing a folder that names no entry: the folder is incomplete.
            None if e.depth() > 1 && e.depth() - 2 < self.open.len() => {
                self.open[e.depth() - 2].clone()
            }
            _ => {
                let io = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("walk failed"));
                return Err(ScanError::RootUnreadable(self.root.to_path_buf(), io));
            }
        };
        let path = job_path(&at);
        if !self.filter.excludes(&path, false) {
            self.unreadable(at, path, &e);
        }
        Ok(())
    }

    fn unreadable(&mut self, rel: PathBuf, path: String, e: &walkdir::Error) {
        let reason = match e.io_error() {
            Some(io) => format!("could not be read: {io}"),
            None => format!("could not be read: {e}"),
        };
        self.incomplete.push((rel.clone(), path.clone()));
        self.problem(rel, path, reason);
    }

    fn problem(&mut self, rel: PathBuf, path: String, reason: String) {
        let problem = Problem {
            side: "local",
            path,
            reason,
        };
        self.problems.push((rel, problem));
    }

    /// The second pass: settles case collisions, drops what lies under a skipped variant, sorts.
    fn finish(self, known: &dyn Fn(&str) -> bool) -> Scan {
        // Siblings by key, in walk order, which is byte order of the names within a folder.
        let mut groups: HashMap<(&Path, String), Vec<usize>> = HashMap::new();
        for (i, found) in self.found.iter().enumerate() {
            groups.entry(sibling_key(found)).or_default().push(i);
        }
        let mut winners: HashMap<usize, usize> = HashMap::new();
        let mut dropped: HashSet<&Path> = HashSet::new();
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        for (i, found) in self.found.iter().enumerate() {
            if found.rel.ancestors().any(|a| dropped.contains(a)) {
                continue;
            }
            let group = &groups[&sibling_key(found)];
            if group.len() > 1 {
                let winner = *winners.entry(group[0]).or_insert_with(|| {
                    let mut known = group.iter().filter(|&&j| known(&self.found[j].entry.path));
                    known.next().copied().unwrap_or(group[0])
                });
                if winner != i {
                    problems.push(collision(&found.entry, &self.found[winner].entry));
                    dropped.insert(&found.rel);
                    continue;
                }
            }
            entries.push(found.entry.clone());
        }
        let live = |rel: &Path| !rel.ancestors().any(|a| dropped.contains(a));
        problems.extend(
            self.problems
                .into_iter()
                .filter(|(rel, _)| live(rel))
                .map(|(_, problem)| problem),
        );
        let mut incomplete: Vec<String> = self
            .incomplete
            .into_iter()
            .filter(|(rel, _)| live(rel))
            .map(|(_, path)| path)
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        incomplete.sort();
        incomplete.dedup();
        Scan {
            entries,
            problems,
            incomplete,
        }
    }
}

/// Folder (as on disk) and name key: equal for names SharePoint cannot hold side by side.
fn sibling_key(found: &Found) -> (&Path, String) {
    let parent = found.rel.parent().unwrap_or(Path::new(""));
    let name = found.entry.path.rsplit('/').next().unwrap_or_default();
    (parent, key(name))
}

/// The problem of `loser`, skipped because it collides with `winner`.
fn collision(loser: &LocalEntry, winner: &LocalEntry) -> Problem {
    let name = |e: &LocalEntry| e.path.rsplit('/').next().unwrap_or_default().to_string();
    let (loser_name, winner_name) = (name(loser), name(winner));
    let how = if loser_name == winner_name {
        "is written in another Unicode form than"
    } else {
        "differs only in case from"
    };
    Problem {
        side: "local",
        path: loser.path.clone(),
        reason: format!(
            "`{loser_name}` {how} `{winner_name}`, which is synced; SharePoint cannot hold both"
        ),
    }
}

/// The job path of a path relative to the root: `/`-joined, NFC (names that are not UTF-8
/// lossily, for messages only).
fn job_path(rel: &Path) -> String {
    let os: &OsStr = rel.as_os_str();
    String::from_utf8_lossy(os.as_bytes()).nfc().collect()
}

/// The quickXorHash (base64) and length of what `file` holds from where it is.
pub fn hash_reader(mut file: impl Read) -> io::Result<(String, u64)> {
    let mut buffer = vec![0; HASH_BUFFER];
    let mut hash = QuickXor::new();
    let mut length = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hash.update(&buffer[..n]);
                length += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hash.finish(), length))
}

/// Where a download to the job-relative `path` (`dir/name`) is written before it is renamed:
/// `dir/.spgate.<name>.<random hex>.partial`, the same temp names as the local storage
/// backend's uploads (never synced, hidden from listings).
pub fn temp_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{}", crate::storage::local::temp_name(name)),
        None => crate::storage::local::temp_name(path),
    }
}
