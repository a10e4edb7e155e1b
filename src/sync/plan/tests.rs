//! Every cell of `shared/SYNC.md`'s decision table, for files and folders, in every mode
//! ([`MODES`]), then the rules around the table: conflict policies, touches, remote
//! metadata-only changes, names that differ only in case, unreadable folders, the order of
//! folder actions, a file against a folder, and the counters of the deletion guard.
//!
//! Inputs are built one line per side: `local(path, size, mtime)`,
//! `remote(path, size, mtime, etag, hash)` and `base(path, size, mtime, etag, hash)` (a file
//! both sides held alike when it was last synced).

use std::collections::HashMap;

use super::*;
use crate::config::AfterCopy::{Delete, Keep};
use crate::config::Direction::{Pull, Push, TwoWay};
use crate::sync::RemoteItem;

/// The path of the one-file cells.
const A: &str = "a.txt";
/// Modification times: when the baseline was synced, a later local edit, a later remote edit.
const T1: i64 = 1_700_000_000;
const T2: i64 = T1 + 3_600;
const T3: i64 = T1 + 7_200;

fn local(path: &str, size: u64, modified: i64) -> LocalEntry {
    LocalEntry {
        path: path.into(),
        is_dir: false,
        size,
        modified,
    }
}

fn ldir(path: &str) -> LocalEntry {
    LocalEntry {
        is_dir: true,
        ..local(path, 0, T1)
    }
}

fn remote(path: &str, size: u64, modified: i64, etag: &str, hash: &str) -> RemoteEntry {
    RemoteEntry {
        path: path.into(),
        item: RemoteItem {
            id: format!("id:{}", key(path)),
            parent_id: "root".into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            is_dir: false,
            size,
            etag: Some(etag.into()),
            ctag: None,
            hash: Some(hash.into()),
            modified,
        },
    }
}

fn rdir(path: &str) -> RemoteEntry {
    let mut entry = remote(path, 0, T1, "e-dir", "");
    entry.item.is_dir = true;
    entry.item.hash = None;
    entry
}

fn with_ctag(mut entry: RemoteEntry, ctag: &str) -> RemoteEntry {
    entry.item.ctag = Some(ctag.into());
    entry
}

fn without_hash(mut entry: RemoteEntry) -> RemoteEntry {
    entry.item.hash = None;
    entry
}

/// A file as both sides held it when it was last synced: same size, mtime and hash.
fn base(path: &str, size: u64, modified: i64, etag: &str, hash: &str) -> Baseline {
    Baseline {
        path: path.into(),
        is_dir: false,
        remote_id: format!("id:{}", key(path)),
        remote_etag: Some(etag.into()),
        remote_ctag: None,
        remote_size: size,
        remote_hash: Some(hash.into()),
        remote_modified: modified,
        local_size: size,
        local_modified: modified,
        local_hash: Some(hash.into()),
    }
}

fn bdir(path: &str) -> Baseline {
    Baseline {
        is_dir: true,
        remote_hash: None,
        local_hash: None,
        ..base(path, 0, T1, "e-dir", "")
    }
}

/// The inputs of one plan.
#[derive(Default)]
struct Case {
    local: Vec<LocalEntry>,
    remote: Vec<RemoteEntry>,
    base: Vec<Baseline>,
    unknown: Vec<String>,
    hashes: HashMap<String, String>,
}

impl Case {
    fn local(mut self, entry: LocalEntry) -> Case {
        self.local.push(entry);
        self
    }

    fn remote(mut self, entry: RemoteEntry) -> Case {
        self.remote.push(entry);
        self
    }

    fn base(mut self, row: Baseline) -> Case {
        self.base.push(row);
        self
    }

    fn unknown(mut self, path: &str) -> Case {
        self.unknown.push(path.into());
        self
    }

    /// The quickXorHash of a local file, as the engine computes it for [`hashes_needed`].
    fn hash(mut self, path: &str, hash: &str) -> Case {
        self.hashes.insert(path.into(), hash.into());
        self
    }

