use std::os::unix::fs::PermissionsExt;
use std::sync::Barrier;

use super::*;
use crate::sync::{Baseline, Counts, Outcome, Problem, RemoteItem};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&Store::path_in(dir.path())).unwrap()
}

/// Runs raw SQL on the store's connection (to backdate times or inject failures).
fn exec(store: &Store, sql: &str) {
    store.conn.lock().execute_batch(sql).unwrap();
}

fn pragma(store: &Store, name: &str) -> String {
    use rusqlite::types::Value;
    let value = store
        .conn
        .lock()
        .pragma_query_value(None, name, |row| row.get(0));
    match value.unwrap() {
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => t,
        other => format!("{other:?}"),
    }
}

fn row(path: &str, size: u64) -> Baseline {
    Baseline {
        path: path.to_owned(),
        is_dir: false,
        remote_id: format!("id-{path}"),
        remote_etag: Some("\"e1\"".to_owned()),
        remote_ctag: Some("c1".to_owned()),
        remote_size: size,
        remote_hash: Some("rh".to_owned()),
        remote_modified: 1_700_000_000,
        local_size: size,
        local_modified: 1_700_000_001,
        local_hash: None,
    }
}

fn item(id: &str, parent: &str, name: &str) -> RemoteItem {
    RemoteItem {
        id: id.to_owned(),
        parent_id: parent.to_owned(),
        name: name.to_owned(),
        is_dir: false,
        size: 42,
        etag: Some("e".to_owned()),
        ctag: None,
        hash: Some("h".to_owned()),
        modified: 1_700_000_000,
    }
}

fn change(upserts: Vec<RemoteItem>, removals: &[&str], link: &str) -> RemoteChange {
    RemoteChange {
        replace_all: false,
        upserts,
        removals: removals.iter().map(|s| s.to_string()).collect(),
        drive_id: "drive".to_owned(),
        root_id: "root".to_owned(),
        delta_link: Some(link.to_owned()),
        full_scan_at: None,
    }
}

fn problem(side: &'static str, path: &str, reason: &str) -> Problem {
    Problem {
        side,
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

fn ids(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.items.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn open_creates_a_private_file_with_wal_full_sync_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/nested/sync.db");
    let store = Store::open(&path).unwrap();
    store.start_run("j").unwrap(); // makes SQLite create the -wal file too
    for file in [path.clone(), path.with_file_name("sync.db-wal")] {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    assert_eq!(pragma(&store, "journal_mode"), "wal");
    assert_eq!(pragma(&store, "synchronous"), "2"); // FULL
    assert_eq!(pragma(&store, "foreign_keys"), "1");
    assert_eq!(pragma(&store, "busy_timeout"), "5000");
    assert_eq!(pragma(&store, "user_version"), MIGRATIONS.len().to_string());
}

#[test]
fn a_reopened_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.put_baseline("j", &[row("a.txt", 1)]).unwrap();
        store
            .apply_remote("j", &change(vec![item("1", "root", "a.txt")], &[], "L1"))
            .unwrap();
        let run = store.start_run("j").unwrap();
        store
            .finish_run(run, &Counts::default(), Outcome::Success, None)
            .unwrap();
        store
            .set_problems("j", &[problem("local", "A.txt", "case collision")])
            .unwrap();
        assert_eq!(
            store.try_lock("j", "me", Duration::from_secs(60)).unwrap(),
            None
        );
    }
    let store = open(&dir);
    assert_eq!(store.baseline("j").unwrap(), vec![row("a.txt", 1)]);
    let snapshot = store.snapshot("j").unwrap();
    assert_eq!(snapshot.delta_link.as_deref(), Some("L1"));
    assert_eq!(ids(&snapshot), ["1"]);
    assert_eq!(store.runs("j", 10).unwrap().len(), 1);
    assert!(store.last_success("j").unwrap().is_some());
    assert_eq!(store.problems("j").unwrap().len(), 1);
    assert_eq!(store.lock_holder("j").unwrap().unwrap().owner, "me");
    assert_eq!(pragma(&store, "user_version"), MIGRATIONS.len().to_string());
}

#[test]
fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    exec(&open(&dir), "PRAGMA user_version = 99");
    let err = Store::open(&Store::path_in(dir.path())).unwrap_err();
    assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn baseline_round_trips_ordered_by_path_and_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut folder = row("b", 0);
    folder.is_dir = true;
    folder.remote_etag = None;
    folder.remote_ctag = None;
    folder.remote_hash = None;
    folder.local_hash = Some("lh".to_owned());
    let big = row("a/big.bin", u64::from(u32::MAX) * 4);
    store
        .put_baseline("j", &[folder.clone(), big.clone()])
        .unwrap();
    store.put_baseline("other", &[row("z", 1)]).unwrap();
    assert_eq!(store.baseline("j").unwrap(), vec![big, folder]);
    assert_eq!(store.baseline("other").unwrap(), vec![row("z", 1)]);
    assert!(store.baseline("none").unwrap().is_empty());
}

