//! The two-way decision table of SYNC.md, one test per cell: a first run sets the baseline,
//! then one or both sides change and a second run must do exactly what the cell says. Results
//! are checked on disk and through the simulator's Graph API; transfers through its statistics.

mod common;
mod sync_support;

use sync_support::{Env, Ran, conflict_copies};

/// Files that stay as they are, so that one deletion stays under the max-delete guard.
const ANCHORS: [&str; 3] = ["anchor1.txt", "anchor2.txt", "anchor3.txt"];

/// A two-way job whose first run uploaded `f.txt` (`base`, an hour old) and the anchors.
async fn synced(base: &[u8]) -> Env {
    synced_with(base, "").await
}

/// [`synced`] with extra lines for the job's configuration.
async fn synced_with(base: &[u8], extra: &str) -> Env {
    let env = Env::new("two-way", extra).await;
    env.write("f.txt", base, 3600);
    for anchor in ANCHORS {
        env.write(anchor, anchor.as_bytes(), 3600);
    }
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 4, "{}", ran.out);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), base);
    env
}

/// A run whose transfers are counted: the run, and the upload and download requests the
/// simulator saw (a download is two: the content request and its redirect target).
async fn counted(env: &Env) -> (Ran, u64, u64) {
    env.reset_stats().await;
    let ran = env.sync_ok(&[]).await;
    let uploads = env.uploads_started().await;
    let downloads = env.stat("download").await;
    (ran, uploads, downloads)
}

/// Asserts that the summary counts only what `expected` names (label, count).
fn only(ran: &Ran, expected: &[(&str, u64)]) {
    for label in [
        "uploaded",
        "downloaded",
        "deleted on SharePoint",
        "deleted locally",
        "conflict",
        "skipped",
        "error",
    ] {
        let want = expected
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| *n);
        assert_eq!(ran.count(label), want, "{label} in:\n{}", ran.out);
    }
}