    fn sides(&self) -> Sides<'_> {
        Sides {
            local: &self.local,
            remote: &self.remote,
            baseline: &self.base,
            unknown: &self.unknown,
            hashes: &self.hashes,
        }
    }

    fn needed(&self) -> Vec<String> {
        hashes_needed(&self.sides())
    }

    /// Plans, and checks what must hold for every plan: the counters match the actions, an
    /// action carries the remote item of its own row, and a first run (or, for files,
    /// `after_copy = "delete"`) deletes nothing. `at` names the case in failures.
    fn plan(&self, policy: Policy, at: &str) -> Plan {
        let plan = plan(&policy, &self.sides());
        let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count() as u64;
        let files = self.base.iter().filter(|b| !b.is_dir).count() as u64;
        assert_eq!(plan.baseline_files, files, "{at}: baseline_files");
        let deletes_local = count(|a| matches!(a, Action::DeleteLocal { .. }));
        assert_eq!(plan.deletes_local, deletes_local, "{at}: deletes_local");
        let deletes_remote = count(|a| matches!(a, Action::DeleteRemote { .. }));
        assert_eq!(plan.deletes_remote, deletes_remote, "{at}: deletes_remote");
        if policy.copy_only || policy.after_copy == Delete {
            assert_eq!(deletes_local + deletes_remote, 0, "{at}: deleted a file");
        }
        if policy.copy_only {
            let rmdirs = count(|a| {
                matches!(
                    a,
                    Action::RemoveDirLocal { .. } | Action::RemoveDirRemote { .. }
                )
            });
            assert_eq!(rmdirs, 0, "{at}: removed a folder on a first run");
        }
        // An action that moves or replaces a remote item names the item of its own row.
        for action in &plan.actions {
            let carried = match action {
                Action::Upload { remote, .. } => remote.as_ref(),
                Action::Download { remote, .. }
                | Action::DeleteRemote { remote, .. }
                | Action::Record { remote, .. }
                | Action::Conflict { remote, .. }
                | Action::RemoveDirRemote { remote, .. } => Some(remote),
                _ => continue,
            };
            let row = self
                .remote
                .iter()
                .find(|r| key(&r.path) == key(action.path()));
            assert_eq!(carried, row, "{at}: remote item of {action:?}");
        }
        plan
    }
}

/// The modes every table is checked in.
const MODES: [(&str, Policy); 8] = [
    ("two-way", policy(TwoWay, Keep, false)),
    ("push", policy(Push, Keep, false)),
    ("pull", policy(Pull, Keep, false)),
    ("push+delete", policy(Push, Delete, false)),
    ("pull+delete", policy(Pull, Delete, false)),
    ("two-way first run", policy(TwoWay, Keep, true)),
    ("push first run", policy(Push, Keep, true)),
    ("pull first run", policy(Pull, Keep, true)),
];
const TWO_WAY: Policy = MODES[0].1;
const PULL: Policy = MODES[2].1;
const TWO_WAY_FIRST: Policy = MODES[5].1;

const fn policy(direction: Direction, after_copy: AfterCopy, copy_only: bool) -> Policy {
    Policy {
        direction,
        after_copy,
        conflict: Conflict::KeepBoth,
        copy_only,
    }
}

/// An action's variant; `+del` when it deletes its source afterwards.
fn verb(action: &Action) -> &'static str {
    match action {
        Action::Upload {
            delete_source: false,
            ..
        } => "Upload",
        Action::Upload { .. } => "Upload+del",
        Action::Download {
            delete_source: false,
            ..
        } => "Download",
        Action::Download { .. } => "Download+del",
        Action::Record {
            delete_source: false,
            ..
        } => "Record",
        Action::Record { .. } => "Record+del",
        Action::DeleteRemote { .. } => "DeleteRemote",
        Action::DeleteLocal { .. } => "DeleteLocal",
        Action::Forget { .. } => "Forget",
        Action::Conflict { .. } => "Conflict",
        Action::MkdirRemote { .. } => "MkdirRemote",
        Action::MkdirLocal { .. } => "MkdirLocal",
        Action::RemoveDirRemote { .. } => "RemoveDirRemote",
        Action::RemoveDirLocal { .. } => "RemoveDirLocal",
    }
}

