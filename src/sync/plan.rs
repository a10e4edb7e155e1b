//! The decision table of `shared/SYNC.md`: from the local scan, the remote snapshot and the
//! baseline, what a run must do. Pure: no I/O, so every cell is unit-tested.
//!
//! Each side is compared only with its own baseline. A local file changed when its size or
//! mtime (1 s window) differs and its quickXorHash confirms it (a touch is not a change); a
//! remote file changed when its cTag (else eTag) differs and its size or hash confirms it.
//! `push` and `pull` use the same table restricted to one direction: the destination mirrors
//! the source, but a change made on the destination is never overwritten without the conflict
//! policy, and with `after_copy = "delete"` deletions never travel at all.

use std::collections::{BTreeMap, HashMap};

use super::{Baseline, LocalEntry, RemoteEntry, key};
use crate::config::{AfterCopy, Conflict, Direction};

/// How a job decides.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub direction: Direction,
    pub after_copy: AfterCopy,
    pub conflict: Conflict,
    /// First run or rebuild: copy in both allowed directions, never delete.
    pub copy_only: bool,
}

/// Everything a plan is made from. Paths under `unknown` (unreadable folders, skipped paths)
/// count as unknown locally: they are never deleted anywhere and never uploaded.
pub struct Sides<'a> {
    pub local: &'a [LocalEntry],
    pub remote: &'a [RemoteEntry],
    pub baseline: &'a [Baseline],
    pub unknown: &'a [String],
    /// quickXorHash of the local files listed by [`hashes_needed`].
    pub hashes: &'a HashMap<String, String>,
}

/// Which side keeps the name in a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    Local,
    Remote,
}

/// What happens to the losing version of a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loser {
    /// Renamed to the conflict name and kept on both sides (`keep-both`).
    KeepBoth,
    /// Overwritten by the winner. A remote loser stays in SharePoint's version history; a local
    /// loser is moved aside to the conflict name locally (it has no history).
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Local file -> SharePoint (new or replacing `remote`); then delete the local source when
    /// `delete_source`.
    Upload {
        path: String,
        remote: Option<RemoteEntry>,
        delete_source: bool,
    },
    /// SharePoint file -> local (new or replacing); then delete the remote source when
    /// `delete_source`.
    Download {
        path: String,
        remote: RemoteEntry,
        delete_source: bool,
    },
    /// Move the remote file to the recycle bin (it was deleted locally).
    DeleteRemote {
        path: String,
        remote: RemoteEntry,
    },
    /// Delete the local file (it was deleted on SharePoint).
    DeleteLocal {
        path: String,
    },
    /// Both sides hold the same content: write the baseline from their current state. With
    /// `delete_source`, the source of a push/pull with `after_copy = "delete"` is then removed.
    Record {
        path: String,
        remote: RemoteEntry,
        delete_source: bool,
    },
    /// The path is gone from both sides (or left the job): drop its baseline row.
    Forget {
        path: String,
    },
    /// Both sides changed differently.
    Conflict {
        path: String,
        remote: RemoteEntry,
        winner: Winner,
        loser: Loser,
    },
    MkdirRemote {
        path: String,
    },
    MkdirLocal {
        path: String,
    },
    /// Remove the folder on SharePoint if it holds nothing after this run's deletions.
    RemoveDirRemote {
        path: String,
        remote: RemoteEntry,
    },
    /// Remove the local folder if it is empty after this run's deletions.
    RemoveDirLocal {
        path: String,
    },
}

impl Action {
    pub fn path(&self) -> &str {
        match self {
            Action::Upload { path, .. }
            | Action::Download { path, .. }
            | Action::DeleteRemote { path, .. }
            | Action::DeleteLocal { path }
            | Action::Record { path, .. }
            | Action::Forget { path }
            | Action::Conflict { path, .. }
            | Action::MkdirRemote { path }
            | Action::MkdirLocal { path }
            | Action::RemoveDirRemote { path, .. }
            | Action::RemoveDirLocal { path } => path,
        }
    }
}

/// A run's plan and the figures the deletion guard needs.
#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Files in the baseline (the base of the guard's percentage).
    pub baseline_files: u64,
    pub deletes_local: u64,
    pub deletes_remote: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    New,
    Unchanged,
    Changed,
    Deleted,
    Unknown,
}

