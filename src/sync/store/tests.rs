use super::*;
use crate::sync::{Baseline, Counts, Outcome, Problem, RemoteItem};
use std::time::Duration;

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&Paths::in_dir(dir.path())).await.unwrap()
}

/// Runs raw SQL on the store (to backdate times or inject failures).
async fn exec(store: &Store, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(store.pool())
        .await
        .unwrap();
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

#[tokio::test]
async fn a_reopened_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir).await;
        store.put_baseline("j", &[row("a.txt", 1)]).await.unwrap();
        store
            .apply_remote("j", &change(vec![item("1", "root", "a.txt")], &[], "L1"))
            .await
            .unwrap();
        let run = store.start_run("j").await.unwrap();
        store
            .finish_run("j", run, &Counts::default(), Outcome::Success, None)
            .await
            .unwrap();
        store
            .set_problems("j", &[problem("local", "A.txt", "case collision")])
            .await
            .unwrap();
        assert_eq!(
            store
                .try_lock("j", "me", Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
    }
    let store = open(&dir).await;
    assert_eq!(store.baseline("j").await.unwrap(), vec![row("a.txt", 1)]);
    let snapshot = store.snapshot("j").await.unwrap();
    assert_eq!(snapshot.delta_link.as_deref(), Some("L1"));
    assert_eq!(ids(&snapshot), ["1"]);
    assert_eq!(store.runs("j", 10).await.unwrap().len(), 1);
    assert!(store.last_success("j").await.unwrap().is_some());
    assert_eq!(store.problems("j").await.unwrap().len(), 1);
    assert_eq!(store.lock_holder("j").await.unwrap().unwrap().owner, "me");
}

#[tokio::test]
async fn baseline_round_trips_ordered_by_path_and_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut folder = row("b", 0);
    folder.is_dir = true;
    folder.remote_etag = None;
    folder.remote_ctag = None;
    folder.remote_hash = None;
    folder.local_hash = Some("lh".to_owned());
    let big = row("a/big.bin", u64::from(u32::MAX) * 4);
    store
        .put_baseline("j", &[folder.clone(), big.clone()])
        .await
        .unwrap();
    store.put_baseline("other", &[row("z", 1)]).await.unwrap();
    assert_eq!(store.baseline("j").await.unwrap(), vec![big, folder]);
    assert_eq!(store.baseline("other").await.unwrap(), vec![row("z", 1)]);
    assert!(store.baseline("none").await.unwrap().is_empty());
}

#[tokio::test]
async fn put_baseline_upserts_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .put_baseline("j", &[row("Docs/Report.txt", 1), row("x", 1)])
        .await
        .unwrap();
    store.put_baseline("j", &[row("x", 2)]).await.unwrap();
    // The same name in another case (and another Unicode form) is the same row.
    store
        .put_baseline("j", &[row("docs/REPORT.txt", 3)])
        .await
        .unwrap();
    store
        .put_baseline("j", &[row("Cafe\u{301}", 1)])
        .await
        .unwrap();
    store
        .put_baseline("j", &[row("caf\u{e9}", 5)])
        .await
        .unwrap();
    assert_eq!(
        store.baseline("j").await.unwrap(),
        vec![row("caf\u{e9}", 5), row("docs/REPORT.txt", 3), row("x", 2)]
    );
}

#[tokio::test]
async fn remove_and_clear_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let rows = [row("a", 1), row("b", 1), row("c", 1)];
    store.put_baseline("j", &rows).await.unwrap();
    store.put_baseline("other", &rows).await.unwrap();
    store
        .remove_baseline("j", &["A".to_owned(), "c".to_owned(), "missing".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.baseline("j").await.unwrap(), vec![row("b", 1)]);
    store.clear_baseline("j").await.unwrap();
    assert!(store.baseline("j").await.unwrap().is_empty());
    assert_eq!(store.baseline("other").await.unwrap().len(), 3);
}