/// An empty plan, as [`steps`].
const NOTHING: [&str; 0] = [];

/// The plan of a one-path cell: its verbs ("" = nothing to do).
fn verbs(plan: &Plan) -> String {
    plan.actions.iter().map(verb).collect::<Vec<_>>().join(", ")
}

/// The plan in order, one `verb path` per action.
fn steps(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| format!("{} {}", verb(a), a.path()))
        .collect()
}

/// The columns of the decision tables, in the order of [`MODES`].
const COLUMNS: &str = "two-way | push | pull | push+delete | pull+delete \
                       | first run: two-way | push | pull";

/// A decision table: a cell, its inputs, and the plan in each of [`MODES`] (see [`COLUMNS`]),
/// `|` between modes, `-` for nothing to do. The planner must also ask for exactly the hashes
/// the cell supplies.
fn check(table: &[(&str, Case, &str)]) {
    for (cell, case, row) in table {
        let mut supplied: Vec<String> = case.hashes.keys().cloned().collect();
        supplied.sort();
        assert_eq!(case.needed(), supplied, "cell {cell}: hashes_needed");
        let expected: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            expected.len(),
            MODES.len(),
            "cell {cell}: columns {COLUMNS}"
        );
        for ((mode, policy), want) in MODES.iter().zip(expected) {
            let at = format!("cell {cell}, {mode}");
            let want = if want == "-" { "" } else { want };
            assert_eq!(verbs(&case.plan(*policy, &at)), want, "{at}");
        }
    }
}

#[test]
fn decision_table_for_files() {
    let new = Case::default;
    let synced = || Case::default().base(base(A, 10, T1, "e1", "h1"));
    check(&[
        (
            "new/absent",
            new().local(local(A, 20, T2)),
            "Upload | Upload | - | Upload+del | - | Upload | Upload | -",
        ),
        (
            "absent/new",
            new().remote(remote(A, 30, T3, "e3", "h3")),
            "Download | - | Download | - | Download+del | Download | - | Download",
        ),
        (
            "new/new, same hash",
            new()
                .local(local(A, 30, T2))
                .remote(remote(A, 30, T3, "e3", "h3"))
                .hash(A, "h3"),
            "Record | Record | Record | Record+del | Record+del | Record | Record | Record",
        ),
        (
            "new/new, other hash",
            new()
                .local(local(A, 30, T2))
                .remote(remote(A, 30, T3, "e3", "h3"))
                .hash(A, "h2"),
            "Conflict | Conflict | Conflict | Upload+del | Conflict | Conflict | Conflict | Conflict",
        ),
        (
            "new/new, other size",
            new()
                .local(local(A, 20, T2))
                .remote(remote(A, 30, T3, "e3", "h3")),
            "Conflict | Conflict | Conflict | Upload+del | Conflict | Conflict | Conflict | Conflict",
        ),
        (
            "unchanged/unchanged",
            synced()
                .local(local(A, 10, T1))
                .remote(remote(A, 10, T1, "e1", "h1")),
            // +delete: the source is still there after a verified copy (its deletion failed
            // or the run was killed), so the copy is finished.
            "- | - | - | Record+del | Record+del | - | - | -",
        ),
        (
            "changed/unchanged",
            synced()
                .local(local(A, 20, T2))
                .remote(remote(A, 10, T1, "e1", "h1")),
            "Upload | Upload | - | Upload+del | - | Upload | Upload | -",
        ),
        (
            "unchanged/changed",
            synced()
                .local(local(A, 10, T1))
                .remote(remote(A, 30, T3, "e3", "h3")),
            "Download | - | Download | - | Download+del | Download | - | Download",
        ),
        (
            "changed/changed, same content",
            synced()
                .local(local(A, 30, T2))
                .remote(remote(A, 30, T3, "e3", "h3"))
                .hash(A, "h3"),
            "Record | Record | Record | Record+del | Record+del | Record | Record | Record",
        ),
        (
            "changed/changed, other content",
            synced()
                .local(local(A, 20, T2))
                .remote(remote(A, 30, T3, "e3", "h3")),
            "Conflict | Conflict | Conflict | Upload+del | Conflict | Conflict | Conflict | Conflict",
        ),
        (
            "deleted/unchanged",
            synced().remote(remote(A, 10, T1, "e1", "h1")),
            "DeleteRemote | DeleteRemote | Download | Forget | Download+del | Forget | Forget | Forget",
        ),
        (
            "unchanged/deleted",
            synced().local(local(A, 10, T1)),
            "DeleteLocal | Upload | DeleteLocal | Upload+del | Forget | Forget | Forget | Forget",
        ),
        (
            "deleted/changed",
            synced().remote(remote(A, 30, T3, "e3", "h3")),
            "Download | Forget | Download | Forget | Download+del | Download | Forget | Download",
        ),
        (
            "changed/deleted",
            synced().local(local(A, 20, T2)),
            "Upload | Upload | Forget | Upload+del | Forget | Upload | Upload | Forget",
        ),
        (
            "deleted/deleted",
            synced(),
            "Forget | Forget | Forget | Forget | Forget | Forget | Forget | Forget",
        ),
    ]);
}