#[test]
fn put_baseline_upserts_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .put_baseline("j", &[row("Docs/Report.txt", 1), row("x", 1)])
        .unwrap();
    store.put_baseline("j", &[row("x", 2)]).unwrap();
    // The same name in another case (and another Unicode form) is the same row.
    store
        .put_baseline("j", &[row("docs/REPORT.txt", 3)])
        .unwrap();
    store.put_baseline("j", &[row("Cafe\u{301}", 1)]).unwrap();
    store.put_baseline("j", &[row("caf\u{e9}", 5)]).unwrap();
    assert_eq!(
        store.baseline("j").unwrap(),
        vec![row("caf\u{e9}", 5), row("docs/REPORT.txt", 3), row("x", 2)]
    );
}

#[test]
fn remove_and_clear_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rows = [row("a", 1), row("b", 1), row("c", 1)];
    store.put_baseline("j", &rows).unwrap();
    store.put_baseline("other", &rows).unwrap();
    store
        .remove_baseline("j", &["A".to_owned(), "c".to_owned(), "missing".to_owned()])
        .unwrap();
    assert_eq!(store.baseline("j").unwrap(), vec![row("b", 1)]);
    store.clear_baseline("j").unwrap();
    assert!(store.baseline("j").unwrap().is_empty());
    assert_eq!(store.baseline("other").unwrap().len(), 3);
}

#[test]
fn snapshot_is_empty_until_applied_then_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.snapshot("j").unwrap(), Snapshot::default());
    let mut folder = item("d", "root", "Folder");
    folder.is_dir = true;
    folder.size = 0;
    folder.etag = None;
    folder.hash = None;
    let mut first = change(vec![item("f", "d", "a.txt"), folder.clone()], &[], "L1");
    first.replace_all = true;
    first.full_scan_at = Some(1_700_000_000);
    store.apply_remote("j", &first).unwrap();
    let snapshot = store.snapshot("j").unwrap();
    assert_eq!(
        snapshot,
        Snapshot {
            drive_id: Some("drive".to_owned()),
            root_id: Some("root".to_owned()),
            delta_link: Some("L1".to_owned()),
            full_scan_at: Some(1_700_000_000),
            items: vec![folder, item("f", "d", "a.txt")],
        }
    );
    // A delta batch: changes, removals and the new link; the full-scan time is kept.
    let mut renamed = item("f", "d", "b.txt");
    renamed.etag = Some("e2".to_owned());
    store
        .apply_remote(
            "j",
            &change(vec![renamed.clone(), item("g", "root", "g")], &["d"], "L2"),
        )
        .unwrap();
    let snapshot = store.snapshot("j").unwrap();
    assert_eq!(snapshot.delta_link.as_deref(), Some("L2"));
    assert_eq!(snapshot.full_scan_at, Some(1_700_000_000));
    assert_eq!(snapshot.items, vec![renamed, item("g", "root", "g")]);
    assert!(store.snapshot("other").unwrap().items.is_empty());
}

#[test]
fn an_id_both_removed_and_upserted_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .apply_remote("j", &change(vec![item("1", "root", "a")], &["1"], "L"))
        .unwrap();
    assert_eq!(ids(&store.snapshot("j").unwrap()), ["1"]);
}

#[test]
fn replace_all_drops_items_not_in_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let old = vec![item("1", "root", "a"), item("2", "root", "b")];
    store.apply_remote("j", &change(old, &[], "L1")).unwrap();
    store
        .apply_remote("other", &change(vec![item("1", "root", "a")], &[], "O"))
        .unwrap();
    let mut full = change(
        vec![item("2", "root", "b"), item("3", "root", "c")],
        &[],
        "L2",
    );
    full.replace_all = true;
    store.apply_remote("j", &full).unwrap();
    assert_eq!(ids(&store.snapshot("j").unwrap()), ["2", "3"]);
    assert_eq!(ids(&store.snapshot("other").unwrap()), ["1"]);
}

