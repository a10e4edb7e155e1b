use std::io::Write;

use super::*;

fn origin() -> Origin {
    Origin {
        user: "alice".into(),
        protocol: "sftp".into(),
        peer: None,
        vpath: "/in/a.txt".into(),
    }
}

/// Spools `bytes` and queues them for `path`; answers the id.
fn queue_file(queue: &Queue, path: &str, bytes: &[u8]) -> i64 {
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
    queue.enqueue(new, false).unwrap().0
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
        .filter(|n| !n.starts_with("queue.db"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_queued_file_survives_reopening_and_strays_are_swept() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    let id = queue_file(&queue, "/In/a.txt", b"hello");
    // A spool file never queued (the client vanished mid-upload) and a file no row names.
    let (_, stray) = queue.spool().unwrap();
    std::fs::write(Queue::dir_in(state.path()).join("u-orphan"), b"x").unwrap();
    drop(queue);

    let queue = Queue::open(state.path()).unwrap();
    queue.recover().unwrap();
    let rows = queue.list().unwrap();
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

#[test]
fn a_row_whose_file_is_gone_is_dropped_on_recovery() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    let kept = queue_file(&queue, "/In/kept.txt", b"kept");
    let gone = queue_file(&queue, "/In/gone.txt", b"gone");
    let file = queue
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.id == gone)
        .unwrap()
        .file;
    drop(queue);
    std::fs::remove_file(Queue::dir_in(state.path()).join(file)).unwrap();

    let queue = Queue::open(state.path()).unwrap();
    queue.recover().unwrap();
    let ids: Vec<i64> = queue.list().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [kept]);
    assert!(queue.pending("sp", "/In/gone.txt").is_none());
}

#[test]
fn a_file_moved_to_quarantine_before_a_crash_is_tried_again() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    let id = queue_file(&queue, "/In/a.txt", b"kept");
    let file = queue.list().unwrap()[0].file.clone();
    drop(queue);
    // The crash came between quarantining's move of the file and its row's update.
    let dir = Queue::dir_in(state.path());
    std::fs::create_dir_all(dir.join("quarantine")).unwrap();
    std::fs::rename(dir.join(file), dir.join(format!("quarantine/{id}-a.txt"))).unwrap();

    let queue = Queue::open(state.path()).unwrap();
    queue.recover().unwrap();
    let rows = queue.list().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].file, format!("quarantine/{id}-a.txt"));
    assert!(rows[0].failed.is_none(), "in line again");
    let pending = queue.pending("sp", "/In/a.txt").expect("visible");
    assert_eq!(std::fs::read(&pending.file).unwrap(), b"kept");
}

#[test]
fn a_second_upload_supersedes_a_first_not_yet_started() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    queue_file(&queue, "/In/a.txt", b"first");
    let second = queue_file(&queue, "/In/a.txt", b"second!");
    let rows = queue.list().unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [second]);
    assert_eq!(queue.pending("sp", "/In/a.txt").unwrap().size, 7);
    assert_eq!(
        files_in(&Queue::dir_in(state.path())).len(),
        1,
        "the first file is gone"
    );
}

#[test]
fn renaming_and_deleting_queued_files_change_the_queue_only() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    queue_file(&queue, "/In/a.filepart", b"content");
    queue_file(&queue, "/In/gone.txt", b"x");
    // Not started: the upload goes straight to the new name; an older SharePoint file at the
    // old name (if any) is the caller's to delete.
    let stale = queue
        .rename("sp", "/In/a.filepart", "/In/a.txt", "/a.txt")
        .unwrap();
    assert_eq!(stale, Some(Some("/In/a.filepart".to_string())));
    assert!(queue.pending("sp", "/In/a.filepart").is_none());
    let rows = queue.list().unwrap();
    assert_eq!(rows[0].path, "/In/a.txt");
    assert_eq!(rows[0].origin.vpath, "/a.txt");
    assert_eq!(
        queue.remove("sp", "/In/gone.txt").unwrap(),
        Some(Some("/In/gone.txt".to_string()))
    );
    assert!(queue.pending("sp", "/In/gone.txt").is_none());
    assert_eq!(queue.rename("sp", "/In/none", "/In/x", "/x").unwrap(), None);
    assert_eq!(queue.remove("sp", "/In/none").unwrap(), None);
    let names: Vec<String> = queue
        .pending_children("sp", "/In")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["a.txt"]);
    assert!(queue.has_pending_below("sp", "/In"));
    assert!(!queue.has_pending_below("sp", "/Other"));
    assert_eq!(queue.list().unwrap().len(), 1);
}

#[tokio::test]
async fn only_quarantined_uploads_can_be_retried_or_discarded() {
    let state = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(state.path());
    let queue = Queue::open(state.path()).unwrap();
    let id = queue_file(&queue, "/In/a.txt", b"content");
    assert!(
        !queue.retry(id, &paths).await.unwrap(),
        "still waiting: nothing to retry"
    );
    assert!(!queue.discard(id, &paths).await.unwrap());
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
    assert!(queue.retry(id, &paths).await.unwrap());
    assert!(queue.pending("sp", "/In/a.txt").is_some());
    assert_eq!(queue.stats().depth, 1);
}

#[test]
fn the_upload_url_stays_out_of_debug_output() {
    let state = tempfile::tempdir().unwrap();
    let queue = Queue::open(state.path()).unwrap();
    let id = queue_file(&queue, "/In/a.txt", b"content");
    queue
        .set_url(id, "https://upload.example/session?tempauth=SECRET")
        .unwrap();
    let row = &queue.list().unwrap()[0];
    assert!(row.upload_url.is_some());
    let shown = format!("{row:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("/In/a.txt"), "{shown}");
}