/// One path with what each side and the baseline hold.
struct Row<'a> {
    local: Option<&'a LocalEntry>,
    remote: Option<&'a RemoteEntry>,
    base: Option<&'a Baseline>,
}

fn rows<'a>(sides: &Sides<'a>) -> BTreeMap<String, Row<'a>> {
    let mut rows: BTreeMap<String, Row<'a>> = BTreeMap::new();
    let blank = || Row {
        local: None,
        remote: None,
        base: None,
    };
    for l in sides.local {
        rows.entry(key(&l.path)).or_insert_with(blank).local = Some(l);
    }
    for r in sides.remote {
        rows.entry(key(&r.path)).or_insert_with(blank).remote = Some(r);
    }
    for b in sides.baseline {
        rows.entry(key(&b.path)).or_insert_with(blank).base = Some(b);
    }
    rows
}

fn is_unknown(path: &str, unknown: &[String]) -> bool {
    let k = key(path);
    unknown.iter().any(|u| {
        let u = key(u);
        k == u || k.starts_with(&format!("{u}/"))
    })
}

fn same_time(a: i64, b: i64) -> bool {
    (a - b).abs() <= 1
}

fn local_state(row: &Row, sides: &Sides) -> State {
    match (row.local, row.base) {
        (None, None) => State::Absent,
        (Some(_), None) => State::New,
        (None, Some(b)) if is_unknown(&b.path, sides.unknown) => State::Unknown,
        (None, Some(_)) => State::Deleted,
        (Some(l), Some(b)) if l.is_dir || b.is_dir => {
            if l.is_dir == b.is_dir {
                State::Unchanged
            } else {
                State::Changed
            }
        }
        (Some(l), Some(b)) => {
            if l.size == b.local_size && same_time(l.modified, b.local_modified) {
                return State::Unchanged;
            }
            match (sides.hashes.get(&l.path), &b.local_hash) {
                (Some(now), Some(then)) if l.size == b.local_size && now == then => {
                    State::Unchanged
                }
                _ => State::Changed,
            }
        }
    }
}

fn remote_state(row: &Row) -> State {
    match (row.remote, row.base) {
        (None, None) => State::Absent,
        (Some(_), None) => State::New,
        (None, Some(_)) => State::Deleted,
        (Some(r), Some(b)) if r.item.is_dir || b.is_dir => {
            if r.item.is_dir == b.is_dir {
                State::Unchanged
            } else {
                State::Changed
            }
        }
        (Some(r), Some(b)) => {
            let tag_same = match (&r.item.ctag, &b.remote_ctag) {
                (Some(now), Some(then)) => now == then,
                _ => r.item.etag.is_some() && r.item.etag == b.remote_etag,
            };
            let content_same = r.item.size == b.remote_size
                && r.item.hash.is_some()
                && r.item.hash == b.remote_hash;
            if tag_same || content_same {
                State::Unchanged
            } else {
                State::Changed
            }
        }
    }
}

/// Local files whose hash the plan needs: size equal but mtime moved (touch or change?), and
/// files present on both sides without a baseline or changed on both (same content?).
pub fn hashes_needed(sides: &Sides) -> Vec<String> {
    rows(sides)
        .into_values()
        .filter_map(|row| {
            let l = row.local.filter(|l| !l.is_dir)?;
            let r = row.remote.filter(|r| !r.item.is_dir);
            let wanted = match row.base {
                Some(b) if !b.is_dir => {
                    let touched =
                        l.size == b.local_size && !same_time(l.modified, b.local_modified);
                    let both_changed = l.size != b.local_size
                        && r.is_some_and(|r| {
                            remote_state(&row) == State::Changed && r.item.size == l.size
                        });
                    touched || both_changed
                }
                _ => r.is_some_and(|r| r.item.size == l.size),
            };
            wanted.then(|| l.path.clone())
        })
        .collect()
}