/// Asserts that both sides hold the anchors, untouched.
async fn anchors_intact(env: &Env) {
    for anchor in ANCHORS {
        assert_eq!(env.read(anchor).unwrap(), anchor.as_bytes(), "{anchor}");
        assert_eq!(
            env.remote_bytes(anchor).await.unwrap(),
            anchor.as_bytes(),
            "{anchor}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn new_local_and_absent_remote_is_uploaded() {
    let env = synced(b"base").await;
    env.write("dir/new.txt", b"made here", 10);
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("uploaded", 1)]);
    assert_eq!((uploads, downloads), (1, 0));
    assert_eq!(env.remote_bytes("dir/new.txt").await.unwrap(), b"made here");
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_local_and_new_remote_is_downloaded_with_the_remote_time() {
    let env = synced(b"base").await;
    let item = env.put_remote("dir/new.txt", b"made there").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("downloaded", 1)]);
    assert!(uploads == 0 && downloads > 0, "{uploads} {downloads}");
    assert_eq!(env.read("dir/new.txt").unwrap(), b"made there");
    let remote_time = chrono::DateTime::parse_from_rfc3339(
        item["fileSystemInfo"]["lastModifiedDateTime"]
            .as_str()
            .expect("lastModifiedDateTime"),
    )
    .expect("a time")
    .timestamp();
    let local_time = std::fs::metadata(env.lp("dir/new.txt"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (local_time - remote_time).abs() <= 1,
        "{local_time} vs {remote_time}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_on_both_sides_with_the_same_content_is_recorded_without_a_transfer() {
    // On the first run...
    let env = Env::new("two-way", "").await;
    env.write("same.txt", b"identical", 100);
    env.put_remote("same.txt", b"identical").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    // ...and on a later one.
    env.write("later.txt", b"also identical", 100);
    env.put_remote("later.txt", b"also identical").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    // Recorded: the next run has nothing to say about either.
    let (ran, _, _) = counted(&env).await;
    assert!(
        !ran.out.contains("same.txt") && !ran.out.contains("later.txt"),
        "{}",
        ran.out
    );
    assert_eq!(env.local_files(), ["later.txt", "same.txt"]);
    assert_eq!(env.remote_files().await, ["later.txt", "same.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_on_both_sides_with_different_content_is_a_conflict_keeping_both() {
    let env = Env::new("two-way", "").await;
    env.write("dir/d.txt", b"local version", 3600);
    env.put_remote("dir/d.txt", b"remote version").await;
    let (ran, _, _) = counted(&env).await;
    only(&ran, &[("conflict", 1), ("uploaded", 1), ("downloaded", 1)]);
    // The remote one is newer and keeps the name; the local one moves aside on both sides.
    assert_eq!(env.read("dir/d.txt").unwrap(), b"remote version");
    assert_eq!(
        env.remote_bytes("dir/d.txt").await.unwrap(),
        b"remote version"
    );
    let local = conflict_copies(&env.local_files(), "dir/d.txt");
    let remote = conflict_copies(&env.remote_files().await, "dir/d.txt");
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local, remote);
    assert_eq!(env.read(&local[0]).unwrap(), b"local version");
    assert_eq!(env.remote_bytes(&local[0]).await.unwrap(), b"local version");
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_local_and_unchanged_remote_is_uploaded() {
    let env = synced(b"base").await;
    env.write("f.txt", b"edited here", 0);
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("uploaded", 1)]);
    assert_eq!((uploads, downloads), (1, 0));
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"edited here");
    assert_eq!(env.read("f.txt").unwrap(), b"edited here");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_touch_is_not_an_upload_but_a_same_size_edit_is() {
    let env = synced(b"base").await;
    sync_support::set_age(&env.lp("f.txt"), 60);
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    // The new time is the baseline now: no hashing question again, and still no transfer.
    let (ran, uploads, _) = counted(&env).await;
    assert!(!ran.out.contains("f.txt"), "{}", ran.out);
    assert_eq!(uploads, 0);
    // Same size, new time, other bytes: the hash tells it is a change.
    env.write("f.txt", b"BASE", 30);
    let (ran, uploads, _) = counted(&env).await;
    only(&ran, &[("uploaded", 1)]);
    assert_eq!(uploads, 1);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"BASE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_time_change_alone_is_not_a_download() {
    let env = synced(b"base").await;
    env.set_remote_age("f.txt", 7200).await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    assert_eq!(env.read("f.txt").unwrap(), b"base");
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_local_and_changed_remote_is_downloaded() {
    let env = synced(b"base").await;
    env.put_remote("f.txt", b"edited there").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("downloaded", 1)]);
    assert!(uploads == 0 && downloads > 0, "{uploads} {downloads}");
    assert_eq!(env.read("f.txt").unwrap(), b"edited there");
    let again = env.sync_ok(&[]).await;
    only(&again, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_on_both_sides_to_the_same_content_is_recorded_without_a_transfer() {
    let env = synced(b"base").await;
    env.write("f.txt", b"agreed edit", 0);
    env.put_remote("f.txt", b"agreed edit").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    let (ran, uploads, downloads) = counted(&env).await;
    assert!(!ran.out.contains("f.txt"), "{}", ran.out);
    assert_eq!((uploads, downloads), (0, 0));
    assert_eq!(env.read("f.txt").unwrap(), b"agreed edit");
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"agreed edit");
    assert!(conflict_copies(&env.local_files(), "f.txt").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_on_both_sides_differently_is_a_conflict_keeping_both() {
    let env = synced(b"base").await;
    env.write("f.txt", b"local edit", 1800);
    env.put_remote("f.txt", b"remote edit!").await;
    let (ran, _, _) = counted(&env).await;
    only(&ran, &[("conflict", 1), ("uploaded", 1), ("downloaded", 1)]);
    assert_eq!(env.read("f.txt").unwrap(), b"remote edit!");
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"remote edit!");
    let local = conflict_copies(&env.local_files(), "f.txt");
    assert_eq!(local, conflict_copies(&env.remote_files().await, "f.txt"));
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(env.read(&local[0]).unwrap(), b"local edit");
    assert_eq!(env.remote_bytes(&local[0]).await.unwrap(), b"local edit");
    // Settled: the next run changes nothing.
    let again = env.sync_ok(&[]).await;
    only(&again, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_local_and_unchanged_remote_deletes_the_remote_file() {
    let env = synced(b"base").await;
    env.remove("f.txt");
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("deleted on SharePoint", 1)]);
    assert_eq!((uploads, downloads), (0, 0));
    assert_eq!(env.remote_bytes("f.txt").await, None);
    assert!(env.read("f.txt").is_none());
    anchors_intact(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_deleted_on_one_side_is_deleted_on_the_other() {
    let env = synced(b"base").await;
    env.write("gone/a.txt", b"a", 3600);
    env.write("gone/deep/b.txt", b"b", 3600);
    env.put_remote("lost/c.txt", b"c").await;
    env.sync_ok(&[]).await;
    assert_eq!(env.local_files().len(), 7);
    std::fs::remove_dir_all(env.lp("gone")).unwrap();
    env.delete_remote("lost").await;
    let ran = env.sync_ok(&[]).await;
    only(
        &ran,
        &[("deleted on SharePoint", 2), ("deleted locally", 1)],
    );
    assert!(env.ctx.item_at(&env.rp("gone")).await.is_none());
    assert!(!env.lp("lost").exists());
    let all = ["anchor1.txt", "anchor2.txt", "anchor3.txt", "f.txt"];
    assert_eq!(env.local_files(), all);
    assert_eq!(env.remote_files().await, all);
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_local_and_deleted_remote_deletes_the_local_file() {
    let env = synced(b"base").await;
    env.delete_remote("f.txt").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[("deleted locally", 1)]);
    assert_eq!((uploads, downloads), (0, 0));
    assert!(env.read("f.txt").is_none());
    assert_eq!(env.remote_bytes("f.txt").await, None);
    anchors_intact(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_local_and_changed_remote_downloads_it_back() {
    let env = synced(b"base").await;
    env.remove("f.txt");
    env.put_remote("f.txt", b"edited there").await;
    let (ran, _, _) = counted(&env).await;
    only(&ran, &[("downloaded", 1)]);
    assert_eq!(env.read("f.txt").unwrap(), b"edited there");
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"edited there");
    anchors_intact(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_local_and_deleted_remote_uploads_it_again() {
    let env = synced(b"base").await;
    env.write("f.txt", b"edited here", 0);
    env.delete_remote("f.txt").await;
    let (ran, _, _) = counted(&env).await;
    only(&ran, &[("uploaded", 1)]);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"edited here");
    assert_eq!(env.read("f.txt").unwrap(), b"edited here");
    anchors_intact(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_on_both_sides_drops_the_row_and_nothing_else() {
    let env = synced(b"base").await;
    env.remove("f.txt");
    env.delete_remote("f.txt").await;
    let (ran, uploads, downloads) = counted(&env).await;
    only(&ran, &[]);
    assert_eq!((uploads, downloads), (0, 0));
    assert!(
        ran.out
            .lines()
            .any(|l| l.starts_with("forget") && l.ends_with("f.txt")),
        "{}",
        ran.out
    );
    // Dropped: the next run does not see the path at all.
    let again = env.sync_ok(&[]).await;
    only(&again, &[]);
    assert!(!again.out.contains("f.txt"), "{}", again.out);
    assert!(env.read("f.txt").is_none());
    assert_eq!(env.remote_bytes("f.txt").await, None);
    anchors_intact(&env).await;
}

/// Which side's edit is newer in a conflict.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Newer {
    Local,
    Remote,
}

/// A conflict on `f.txt` under `policy`: the local side says "local edit", SharePoint says
/// "remote edit!", and `newer` has the later modification time (by an hour).
async fn conflict(policy: &str, newer: Newer) -> Env {
    let env = synced_with(b"base", &format!("conflict = \"{policy}\"")).await;
    match newer {
        Newer::Local => {
            env.write("f.txt", b"local edit", 0);
            env.put_remote("f.txt", b"remote edit!").await;
            env.set_remote_age("f.txt", 3600).await;
        }
        Newer::Remote => {
            env.write("f.txt", b"local edit", 3600);
            env.put_remote("f.txt", b"remote edit!").await;
        }
    }
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("conflict"), 1, "{}", ran.out);
    assert!(
        ran.out
            .lines()
            .any(|l| l.starts_with("conflict") && l.contains("f.txt")),
        "{}",
        ran.out
    );
    env
}

/// Asserts what `f.txt` holds on each side and the conflict copies' content on each side.
async fn outcome(
    env: &Env,
    name_holds: &[u8],
    local_copy: Option<&[u8]>,
    remote_copy: Option<&[u8]>,
) {
    assert_eq!(env.read("f.txt").unwrap(), name_holds);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), name_holds);
    let local = conflict_copies(&env.local_files(), "f.txt");
    let remote = conflict_copies(&env.remote_files().await, "f.txt");
    match local_copy {
        Some(bytes) => {
            assert_eq!(local.len(), 1, "{local:?}");
            assert_eq!(env.read(&local[0]).unwrap(), bytes);
        }
        None => assert!(local.is_empty(), "{local:?}"),
    }
    match remote_copy {
        Some(bytes) => {
            assert_eq!(remote.len(), 1, "{remote:?}");
            assert_eq!(env.remote_bytes(&remote[0]).await.unwrap(), bytes);
        }
        None => assert!(remote.is_empty(), "{remote:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_both_with_the_local_edit_newer_renames_the_remote_one_on_both_sides() {
    let env = conflict("keep-both", Newer::Local).await;
    outcome(
        &env,
        b"local edit",
        Some(b"remote edit!"),
        Some(b"remote edit!"),
    )
    .await;
    assert_eq!(
        conflict_copies(&env.local_files(), "f.txt"),
        conflict_copies(&env.remote_files().await, "f.txt")
    );
    only(&env.sync_ok(&[]).await, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_both_with_the_remote_edit_newer_renames_the_local_one_on_both_sides() {
    let env = conflict("keep-both", Newer::Remote).await;
    outcome(
        &env,
        b"remote edit!",
        Some(b"local edit"),
        Some(b"local edit"),
    )
    .await;
    only(&env.sync_ok(&[]).await, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_local_wins_even_when_older() {
    // The SharePoint version it replaces stays in the file's version history.
    let env = conflict("prefer-local", Newer::Remote).await;
    outcome(&env, b"local edit", None, None).await;
    only(&env.sync_ok(&[]).await, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_remote_wins_even_when_older_and_keeps_the_local_loser_aside() {
    let env = conflict("prefer-remote", Newer::Local).await;
    outcome(&env, b"remote edit!", Some(b"local edit"), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_with_the_local_edit_newer_uploads_it() {
    let env = conflict("newer", Newer::Local).await;
    outcome(&env, b"local edit", None, None).await;
    only(&env.sync_ok(&[]).await, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_with_the_remote_edit_newer_keeps_the_local_loser_aside() {
    let env = conflict("newer", Newer::Remote).await;
    outcome(&env, b"remote edit!", Some(b"local edit"), None).await;
}