#[tokio::test]
async fn snapshot_is_empty_until_applied_then_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.snapshot("j").await.unwrap(), Snapshot::default());
    let mut folder = item("d", "root", "Folder");
    folder.is_dir = true;
    folder.size = 0;
    folder.etag = None;
    folder.hash = None;
    let mut first = change(vec![item("f", "d", "a.txt"), folder.clone()], &[], "L1");
    first.replace_all = true;
    first.full_scan_at = Some(1_700_000_000);
    store.apply_remote("j", &first).await.unwrap();
    let snapshot = store.snapshot("j").await.unwrap();
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
        .await
        .unwrap();
    let snapshot = store.snapshot("j").await.unwrap();
    assert_eq!(snapshot.delta_link.as_deref(), Some("L2"));
    assert_eq!(snapshot.full_scan_at, Some(1_700_000_000));
    assert_eq!(snapshot.items, vec![renamed, item("g", "root", "g")]);
    assert!(store.snapshot("other").await.unwrap().items.is_empty());
}

#[tokio::test]
async fn an_id_both_removed_and_upserted_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .apply_remote("j", &change(vec![item("1", "root", "a")], &["1"], "L"))
        .await
        .unwrap();
    assert_eq!(ids(&store.snapshot("j").await.unwrap()), ["1"]);
}

#[tokio::test]
async fn replace_all_drops_items_not_in_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old = vec![item("1", "root", "a"), item("2", "root", "b")];
    store
        .apply_remote("j", &change(old, &[], "L1"))
        .await
        .unwrap();
    store
        .apply_remote("other", &change(vec![item("1", "root", "a")], &[], "O"))
        .await
        .unwrap();
    let mut full = change(
        vec![item("2", "root", "b"), item("3", "root", "c")],
        &[],
        "L2",
    );
    full.replace_all = true;
    store.apply_remote("j", &full).await.unwrap();
    assert_eq!(ids(&store.snapshot("j").await.unwrap()), ["2", "3"]);
    assert_eq!(ids(&store.snapshot("other").await.unwrap()), ["1"]);
}

#[tokio::test]
async fn a_failed_batch_changes_neither_items_nor_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old = vec![item("1", "root", "a"), item("2", "root", "b")];
    store
        .apply_remote("j", &change(old, &[], "L1"))
        .await
        .unwrap();
    let before = store.snapshot("j").await.unwrap();
    exec(
        &store,
        "CREATE TRIGGER boom BEFORE INSERT ON sync_remote_items WHEN NEW.id = 'boom'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .await;
    let mut bad = change(
        vec![item("3", "root", "c"), item("boom", "root", "x")],
        &["1"],
        "L2",
    );
    bad.replace_all = true;
    bad.full_scan_at = Some(5);
    let err = store.apply_remote("j", &bad).await.unwrap_err();
    assert!(err.to_string().contains("applying remote changes"), "{err}");
    assert_eq!(store.snapshot("j").await.unwrap(), before);
}

#[tokio::test]
async fn the_workers_own_changes_keep_the_link_and_reset_forgets_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .apply_remote("j", &change(vec![item("1", "root", "a")], &[], "L1"))
        .await
        .unwrap();
    let mut changed = item("1", "root", "a");
    changed.size = 7;
    store
        .upsert_remote("j", &[changed.clone(), item("2", "root", "b")])
        .await
        .unwrap();
    store.remove_remote("j", &["2".to_owned()]).await.unwrap();
    let snapshot = store.snapshot("j").await.unwrap();
    assert_eq!(snapshot.items, vec![changed]);
    assert_eq!(snapshot.delta_link.as_deref(), Some("L1"));
    store.reset_remote("j").await.unwrap();
    assert_eq!(store.snapshot("j").await.unwrap(), Snapshot::default());
}