/// Makes the plan. Folders come first (parents before children), then files, then folder
/// removals (children before parents).
pub fn plan(policy: &Policy, sides: &Sides) -> Plan {
    let mut plan = Plan {
        baseline_files: sides.baseline.iter().filter(|b| !b.is_dir).count() as u64,
        ..Plan::default()
    };
    let mut files = Vec::new();
    let mut removals = Vec::new();
    for row in rows(sides).into_values() {
        let is_dir = row.local.map(|l| l.is_dir).unwrap_or(false)
            || row.remote.map(|r| r.item.is_dir).unwrap_or(false)
            || (row.local.is_none() && row.remote.is_none() && row.base.is_some_and(|b| b.is_dir));
        let kinds_differ =
            matches!((row.local, row.remote), (Some(l), Some(r)) if l.is_dir != r.item.is_dir);
        if kinds_differ {
            // A file on one side and a folder on the other: nothing sane to do automatically.
            continue;
        }
        if is_dir {
            folder(policy, sides, &row, &mut plan.actions, &mut removals);
        } else {
            file(policy, sides, &row, &mut files);
        }
    }
    for action in &files {
        match action {
            Action::DeleteLocal { .. } => plan.deletes_local += 1,
            Action::DeleteRemote { .. } => plan.deletes_remote += 1,
            _ => {}
        }
    }
    plan.actions.extend(files);
    removals.reverse();
    plan.actions.extend(removals);
    plan
}

fn pushes(p: &Policy) -> bool {
    p.direction != Direction::Pull
}

fn pulls(p: &Policy) -> bool {
    p.direction != Direction::Push
}

/// Whether deletions on the source may travel to the destination.
fn mirrors_deletes(p: &Policy) -> bool {
    !p.copy_only && p.after_copy == AfterCopy::Keep
}

fn folder(
    policy: &Policy,
    sides: &Sides,
    row: &Row,
    out: &mut Vec<Action>,
    removals: &mut Vec<Action>,
) {
    let path = row
        .local
        .map(|l| l.path.clone())
        .or_else(|| row.base.map(|b| b.path.clone()))
        .or_else(|| row.remote.map(|r| r.path.clone()))
        .unwrap_or_default();
    let local = local_state(row, sides);
    let delete_mode = policy.after_copy == AfterCopy::Delete;
    match (row.local, row.remote) {
        (Some(_), Some(r)) => {
            if row.base.is_none() && !delete_mode {
                out.push(Action::Record {
                    path,
                    remote: r.clone(),
                    delete_source: false,
                });
            }
        }
        (Some(_), None) => match row.base {
            // New locally: create it on SharePoint.
            None if pushes(policy) => out.push(Action::MkdirRemote { path }),
            // Deleted on SharePoint.
            Some(_) if policy.direction == Direction::Push => {
                out.push(Action::MkdirRemote { path })
            }
            Some(_) if mirrors_deletes(policy) => removals.push(Action::RemoveDirLocal { path }),
            Some(_) => out.push(Action::Forget { path }),
            None => {}
        },
        (None, Some(r)) => match row.base {
            None if pulls(policy) => out.push(Action::MkdirLocal { path }),
            _ if local == State::Unknown => {}
            Some(_) if policy.direction == Direction::Pull => out.push(Action::MkdirLocal { path }),
            Some(_) if mirrors_deletes(policy) => removals.push(Action::RemoveDirRemote {
                path,
                remote: r.clone(),
            }),
            Some(_) => out.push(Action::Forget { path }),
            None => {}
        },
        (None, None) => {
            if row.base.is_some() && local != State::Unknown {
                out.push(Action::Forget { path });
            }
        }
    }
}