#[test]
fn decision_table_for_folders() {
    let new = Case::default;
    let synced = || Case::default().base(bdir("d"));
    check(&[
        (
            "new/absent",
            new().local(ldir("d")),
            "MkdirRemote | MkdirRemote | - | MkdirRemote | - | MkdirRemote | MkdirRemote | -",
        ),
        (
            "absent/new",
            new().remote(rdir("d")),
            "MkdirLocal | - | MkdirLocal | - | MkdirLocal | MkdirLocal | - | MkdirLocal",
        ),
        (
            "new/new",
            new().local(ldir("d")).remote(rdir("d")),
            "Record | Record | Record | - | - | Record | Record | Record",
        ),
        (
            "unchanged/unchanged",
            synced().local(ldir("d")).remote(rdir("d")),
            "- | - | - | - | - | - | - | -",
        ),
        (
            "deleted/unchanged",
            synced().remote(rdir("d")),
            "RemoveDirRemote | RemoveDirRemote | MkdirLocal | Forget | MkdirLocal | Forget | Forget | MkdirLocal",
        ),
        (
            "unchanged/deleted",
            synced().local(ldir("d")),
            "RemoveDirLocal | MkdirRemote | RemoveDirLocal | MkdirRemote | Forget | Forget | MkdirRemote | Forget",
        ),
        (
            "deleted/deleted",
            synced(),
            "Forget | Forget | Forget | Forget | Forget | Forget | Forget | Forget",
        ),
    ]);
}