#[tokio::test]
async fn runs_round_trip_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.last_success("j").await.unwrap(), None);
    let first = store.start_run("j").await.unwrap();
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
        .finish_run("j", first, &counts, Outcome::Success, None)
        .await
        .unwrap();
    let second = store.start_run("j").await.unwrap();
    let running = store.runs("j", 10).await.unwrap();
    assert_eq!(running[0].id, second);
    assert_eq!((running[0].ended, running[0].outcome), (None, None));
    store
        .finish_run(
            "j",
            second,
            &Counts::default(),
            Outcome::Aborted,
            Some("too many deletions"),
        )
        .await
        .unwrap();
    store.start_run("other").await.unwrap();
    let runs = store.runs("j", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Some(Outcome::Aborted));
    assert_eq!(runs[0].message.as_deref(), Some("too many deletions"));
    let done = &runs[1];
    assert_eq!((done.id, done.job.as_str()), (first, "j"));
    assert_eq!(done.counts, counts);
    assert_eq!(done.outcome, Some(Outcome::Success));
    assert!(done.ended.unwrap() >= done.started);
    assert_eq!(store.last_success("j").await.unwrap(), done.ended);
    assert_eq!(store.runs("j", 1).await.unwrap()[0].id, second);
    assert_eq!(store.last_success("other").await.unwrap(), None);
}

#[tokio::test]
async fn start_run_closes_unfinished_runs_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let crashed = store.start_run("j").await.unwrap();
    let elsewhere = store.start_run("other").await.unwrap();
    exec(&store, "UPDATE sync_runs SET started = 1000").await;
    let next = store.start_run("j").await.unwrap();
    let runs = store.runs("j", 10).await.unwrap();
    assert_eq!(runs[0].id, next);
    assert_eq!(runs[0].ended, None);
    assert_eq!(runs[1].id, crashed);
    assert_eq!(runs[1].outcome, Some(Outcome::Interrupted));
    assert_eq!(runs[1].ended, Some(1000));
    assert!(runs[1].message.is_some());
    // Another job's run is not touched.
    let other = &store.runs("other", 10).await.unwrap()[0];
    assert_eq!((other.id, other.ended), (elsewhere, None));
}

#[tokio::test]
async fn problems_keep_first_seen_while_they_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .set_problems(
            "j",
            &[
                problem("local", "A.txt", "case collision"),
                problem("remote", "bad:name", "invalid name"),
            ],
        )
        .await
        .unwrap();
    store
        .set_problems("other", &[problem("local", "x", "y")])
        .await
        .unwrap();
    exec(
        &store,
        "UPDATE sync_problems SET first_seen = 100, last_seen = 100",
    )
    .await;
    store
        .set_problems(
            "j",
            &[
                problem("local", "A.txt", "case collision with a.txt"),
                problem("local", "bad:name", "invalid name"),
            ],
        )
        .await
        .unwrap();
    let problems = store.problems("j").await.unwrap();
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
    assert_eq!(store.problems("other").await.unwrap().len(), 1);
    store.set_problems("j", &[]).await.unwrap();
    assert!(store.problems("j").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_lock_is_held_against_another_process_until_released_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir).await, open(&dir).await);
    let stale = Duration::from_secs(60);
    assert_eq!(a.try_lock("j", "a", stale).await.unwrap(), None);
    let holder = b.try_lock("j", "b", stale).await.unwrap().unwrap();
    assert_eq!(holder.owner, "a");
    assert!(holder.heartbeat >= holder.acquired);
    // Other jobs are independent; the holder may take its own lock again.
    assert_eq!(b.try_lock("k", "b", stale).await.unwrap(), None);
    assert_eq!(a.try_lock("j", "a", stale).await.unwrap(), None);
    assert!(a.heartbeat("j", "a").await.unwrap());
    assert!(!b.heartbeat("j", "b").await.unwrap());
    assert!(!b.unlock("j", "b").await.unwrap());
    assert_eq!(b.lock_holder("j").await.unwrap().unwrap().owner, "a");
    assert!(a.unlock("j", "a").await.unwrap());
    assert_eq!(b.lock_holder("j").await.unwrap(), None);
    assert_eq!(b.try_lock("j", "b", stale).await.unwrap(), None);

    // b stops heartbeating: once the heartbeat is older than stale_after, a takes over.
    let backdate = async |secs: i64| {
        let sql = format!("UPDATE sync_locks SET heartbeat = unixepoch() - {secs} WHERE job = 'j'");
        exec(&b, &sql).await;
    };
    backdate(30).await;
    assert!(a.try_lock("j", "a", stale).await.unwrap().is_some());
    backdate(120).await;
    assert_eq!(a.try_lock("j", "a", stale).await.unwrap(), None);
    assert_eq!(a.lock_holder("j").await.unwrap().unwrap().owner, "a");
    // The old owner learns it lost the lock and cannot release the new owner's.
    assert!(!b.heartbeat("j", "b").await.unwrap());
    assert!(!b.unlock("j", "b").await.unwrap());
    assert_eq!(b.lock_holder("j").await.unwrap().unwrap().owner, "a");
}