#[test]
fn a_failed_batch_changes_neither_items_nor_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let old = vec![item("1", "root", "a"), item("2", "root", "b")];
    store.apply_remote("j", &change(old, &[], "L1")).unwrap();
    let before = store.snapshot("j").unwrap();
    exec(
        &store,
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON remote_item WHEN NEW.id = 'boom'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    );
    let mut bad = change(
        vec![item("3", "root", "c"), item("boom", "root", "x")],
        &["1"],
        "L2",
    );
    bad.replace_all = true;
    bad.full_scan_at = Some(5);
    let err = store.apply_remote("j", &bad).unwrap_err();
    assert!(err.to_string().contains("applying remote changes"), "{err}");
    assert_eq!(store.snapshot("j").unwrap(), before);
}

#[test]
fn the_workers_own_changes_keep_the_link_and_reset_forgets_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .apply_remote("j", &change(vec![item("1", "root", "a")], &[], "L1"))
        .unwrap();
    let mut changed = item("1", "root", "a");
    changed.size = 7;
    store
        .upsert_remote("j", &[changed.clone(), item("2", "root", "b")])
        .unwrap();
    store.remove_remote("j", &["2".to_owned()]).unwrap();
    let snapshot = store.snapshot("j").unwrap();
    assert_eq!(snapshot.items, vec![changed]);
    assert_eq!(snapshot.delta_link.as_deref(), Some("L1"));
    store.reset_remote("j").unwrap();
    assert_eq!(store.snapshot("j").unwrap(), Snapshot::default());
}

#[test]
fn runs_round_trip_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.last_success("j").unwrap(), None);
    let first = store.start_run("j").unwrap();
    let counts = Counts {
        uploaded: 1,
        downloaded: 2,
        deleted_local: 3,
        deleted_remote: 4,
        conflicts: 5,
        skipped: 6,
        errors: 7,
        bytes_up: 8 << 32,
        bytes_down: 9,
    };
    store
        .finish_run(first, &counts, Outcome::Success, None)
        .unwrap();
    let second = store.start_run("j").unwrap();
    let running = store.runs("j", 10).unwrap();
    assert_eq!(running[0].id, second);
    assert_eq!((running[0].ended, running[0].outcome), (None, None));
    store
        .finish_run(
            second,
            &Counts::default(),
            Outcome::Aborted,
            Some("too many deletions"),
        )
        .unwrap();
    store.start_run("other").unwrap();
    let runs = store.runs("j", 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Some(Outcome::Aborted));
    assert_eq!(runs[0].message.as_deref(), Some("too many deletions"));
    let done = &runs[1];
    assert_eq!((done.id, done.job.as_str()), (first, "j"));
    assert_eq!(done.counts, counts);
    assert_eq!(done.outcome, Some(Outcome::Success));
    assert!(done.ended.unwrap() >= done.started);
    assert_eq!(store.last_success("j").unwrap(), done.ended);
    assert_eq!(store.runs("j", 1).unwrap()[0].id, second);
    assert_eq!(store.last_success("other").unwrap(), None);
}

#[test]
fn start_run_closes_unfinished_runs_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let crashed = store.start_run("j").unwrap();
    let elsewhere = store.start_run("other").unwrap();
    exec(&store, "UPDATE run SET started = 1000");
    let next = store.start_run("j").unwrap();
    let runs = store.runs("j", 10).unwrap();
    assert_eq!(runs[0].id, next);
    assert_eq!(runs[0].ended, None);
    assert_eq!(runs[1].id, crashed);
    assert_eq!(runs[1].outcome, Some(Outcome::Interrupted));
    assert_eq!(runs[1].ended, Some(1000));
    assert!(runs[1].message.is_some());
    // Another job's run is not touched.
    let other = &store.runs("other", 10).unwrap()[0];
    assert_eq!((other.id, other.ended), (elsewhere, None));
}

#[test]
fn problems_keep_first_seen_while_they_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .set_problems(
            "j",
            &[
                problem("local", "A.txt", "case collision"),
                problem("remote", "bad:name", "invalid name"),
            ],
        )
        .unwrap();
    store
        .set_problems("other", &[problem("local", "x", "y")])
        .unwrap();
    exec(
        &store,
        "UPDATE problem SET first_seen = 100, last_seen = 100",
    );
    store
        .set_problems(
            "j",
            &[
                problem("local", "A.txt", "case collision with a.txt"),
                problem("local", "bad:name", "invalid name"),
            ],
        )
        .unwrap();
    let problems = store.problems("j").unwrap();
    assert_eq!(problems.len(), 2);
    let (kept, first, last) = &problems[0];
    assert_eq!(
        kept,
        &problem("local", "A.txt", "case collision with a.txt")
    );
    assert_eq!(*first, 100);
    assert!(*last > 100);
    // Same path on the other side is a different problem: new first_seen.
    let (new, first, _) = &problems[1];
    assert_eq!(new, &problem("local", "bad:name", "invalid name"));
    assert!(*first > 100);
    assert_eq!(store.problems("other").unwrap().len(), 1);
    store.set_problems("j", &[]).unwrap();
    assert!(store.problems("j").unwrap().is_empty());
}