#[test]
fn conflicts_follow_the_policy() {
    // policy, local mtime, remote mtime -> which side keeps the name, what becomes of the other
    let table = [
        (Conflict::KeepBoth, T3, T2, Winner::Local, Loser::KeepBoth),
        (Conflict::KeepBoth, T2, T3, Winner::Remote, Loser::KeepBoth),
        (Conflict::PreferLocal, T2, T3, Winner::Local, Loser::Replace),
        (Conflict::PreferLocal, T3, T2, Winner::Local, Loser::Replace),
        (
            Conflict::PreferRemote,
            T3,
            T2,
            Winner::Remote,
            Loser::Replace,
        ),
        (
            Conflict::PreferRemote,
            T2,
            T3,
            Winner::Remote,
            Loser::Replace,
        ),
        (Conflict::Newer, T3, T2, Winner::Local, Loser::Replace),
        (Conflict::Newer, T2, T3, Winner::Remote, Loser::Replace),
    ];
    for (conflict, local_time, remote_time, winner, loser) in table {
        let new = Case::default()
            .local(local(A, 20, local_time))
            .remote(remote(A, 30, remote_time, "e3", "h3"));
        let changed = Case::default()
            .local(local(A, 20, local_time))
            .remote(remote(A, 30, remote_time, "e3", "h3"))
            .base(base(A, 10, T1, "e1", "h1"));
        for (cell, case) in [("new/new", new), ("changed/changed", changed)] {
            for (mode, policy) in MODES {
                let at = format!(
                    "{conflict:?}, local {local_time} remote {remote_time}, {cell}, {mode}"
                );
                let plan = case.plan(Policy { conflict, ..policy }, &at);
                if policy.after_copy == Delete && policy.direction == crate::config::Direction::Push
                {
                    // An outbox: a file dropped again replaces the earlier copy.
                    assert_eq!(verbs(&plan), "Upload+del", "{at}");
                    continue;
                }
                let got: Vec<_> = plan
                    .actions
                    .iter()
                    .map(|a| match a {
                        Action::Conflict { winner, loser, .. } => Some((*winner, *loser)),
                        _ => None,
                    })
                    .collect();
                assert_eq!(got, [Some((winner, loser))], "{at}");
            }
        }
    }
}

#[test]
fn a_touch_is_recorded_not_uploaded() {
    let touched = || {
        Case::default()
            .local(local(A, 10, T2))
            .remote(remote(A, 10, T1, "e1", "h1"))
            .base(base(A, 10, T1, "e1", "h1"))
    };
    assert_eq!(touched().needed(), [A], "a touched file needs its hash");
    for (mode, policy) in MODES {
        let at = format!("touch, {mode}");
        let want = if policy.after_copy == Delete {
            "Record+del"
        } else {
            "Record"
        };
        assert_eq!(
            verbs(&touched().hash(A, "h1").plan(policy, &at)),
            want,
            "{at}"
        );
    }
    // What the planner must not take for a touch.
    let cells = [
        ("touch without its hash", touched(), TWO_WAY, "Upload"),
        (
            "same size, other hash",
            touched().hash(A, "h2"),
            TWO_WAY,
            "Upload",
        ),
        (
            "same size, other hash, pull",
            touched().hash(A, "h2"),
            PULL,
            "",
        ),
    ];
    for (cell, case, policy, want) in cells {
        assert_eq!(verbs(&case.plan(policy, cell)), want, "{cell}");
    }
    // Within the 1 s window nothing moved: no hash, no action.
    let second = Case::default()
        .local(local(A, 10, T1 + 1))
        .remote(remote(A, 10, T1, "e1", "h1"))
        .base(base(A, 10, T1, "e1", "h1"));
    assert!(second.needed().is_empty(), "1 s window: hashes_needed");
    assert_eq!(verbs(&second.plan(TWO_WAY, "1 s window")), "", "1 s window");
    // Touched here, edited on SharePoint: the local side is unchanged, so the edit comes down.
    let edited = Case::default()
        .local(local(A, 10, T2))
        .remote(remote(A, 10, T3, "e3", "h3"))
        .base(base(A, 10, T1, "e1", "h1"))
        .hash(A, "h1");
    assert_eq!(edited.needed(), [A], "touch + remote edit: hashes_needed");
    let at = "touch + remote edit";
    assert_eq!(verbs(&edited.plan(TWO_WAY, at)), "Download", "{at}");
}

