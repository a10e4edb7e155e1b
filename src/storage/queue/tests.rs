use std::io::Write;

use super::*;
use crate::connections::store::Paths;

fn origin() -> Origin {
    Origin {
        user: "alice".into(),
        protocol: "sftp".into(),
        peer: None,
        vpath: "/in/a.txt".into(),
    }
}

/// Spools `bytes` and queues them for `path`; answers the id.
async fn queue_file(queue: &Queue, path: &str, bytes: &[u8]) -> i64 {
    let (mut file, spooled) = queue.spool().unwrap();
    file.write_all(bytes).unwrap();
    let new = NewUpload {
        connection: "sp".into(),
        path: path.into(),
        size: bytes.len() as u64,
        modified: None,
        replace: true,
        spooled,
        origin: origin(),
    };
    queue.enqueue(new, false).await.unwrap().0
}

/// The queue of state directory `state`, its rows in that directory's own store.
async fn open(state: &tempfile::TempDir) -> Arc<Queue> {
    let store = Paths::in_dir(state.path()).store().await.unwrap();
    Queue::open(state.path(), store).await.unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_file()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|n| n != "state.id")
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_queued_file_survives_reopening_and_strays_are_swept() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    let id = queue_file(&queue, "/In/a.txt", b"hello").await;
    // A spool file never queued (the client vanished mid-upload) and a file no row names.
    let (_, stray) = queue.spool().unwrap();
    std::fs::write(Queue::dir_in(state.path()).join("u-orphan"), b"x").unwrap();
    drop(queue);

    let queue = open(&state).await;
    queue.recover().await.unwrap();
    let rows = queue.list().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].path.as_str()), (id, "/In/a.txt"));
    assert_eq!(rows[0].origin, origin());
    let pending = queue.pending("sp", "/In/a.txt").expect("visible");
    assert_eq!(std::fs::read(&pending.file).unwrap(), b"hello");
    assert!(!stray.exists(), "the stray spool file is gone");
    assert_eq!(
        files_in(&Queue::dir_in(state.path())),
        [rows[0].file.clone()]
    );
}

#[tokio::test]
async fn a_row_whose_file_is_gone_is_dropped_on_recovery() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    let kept = queue_file(&queue, "/In/kept.txt", b"kept").await;
    let gone = queue_file(&queue, "/In/gone.txt", b"gone").await;
    let file = queue
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == gone)
        .unwrap()
        .file;
    drop(queue);
    std::fs::remove_file(Queue::dir_in(state.path()).join(file)).unwrap();

    let queue = open(&state).await;
    queue.recover().await.unwrap();
    let ids: Vec<i64> = queue.list().await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [kept]);
    assert!(queue.pending("sp", "/In/gone.txt").is_none());
}

#[tokio::test]
async fn a_file_moved_to_quarantine_before_a_crash_is_tried_again() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    let id = queue_file(&queue, "/In/a.txt", b"kept").await;
    let file = queue.list().await.unwrap()[0].file.clone();
    drop(queue);
    // The crash came between quarantining's move of the file and its row's update.
    let dir = Queue::dir_in(state.path());
    std::fs::create_dir_all(dir.join("quarantine")).unwrap();
    std::fs::rename(dir.join(file), dir.join(format!("quarantine/{id}-a.txt"))).unwrap();

    let queue = open(&state).await;
    queue.recover().await.unwrap();
    let rows = queue.list().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].file, format!("quarantine/{id}-a.txt"));
    assert!(rows[0].failed.is_none(), "in line again");
    let pending = queue.pending("sp", "/In/a.txt").expect("visible");
    assert_eq!(std::fs::read(&pending.file).unwrap(), b"kept");
}

#[tokio::test]
async fn a_second_upload_supersedes_a_first_not_yet_started() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    queue_file(&queue, "/In/a.txt", b"first").await;
    let second = queue_file(&queue, "/In/a.txt", b"second!").await;
    let rows = queue.list().await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [second]);
    assert_eq!(queue.pending("sp", "/In/a.txt").unwrap().size, 7);
    assert_eq!(
        files_in(&Queue::dir_in(state.path())).len(),
        1,
        "the first file is gone"
    );
}

#[tokio::test]
async fn renaming_and_deleting_queued_files_change_the_queue_only() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    queue_file(&queue, "/In/a.filepart", b"content").await;
    queue_file(&queue, "/In/gone.txt", b"x").await;
    // Not started: the upload goes straight to the new name; an older SharePoint file at the
    // old name (if any) is the caller's to delete.
    let stale = queue
        .rename("sp", "/In/a.filepart", "/In/a.txt", "/a.txt")
        .await
        .unwrap();
    assert_eq!(stale, Some(Some("/In/a.filepart".to_string())));
    assert!(queue.pending("sp", "/In/a.filepart").is_none());
    let rows = queue.list().await.unwrap();
    assert_eq!(rows[0].path, "/In/a.txt");
    assert_eq!(rows[0].origin.vpath, "/a.txt");
    assert_eq!(
        queue.remove("sp", "/In/gone.txt").await.unwrap(),
        Some(Some("/In/gone.txt".to_string()))
    );
    assert!(queue.pending("sp", "/In/gone.txt").is_none());
    assert_eq!(
        queue.rename("sp", "/In/none", "/In/x", "/x").await.unwrap(),
        None
    );
    assert_eq!(queue.remove("sp", "/In/none").await.unwrap(), None);
    let names: Vec<String> = queue
        .pending_children("sp", "/In")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["a.txt"]);
    assert!(queue.has_pending_below("sp", "/In"));
    assert!(!queue.has_pending_below("sp", "/Other"));
    assert_eq!(queue.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn only_quarantined_uploads_can_be_retried_or_discarded() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    let id = queue_file(&queue, "/In/a.txt", b"content").await;
    assert!(
        !queue.retry(id).await.unwrap(),
        "still waiting: nothing to retry"
    );
    assert!(!queue.discard(id).await.unwrap());
    {
        let mut state = queue.state.lock();
        let mut row = state.rows[&id].clone();
        state.quarantine(&queue.dir, &mut row, "refused").unwrap();
    }
    assert!(
        queue.pending("sp", "/In/a.txt").is_none(),
        "quarantined files are not shown"
    );
    assert_eq!(queue.stats().quarantined, 1);
    assert!(queue.retry(id).await.unwrap());
    assert!(queue.pending("sp", "/In/a.txt").is_some());
    assert_eq!(queue.stats().depth, 1);
}