#[test]
fn the_lock_is_held_against_another_process_until_released_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir), open(&dir));
    let stale = Duration::from_secs(60);
    assert_eq!(a.try_lock("j", "a", stale).unwrap(), None);
    let holder = b.try_lock("j", "b", stale).unwrap().unwrap();
    assert_eq!(holder.owner, "a");
    assert!(holder.heartbeat >= holder.acquired);
    // Other jobs are independent; the holder may take its own lock again.
    assert_eq!(b.try_lock("k", "b", stale).unwrap(), None);
    assert_eq!(a.try_lock("j", "a", stale).unwrap(), None);
    assert!(a.heartbeat("j", "a").unwrap());
    assert!(!b.heartbeat("j", "b").unwrap());
    assert!(!b.unlock("j", "b").unwrap());
    assert_eq!(b.lock_holder("j").unwrap().unwrap().owner, "a");
    assert!(a.unlock("j", "a").unwrap());
    assert_eq!(b.lock_holder("j").unwrap(), None);
    assert_eq!(b.try_lock("j", "b", stale).unwrap(), None);

    // b stops heartbeating: once the heartbeat is older than stale_after, a takes over.
    let backdate = |secs: i64| {
        let sql = format!("UPDATE lock SET heartbeat = unixepoch() - {secs} WHERE job = 'j'");
        exec(&b, &sql);
    };
    backdate(30);
    assert!(a.try_lock("j", "a", stale).unwrap().is_some());
    backdate(120);
    assert_eq!(a.try_lock("j", "a", stale).unwrap(), None);
    assert_eq!(a.lock_holder("j").unwrap().unwrap().owner, "a");
    // The old owner learns it lost the lock and cannot release the new owner's.
    assert!(!b.heartbeat("j", "b").unwrap());
    assert!(!b.unlock("j", "b").unwrap());
    assert_eq!(b.lock_holder("j").unwrap().unwrap().owner, "a");
}

#[test]
fn exactly_one_of_many_racing_processes_wins_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = Store::path_in(dir.path());
    let contenders = 8;
    let barrier = Arc::new(Barrier::new(contenders));
    // Each thread opens its own connection, as separate processes would.
    let handles: Vec<_> = (0..contenders)
        .map(|n| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                // Opening a new file at the same moment is part of the race.
                let store = Store::open(&path);
                barrier.wait();
                let store = store.unwrap();
                let owner = format!("p{n}");
                store
                    .try_lock("j", &owner, Duration::from_secs(60))
                    .unwrap()
                    .is_none()
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
}

#[test]
fn errors_name_the_operation_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let err = Store::open(&file.join("sync.db")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("creating the state directory"), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_memory_copy_starts_equal_and_writes_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_baseline("j", &[row("a", 1)]).unwrap();
    let copy = store.copy_in_memory().unwrap();
    assert_eq!(copy.baseline("j").unwrap(), vec![row("a", 1)]);
    copy.put_baseline("j", &[row("b", 1)]).unwrap();
    copy.start_run("j").unwrap();
    assert_eq!(
        copy.try_lock("j", "dry", Duration::from_secs(60)).unwrap(),
        None
    );
    assert_eq!(store.baseline("j").unwrap(), vec![row("a", 1)]);
    assert!(store.runs("j", 10).unwrap().is_empty());
    assert_eq!(store.lock_holder("j").unwrap(), None);
}

#[test]
fn a_lock_held_by_a_dead_process_of_this_host_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = Duration::from_secs(3600);
    let owner = format!("pid {dead} on {host}");
    assert_eq!(store.try_lock("j", &owner, stale).unwrap(), None);
    assert_eq!(store.try_lock("j", "next", stale).unwrap(), None);
    // A live process (this one), or one on another host, keeps its lock.
    let alive = format!("pid {} on {host}", std::process::id());
    assert_eq!(store.try_lock("k", &alive, stale).unwrap(), None);
    assert!(store.try_lock("k", "next", stale).unwrap().is_some());
    let remote = format!("pid {dead} on another-{host}");
    assert_eq!(store.try_lock("l", &remote, stale).unwrap(), None);
    assert!(store.try_lock("l", "next", stale).unwrap().is_some());
}