#[test]
fn a_remote_metadata_change_is_not_a_download() {
    let was = Baseline {
        remote_ctag: Some("c1".into()),
        ..base(A, 10, T1, "e1", "h1")
    };
    let cells = [
        (
            "eTag changed, cTag same",
            with_ctag(remote(A, 10, T1, "e2", "h1"), "c1"),
            "Record",
        ),
        (
            "eTag changed, cTag same, no hash",
            without_hash(with_ctag(remote(A, 10, T1, "e2", "h1"), "c1")),
            "Record",
        ),
        (
            "eTag changed, no cTag, size and hash same",
            remote(A, 10, T1, "e2", "h1"),
            "Record",
        ),
        (
            "eTag and cTag changed, size and hash same",
            with_ctag(remote(A, 10, T1, "e2", "h1"), "c2"),
            "Record",
        ),
        (
            "eTag and lastModified changed, size and hash same",
            remote(A, 10, T3, "e2", "h1"),
            "Record",
        ),
        (
            "cTag and hash changed",
            with_ctag(remote(A, 10, T1, "e2", "h2"), "c2"),
            "Download",
        ),
        (
            "eTag and hash changed, no cTag",
            remote(A, 10, T1, "e2", "h2"),
            "Download",
        ),
        (
            "eTag and size changed, no cTag",
            remote(A, 11, T1, "e2", "h1"),
            "Download",
        ),
        (
            "eTag changed, no cTag, no hash",
            without_hash(remote(A, 10, T1, "e2", "h1")),
            "Download",
        ),
    ];
    for (cell, now, want) in cells {
        let case = Case::default()
            .local(local(A, 10, T1))
            .remote(now)
            .base(was.clone());
        for (mode, policy) in [("two-way", TWO_WAY), ("pull", PULL)] {
            let at = format!("{cell}, {mode}");
            assert_eq!(verbs(&case.plan(policy, &at)), want, "{at}");
        }
    }
}

#[test]
fn names_that_differ_only_in_case_or_normalization_are_one_row() {
    let same = Case::default()
        .local(local("A.txt", 30, T2))
        .remote(remote("a.txt", 30, T3, "e3", "h3"))
        .hash("A.txt", "h3");
    let other = Case::default()
        .local(local("A.txt", 30, T2))
        .remote(remote("a.txt", 30, T3, "e3", "h3"))
        .hash("A.txt", "h2");
    let synced = Case::default()
        .local(local("A.TXT", 10, T1))
        .remote(remote("A.txt", 10, T1, "e1", "h1"))
        .base(base("a.txt", 10, T1, "e1", "h1"));
    let deleted_remotely = Case::default()
        .local(local("A.txt", 10, T1))
        .base(base("a.txt", 10, T1, "e1", "h1"));
    let nfd = Case::default()
        .local(local("caf\u{e9}.txt", 30, T2))
        .remote(remote("cafe\u{301}.txt", 30, T3, "e3", "h3"))
        .hash("caf\u{e9}.txt", "h3");
    let folders = Case::default()
        .local(ldir("Docs"))
        .local(local("Docs/x.txt", 30, T2))
        .remote(rdir("docs"))
        .remote(remote("docs/X.txt", 30, T3, "e3", "h3"))
        .hash("Docs/x.txt", "h3");
    let cells = [
        ("A.txt vs a.txt, same hash", same, vec!["Record A.txt"]),
        ("A.txt vs a.txt, other hash", other, vec!["Conflict A.txt"]),
        ("A.TXT vs A.txt, synced as a.txt", synced, vec![]),
        (
            "A.txt synced as a.txt, deleted remotely",
            deleted_remotely,
            vec!["DeleteLocal A.txt"],
        ),
        ("NFC vs NFD", nfd, vec!["Record caf\u{e9}.txt"]),
        (
            "Docs/x.txt vs docs/X.txt",
            folders,
            vec!["Record Docs", "Record Docs/x.txt"],
        ),
    ];
    for (cell, case, want) in cells {
        assert_eq!(steps(&case.plan(TWO_WAY, cell)), want, "{cell}");
    }
}