#[tokio::test]
async fn the_upload_url_stays_out_of_debug_output() {
    let state = tempfile::tempdir().unwrap();
    let queue = open(&state).await;
    let id = queue_file(&queue, "/In/a.txt", b"content").await;
    queue
        .set_url(id, "https://upload.example/session?tempauth=SECRET")
        .await
        .unwrap();
    let row = &queue.list().await.unwrap()[0];
    assert!(row.upload_url.is_some());
    let shown = format!("{row:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("/In/a.txt"), "{shown}");
    // Sealed in the store: the URL is nowhere in its files, and reopening reads it back.
    let mut raw = Vec::new();
    for suffix in ["", "-wal"] {
        let file = state.path().join(format!("spgate.db{suffix}"));
        raw.extend(std::fs::read(file).unwrap_or_default());
    }
    assert!(!String::from_utf8_lossy(&raw).contains("tempauth=SECRET"));
    drop(queue);
    let queue = open(&state).await;
    let row = &queue.list().await.unwrap()[0];
    assert_eq!(
        row.upload_url.as_deref(),
        Some("https://upload.example/session?tempauth=SECRET")
    );
}

/// The `queue.db` an earlier version left: its rows are in the store after the first opening
/// (ids, files and progress kept, new files numbered after them), the file is left as
/// `.imported`, and a copy put back is not imported again.
#[tokio::test]
async fn the_queue_db_of_an_earlier_version_is_imported_once() {
    let state = tempfile::tempdir().unwrap();
    let dir = Queue::dir_in(state.path());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("u-old"), b"queued before the upgrade").unwrap();
    {
        let old = rusqlite::Connection::open(dir.join("queue.db")).unwrap();
        old.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE upload (
                id INTEGER PRIMARY KEY AUTOINCREMENT, connection TEXT NOT NULL,
                path TEXT NOT NULL, target TEXT, size INTEGER NOT NULL, modified TEXT,
                replace INTEGER NOT NULL, file TEXT NOT NULL, upload_url TEXT,
                uploaded INTEGER NOT NULL DEFAULT 0, failed TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, queued_at TEXT NOT NULL,
                origin TEXT NOT NULL);
             INSERT INTO upload (id, connection, path, target, size, replace, file, upload_url,
                attempts, queued_at, origin)
             VALUES (41, 'sp', '/In/old.txt', '/In/old.txt', 25, 1, 'u-old',
                'https://upload.example/s?tempauth=OLD', 2, '2026-11-30T08:00:00+00:00',
                '{\"user\":\"alice\",\"protocol\":\"sftp\",\"peer\":null,\"vpath\":\"/old.txt\"}');",
        )
        .unwrap();
    }
    let queue = open(&state).await;
    queue.recover().await.unwrap();
    let rows = queue.list().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.id, row.file.as_str(), row.attempts), (41, "u-old", 2));
    assert_eq!(row.origin.user, "alice");
    assert!(
        row.upload_url
            .as_deref()
            .is_some_and(|u| u.ends_with("OLD"))
    );
    assert!(!dir.join("queue.db").exists() && dir.join("queue.db.imported").exists());
    let pending = queue.pending("sp", "/In/old.txt").expect("still queued");
    assert_eq!(
        std::fs::read(pending.file).unwrap(),
        b"queued before the upgrade"
    );
    assert_eq!(queue_file(&queue, "/In/new.txt", b"new").await, 42);

    drop(queue);
    std::fs::copy(dir.join("queue.db.imported"), dir.join("queue.db")).unwrap();
    let queue = open(&state).await;
    assert_eq!(queue.list().await.unwrap().len(), 2, "not imported twice");
}

/// The store stops answering after a file was queued; a second upload to the same path is
/// refused at its close. The first file, whose row is still in the store, is not removed: it
/// is there, and queued, after a restart.
#[tokio::test]
async fn a_store_that_stops_answering_loses_no_queued_file() {
    let state = tempfile::tempdir().unwrap();
    let store = Paths::in_dir(state.path()).store().await.unwrap();
    let queue = Queue::open(state.path(), store.clone()).await.unwrap();
    let first = queue_file(&queue, "/In/a.txt", b"first").await;
    store.close().await;
    let (mut file, spooled) = queue.spool().unwrap();
    file.write_all(b"second").unwrap();
    let new = NewUpload {
        connection: "sp".into(),
        path: "/In/a.txt".into(),
        size: 6,
        modified: None,
        replace: true,
        spooled,
        origin: origin(),
    };
    assert!(queue.enqueue(new, false).await.is_err(), "refused at close");
    drop(queue);

    let queue = open(&state).await;
    queue.recover().await.unwrap();
    let rows = queue.list().await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
    let pending = queue
        .pending("sp", "/In/a.txt")
        .expect("the first file is queued");
    assert_eq!(std::fs::read(pending.file).unwrap(), b"first");
}