fn file(policy: &Policy, sides: &Sides, row: &Row, out: &mut Vec<Action>) {
    let local = local_state(row, sides);
    let remote = remote_state(row);
    let path = row
        .local
        .map(|l| l.path.clone())
        .or_else(|| row.base.map(|b| b.path.clone()))
        .or_else(|| row.remote.map(|r| r.path.clone()))
        .unwrap_or_default();
    if local == State::Unknown {
        return;
    }
    let delete_mode = policy.after_copy == AfterCopy::Delete;
    let upload = |out: &mut Vec<Action>| {
        out.push(Action::Upload {
            path: path.clone(),
            remote: row.remote.cloned(),
            delete_source: delete_mode && policy.direction == Direction::Push,
        })
    };
    let download = |out: &mut Vec<Action>, r: &RemoteEntry| {
        out.push(Action::Download {
            path: path.clone(),
            remote: r.clone(),
            delete_source: delete_mode && policy.direction == Direction::Pull,
        })
    };
    let same_content = || match (row.local, row.remote) {
        (Some(l), Some(r)) => {
            r.item.hash.is_some()
                && l.size == r.item.size
                && sides.hashes.get(&l.path) == r.item.hash.as_ref()
        }
        _ => false,
    };
    let both_present = |out: &mut Vec<Action>, r: &RemoteEntry| {
        if delete_mode && policy.direction == Direction::Push && !same_content() {
            // An outbox: a file dropped again under a name already pushed replaces the
            // SharePoint copy (which keeps the old one in its version history), like an upload.
            upload(out);
        } else if same_content() {
            out.push(Action::Record {
                path: path.clone(),
                remote: r.clone(),
                delete_source: delete_mode,
            });
        } else {
            out.push(conflict(policy, &path, row, r));
        }
    };
    use State::*;
    match (local, remote, row.remote) {
        (New, Absent, _) | (Changed, Unchanged | Deleted, _) if pushes(policy) => upload(out),
        (Absent, New, Some(r)) | (Unchanged | Deleted, Changed, Some(r)) if pulls(policy) => {
            download(out, r)
        }
        (New, New, Some(r)) | (Changed, Changed, Some(r)) => both_present(out, r),
        // A touch on either side, or a remote metadata-only change: refresh the baseline.
        // With `after_copy = "delete"` a row means a verified copy, so a source still there is
        // one whose deletion failed or was interrupted: finish it.
        (Unchanged, Unchanged, Some(r)) => {
            let (Some(l), Some(b)) = (row.local, row.base) else {
                return;
            };
            let stale = !same_time(l.modified, b.local_modified)
                || r.item.etag != b.remote_etag
                || r.item.ctag != b.remote_ctag;
            if stale || delete_mode {
                out.push(Action::Record {
                    path,
                    remote: r.clone(),
                    delete_source: delete_mode,
                });
            }
        }
        (Deleted, Unchanged, Some(r)) => {
            if mirrors_deletes(policy) && pushes(policy) {
                out.push(Action::DeleteRemote {
                    path,
                    remote: r.clone(),
                });
            } else if policy.direction == Direction::Pull && !policy.copy_only {
                // Pull mirrors SharePoint: a file removed locally comes back.
                download(out, r);
            } else {
                out.push(Action::Forget { path });
            }
        }
        (Unchanged, Deleted, _) => {
            if mirrors_deletes(policy) && pulls(policy) {
                out.push(Action::DeleteLocal { path });
            } else if policy.direction == Direction::Push && !policy.copy_only {
                // Push mirrors the local folder: a file removed on SharePoint goes back up.
                upload(out);
            } else {
                out.push(Action::Forget { path });
            }
        }
        // The changed side survives: it travels back (or, where this direction does not carry
        // it, the row is dropped and the file stays where it is).
        (Deleted, Changed, Some(r)) if pulls(policy) => download(out, r),
        (Changed, Deleted, _) if pushes(policy) => upload(out),
        (Deleted, Changed, _) | (Changed, Deleted, _) | (Deleted, Deleted, _) => {
            out.push(Action::Forget { path })
        }
        // One side changed, but this direction does not carry it: leave both alone.
        _ => {}
    }
}

fn conflict(policy: &Policy, path: &str, row: &Row, remote: &RemoteEntry) -> Action {
    let local_newer = row.local.is_some_and(|l| l.modified > remote.item.modified);
    let by_time = if local_newer {
        Winner::Local
    } else {
        Winner::Remote
    };
    let (winner, loser) = match policy.conflict {
        Conflict::KeepBoth => (by_time, Loser::KeepBoth),
        Conflict::PreferLocal => (Winner::Local, Loser::Replace),
        Conflict::PreferRemote => (Winner::Remote, Loser::Replace),
        Conflict::Newer => (by_time, Loser::Replace),
    };
    Action::Conflict {
        path: path.to_string(),
        remote: remote.clone(),
        winner,
        loser,
    }
}

#[cfg(test)]
mod tests;