#[test]
fn unknown_paths_are_never_deleted_nor_forgotten() {
    // `locked` could not be read: its rows look deleted locally, one is gone remotely too.
    let locked = |unknown: &str| {
        Case::default()
            .remote(rdir("locked"))
            .remote(remote("locked/a.txt", 10, T1, "e1", "h1"))
            .base(bdir("locked"))
            .base(base("locked/a.txt", 10, T1, "e1", "h1"))
            .base(bdir("locked/sub"))
            .base(base("locked/sub/b.txt", 10, T1, "e1", "h1"))
            .unknown(unknown)
    };
    // A file whose metadata could not be read, edited or deleted on SharePoint.
    let edited = Case::default()
        .remote(remote(A, 30, T3, "e3", "h3"))
        .base(base(A, 10, T1, "e1", "h1"))
        .unknown(A);
    let gone = Case::default().base(base(A, 10, T1, "e1", "h1")).unknown(A);
    let cells = [
        ("locked", locked("locked")),
        ("LOCKED (case-insensitive)", locked("LOCKED")),
        ("a.txt edited remotely", edited),
        ("a.txt deleted remotely", gone),
    ];
    for (cell, case) in cells {
        for (mode, policy) in MODES {
            let at = format!("unknown {cell}, {mode}");
            assert_eq!(steps(&case.plan(policy, &at)), NOTHING, "{at}");
        }
    }
    // Only whole segments: `lock` does not cover `locked`, whose rows then count as deleted.
    let at = "unknown lock";
    assert_eq!(
        steps(&locked("lock").plan(TWO_WAY, at)),
        [
            "Forget locked/sub",
            "DeleteRemote locked/a.txt",
            "Forget locked/sub/b.txt",
            "RemoveDirRemote locked",
        ],
        "{at}"
    );
}

#[test]
fn folders_are_created_parents_first_and_removed_children_first() {
    let file = |path| remote(path, 10, T1, "e1", "h1");
    let synced = |path| base(path, 10, T1, "e1", "h1");
    let new_local = Case::default()
        .local(local("d/e/f.txt", 5, T2))
        .local(ldir("d/e"))
        .local(ldir("d"));
    let new_remote = Case::default()
        .remote(remote("d/e/f.txt", 5, T3, "e3", "h3"))
        .remote(rdir("d/e"))
        .remote(rdir("d"));
    let tree = || {
        Case::default()
            .base(bdir("d"))
            .base(bdir("d/e"))
            .base(synced("d/e/f.txt"))
            .base(synced("d/g.txt"))
    };
    let deleted_locally = tree()
        .local(local("z.txt", 5, T2))
        .remote(rdir("d"))
        .remote(rdir("d/e"))
        .remote(file("d/e/f.txt"))
        .remote(file("d/g.txt"));
    let deleted_remotely = tree()
        .local(ldir("d"))
        .local(ldir("d/e"))
        .local(local("d/e/f.txt", 10, T1))
        .local(local("d/g.txt", 10, T1));
    // Deleted locally while a file in it changed on SharePoint: the file comes back first, and
    // the removal (only of an empty folder) comes last.
    let kept = Case::default()
        .remote(rdir("d"))
        .remote(remote("d/x.txt", 30, T3, "e3", "h3"))
        .base(bdir("d"))
        .base(synced("d/x.txt"));
    let cells = [
        (
            "new local tree, two-way",
            new_local,
            TWO_WAY,
            vec!["MkdirRemote d", "MkdirRemote d/e", "Upload d/e/f.txt"],
        ),
        (
            "new remote tree, pull",
            new_remote,
            PULL,
            vec!["MkdirLocal d", "MkdirLocal d/e", "Download d/e/f.txt"],
        ),
        (
            "tree deleted locally, two-way",
            deleted_locally,
            TWO_WAY,
            vec![
                "DeleteRemote d/e/f.txt",
                "DeleteRemote d/g.txt",
                "Upload z.txt",
                "RemoveDirRemote d/e",
                "RemoveDirRemote d",
            ],
        ),
        (
            "tree deleted remotely, two-way",
            deleted_remotely,
            TWO_WAY,
            vec![
                "DeleteLocal d/e/f.txt",
                "DeleteLocal d/g.txt",
                "RemoveDirLocal d/e",
                "RemoveDirLocal d",
            ],
        ),
        (
            "folder deleted locally, file in it changed remotely",
            kept,
            TWO_WAY,
            vec!["Download d/x.txt", "RemoveDirRemote d"],
        ),
    ];
    for (cell, case, policy, want) in cells {
        assert_eq!(steps(&case.plan(policy, cell)), want, "{cell}");
    }
}