#[tokio::test]
async fn a_memory_copy_starts_equal_and_writes_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.put_baseline("j", &[row("a", 1)]).await.unwrap();
    let copy = store.copy_of("j").await.unwrap();
    assert_eq!(copy.baseline("j").await.unwrap(), vec![row("a", 1)]);
    copy.put_baseline("j", &[row("b", 1)]).await.unwrap();
    copy.start_run("j").await.unwrap();
    assert_eq!(
        copy.try_lock("j", "dry", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.baseline("j").await.unwrap(), vec![row("a", 1)]);
    assert!(store.runs("j", 10).await.unwrap().is_empty());
    assert_eq!(store.lock_holder("j").await.unwrap(), None);
}

#[tokio::test]
async fn a_lock_held_by_a_dead_process_of_this_host_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = Duration::from_secs(3600);
    let owner = format!("pid {dead} on {host}");
    assert_eq!(store.try_lock("j", &owner, stale).await.unwrap(), None);
    assert_eq!(store.try_lock("j", "next", stale).await.unwrap(), None);
    // A live process (this one), or one on another host, keeps its lock.
    let alive = format!("pid {} on {host}", std::process::id());
    assert_eq!(store.try_lock("k", &alive, stale).await.unwrap(), None);
    assert!(store.try_lock("k", "next", stale).await.unwrap().is_some());
    let remote = format!("pid {dead} on another-{host}");
    assert_eq!(store.try_lock("l", &remote, stale).await.unwrap(), None);
    assert!(store.try_lock("l", "next", stale).await.unwrap().is_some());
}