#[test]
fn a_file_against_a_folder_is_left_alone() {
    let cells = [
        (
            "local file, remote folder",
            Case::default().local(local("x", 5, T2)).remote(rdir("x")),
        ),
        (
            "local folder, remote file",
            Case::default()
                .local(ldir("x"))
                .remote(remote("x", 5, T3, "e3", "h3")),
        ),
        (
            "local file, remote folder, synced as a file",
            Case::default()
                .local(local("x", 5, T1))
                .remote(rdir("x"))
                .base(base("x", 5, T1, "e1", "h1")),
        ),
        (
            "local folder, remote file, synced as a folder",
            Case::default()
                .local(ldir("x"))
                .remote(remote("x", 5, T3, "e3", "h3"))
                .base(bdir("x")),
        ),
        (
            "local file X, remote folder x",
            Case::default().local(local("X", 5, T2)).remote(rdir("x")),
        ),
    ];
    for (cell, case) in cells {
        assert!(case.needed().is_empty(), "{cell}: hashes_needed");
        for (mode, policy) in MODES {
            let at = format!("{cell}, {mode}");
            assert_eq!(steps(&case.plan(policy, &at)), NOTHING, "{at}");
        }
    }
}

#[test]
fn counters_for_the_deletion_guard() {
    let file = |path| remote(path, 10, T1, "e1", "h1");
    let synced = |path| base(path, 10, T1, "e1", "h1");
    // Four synced files and a folder: `kept.txt` unchanged, `here.txt` deleted remotely,
    // `there.txt` and the folder `d` with `d/x.txt` deleted locally.
    let case = Case::default()
        .local(local("kept.txt", 10, T1))
        .local(local("here.txt", 10, T1))
        .remote(file("kept.txt"))
        .remote(file("there.txt"))
        .remote(rdir("d"))
        .remote(file("d/x.txt"))
        .base(synced("kept.txt"))
        .base(synced("here.txt"))
        .base(synced("there.txt"))
        .base(bdir("d"))
        .base(synced("d/x.txt"));
    // mode -> (baseline_files, deletes_local, deletes_remote); folder removals are not counted.
    let want = [
        (4, 1, 2),
        (4, 0, 2),
        (4, 1, 0),
        (4, 0, 0),
        (4, 0, 0),
        (4, 0, 0),
        (4, 0, 0),
        (4, 0, 0),
    ];
    for ((mode, policy), want) in MODES.into_iter().zip(want) {
        let plan = case.plan(policy, mode);
        let got = (plan.baseline_files, plan.deletes_local, plan.deletes_remote);
        assert_eq!(got, want, "counters, {mode}");
    }
    let removals = steps(&case.plan(TWO_WAY, "two-way"));
    assert!(
        removals.contains(&"RemoveDirRemote d".to_string()),
        "two-way removes the folder deleted locally, uncounted: {removals:?}"
    );
}

#[test]
fn a_first_run_copies_records_equal_files_and_never_deletes() {
    let case = Case::default()
        .local(local("both-same.txt", 30, T2))
        .local(local("both-differ.txt", 30, T2))
        .local(local("local-only.txt", 5, T2))
        .remote(remote("both-same.txt", 30, T3, "e3", "h3"))
        .remote(remote("both-differ.txt", 30, T3, "e3", "h3"))
        .remote(remote("remote-only.txt", 5, T3, "e5", "h5"))
        .hash("both-same.txt", "h3")
        .hash("both-differ.txt", "h2");
    assert_eq!(
        case.needed(),
        ["both-differ.txt", "both-same.txt"],
        "first run: hashes_needed"
    );
    let at = "first run, two-way";
    assert_eq!(
        steps(&case.plan(TWO_WAY_FIRST, at)),
        [
            "Conflict both-differ.txt",
            "Record both-same.txt",
            "Upload local-only.txt",
            "Download remote-only.txt",
        ],
        "{at}"
    );
}