#[tokio::test]
async fn exactly_one_of_many_racing_instances_wins_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let contenders = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
    // Each task opens its own store (its own connections), as separate instances would.
    let tasks: Vec<_> = (0..contenders)
        .map(|n| {
            let (state, barrier) = (dir.path().to_path_buf(), barrier.clone());
            tokio::spawn(async move {
                let store = Store::open(&Paths::in_dir(&state)).await.unwrap();
                barrier.wait().await;
                let owner = format!("p{n}");
                store
                    .try_lock("j", &owner, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_none()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// The schema of `sync.db` as earlier versions made it.
const OLD_SCHEMA: &str = "PRAGMA user_version = 1;
    CREATE TABLE baseline (
        job TEXT NOT NULL, key TEXT NOT NULL, path TEXT NOT NULL, is_dir INTEGER NOT NULL,
        remote_id TEXT NOT NULL, remote_etag TEXT, remote_ctag TEXT,
        remote_size INTEGER NOT NULL, remote_hash TEXT, remote_modified INTEGER NOT NULL,
        local_size INTEGER NOT NULL, local_modified INTEGER NOT NULL, local_hash TEXT,
        PRIMARY KEY (job, key)
    ) WITHOUT ROWID;
    CREATE TABLE remote_item (
        job TEXT NOT NULL, id TEXT NOT NULL, parent_id TEXT NOT NULL, name TEXT NOT NULL,
        is_dir INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT, ctag TEXT, hash TEXT,
        modified INTEGER NOT NULL,
        PRIMARY KEY (job, id)
    ) WITHOUT ROWID;
    CREATE TABLE remote_snapshot (
        job TEXT PRIMARY KEY, drive_id TEXT NOT NULL, root_id TEXT NOT NULL,
        delta_link TEXT, full_scan_at INTEGER
    );
    CREATE TABLE run (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL,
        started INTEGER NOT NULL, ended INTEGER,
        uploaded INTEGER NOT NULL DEFAULT 0, downloaded INTEGER NOT NULL DEFAULT 0,
        deleted_local INTEGER NOT NULL DEFAULT 0, deleted_remote INTEGER NOT NULL DEFAULT 0,
        conflicts INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0,
        outcome TEXT, message TEXT
    );
    CREATE TABLE problem (
        job TEXT NOT NULL, side TEXT NOT NULL CHECK (side IN ('local', 'remote')),
        path TEXT NOT NULL, reason TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
        PRIMARY KEY (job, side, path)
    ) WITHOUT ROWID;
    CREATE TABLE lock (
        job TEXT PRIMARY KEY, owner TEXT NOT NULL,
        acquired INTEGER NOT NULL, heartbeat INTEGER NOT NULL
    );";

/// A `sync.db` an earlier version left: everything in it is in the store after the first
/// opening (runs keep their numbers, problems their times; the lock is not carried over), the
/// file is left as `.imported`, and a copy put back is not imported again.
#[tokio::test]
async fn the_sync_db_of_an_earlier_version_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.db");
    {
        let old = rusqlite::Connection::open(&file).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        old.execute_batch(OLD_SCHEMA).unwrap();
        old.execute_batch(
            "INSERT INTO baseline VALUES ('j', 'a.txt', 'A.txt', 0, 'id-a', '\"e1\"', 'c1', 42, 'rh',
                1700000000, 42, 1700000001, NULL);
             INSERT INTO remote_snapshot VALUES ('j', 'drive', 'root', 'L9', 1700000002);
             INSERT INTO remote_item VALUES ('j', 'id-a', 'root', 'A.txt', 0, 42, 'e', NULL, 'h',
                1700000000);
             INSERT INTO run (job, started, ended, uploaded, bytes_up, outcome, message)
                VALUES ('j', 100, 110, 3, 8589934592, 'success', NULL);
             INSERT INTO run (job, started) VALUES ('k', 200);
             INSERT INTO run (job, started, ended, outcome, message)
                VALUES ('j', 300, 310, 'aborted', 'too many deletions');
             INSERT INTO problem VALUES ('j', 'remote', 'bad:name', 'invalid name', 50, 60);
             INSERT INTO lock VALUES ('j', 'pid 1 on gone', 1, 1);",
        )
        .unwrap();
    }
    let store = open(&dir).await;
    assert!(!file.exists());
    assert!(dir.path().join("sync.db.imported").exists());
    assert!(!dir.path().join("sync.db-wal").exists());
    let baseline = store.baseline("j").await.unwrap();
    assert_eq!(baseline.len(), 1);
    assert_eq!(
        (baseline[0].path.as_str(), baseline[0].remote_size),
        ("A.txt", 42)
    );
    assert_eq!(baseline[0].remote_etag.as_deref(), Some("\"e1\""));
    let snapshot = store.snapshot("j").await.unwrap();
    assert_eq!(snapshot.delta_link.as_deref(), Some("L9"));
    assert_eq!(snapshot.full_scan_at, Some(1_700_000_002));
    assert_eq!(ids(&snapshot), ["id-a"]);
    let runs = store.runs("j", 10).await.unwrap();
    let numbers: Vec<i64> = runs.iter().map(|r| r.id).collect();
    assert_eq!(numbers, [3, 1]);
    assert_eq!(runs[1].counts.bytes_up, 8 << 30);
    assert_eq!(runs[0].message.as_deref(), Some("too many deletions"));
    assert_eq!(store.runs("k", 10).await.unwrap()[0].ended, None);
    assert_eq!(store.start_run("j").await.unwrap(), 4, "numbering goes on");
    let problems = store.problems("j").await.unwrap();
    assert_eq!((problems[0].1, problems[0].2), (50, 60));
    assert_eq!(store.lock_holder("j").await.unwrap(), None);

    std::fs::copy(dir.path().join("sync.db.imported"), &file).unwrap();
    let again = open(&dir).await;
    assert_eq!(again.baseline("j").await.unwrap().len(), 1);
    assert_eq!(again.runs("j", 10).await.unwrap().len(), 3);
    assert!(!file.exists());
}

/// A `sync.db` of a schema this version does not know is refused, and left in place.
#[tokio::test]
async fn a_sync_db_of_an_unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.db");
    let old = rusqlite::Connection::open(&file).unwrap();
    old.execute_batch("PRAGMA user_version = 99;").unwrap();
    drop(old);
    let err = Store::open(&Paths::in_dir(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert!(file.exists());
}
