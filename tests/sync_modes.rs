//! Sync directions and `after_copy = "delete"` end to end: what `push` and `pull` carry, what
//! they leave alone, and when a source may be deleted. Checked on disk and through Graph.

mod common;
mod sync_support;

use serde_json::json;
use sync_support::{Env, conflict_copies};

/// A job of `direction` whose first run synced `f.txt` ("base") and `g.txt` ("g").
async fn synced(direction: &str, extra: &str) -> Env {
    let env = Env::new(direction, extra).await;
    if direction == "pull" {
        env.put_remote("f.txt", b"base").await;
        env.put_remote("g.txt", b"g").await;
    } else {
        env.write("f.txt", b"base", 3600);
        env.write("g.txt", b"g", 3600);
    }
    env.sync_ok(&[]).await;
    assert_eq!(env.read("f.txt").unwrap(), b"base");
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"base");
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn push_uploads_and_leaves_remote_only_files_alone() {
    let env = Env::new("push", "").await;
    env.put_remote("theirs.txt", b"theirs").await;
    env.write("mine.txt", b"mine", 60);
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(1, 0);
    env.write("mine.txt", b"mine, edited", 0);
    env.put_remote("later.txt", b"later").await;
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(1, 0);
    assert_eq!(env.local_files(), ["mine.txt"]);
    assert_eq!(
        env.remote_files().await,
        ["later.txt", "mine.txt", "theirs.txt"]
    );
    assert_eq!(env.remote_bytes("mine.txt").await.unwrap(), b"mine, edited");
    assert_eq!(env.remote_bytes("theirs.txt").await.unwrap(), b"theirs");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_keeps_a_remote_edit_until_the_local_file_changes_too() {
    let env = synced("push", "").await;
    env.put_remote("f.txt", b"remote edit!").await;
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(0, 0);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"remote edit!");
    assert_eq!(env.read("f.txt").unwrap(), b"base");
    // Now both changed: the conflict policy (keep-both) keeps both versions.
    env.write("f.txt", b"local edit", 3600);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("conflict"), 1, "{}", ran.out);
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"remote edit!");
    let copies = conflict_copies(&env.remote_files().await, "f.txt");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(env.remote_bytes(&copies[0]).await.unwrap(), b"local edit");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_mirrors_local_deletions_and_restores_remote_ones() {
    let env = synced("push", "").await;
    env.write("h.txt", b"h", 3600);
    env.write("i.txt", b"i", 3600);
    env.sync_ok(&[]).await;
    env.remove("f.txt");
    env.delete_remote("g.txt").await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("deleted on SharePoint"), 1, "{}", ran.out);
    assert_eq!(ran.count("deleted locally"), 0, "{}", ran.out);
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["g.txt", "h.txt", "i.txt"]);
    assert_eq!(env.local_files(), ["g.txt", "h.txt", "i.txt"]);
    assert_eq!(env.remote_bytes("g.txt").await.unwrap(), b"g");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_downloads_and_leaves_local_only_files_alone() {
    let env = Env::new("pull", "").await;
    env.write("mine.txt", b"mine", 60);
    env.put_remote("theirs.txt", b"theirs").await;
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(0, 1);
    env.put_remote("theirs.txt", b"theirs, edited").await;
    env.write("later.txt", b"later", 0);
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(0, 1);
    assert_eq!(env.remote_files().await, ["theirs.txt"]);
    assert_eq!(env.local_files(), ["later.txt", "mine.txt", "theirs.txt"]);
    assert_eq!(env.read("theirs.txt").unwrap(), b"theirs, edited");
    assert_eq!(env.read("mine.txt").unwrap(), b"mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_keeps_a_local_edit_until_the_remote_file_changes_too() {
    let env = synced("pull", "").await;
    env.write("f.txt", b"local edit", 0);
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(0, 0);
    assert_eq!(env.read("f.txt").unwrap(), b"local edit");
    assert_eq!(env.remote_bytes("f.txt").await.unwrap(), b"base");
    // Now both changed: the conflict policy (keep-both) keeps both versions.
    env.put_remote("f.txt", b"remote edit!").await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("conflict"), 1, "{}", ran.out);
    let copies = conflict_copies(&env.local_files(), "f.txt");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(env.read(&copies[0]).unwrap(), b"local edit");
    assert_eq!(env.read("f.txt").unwrap(), b"remote edit!");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_mirrors_remote_deletions_and_restores_local_ones() {
    let env = synced("pull", "").await;
    env.put_remote("h.txt", b"h").await;
    env.put_remote("i.txt", b"i").await;
    env.sync_ok(&[]).await;
    env.delete_remote("f.txt").await;
    env.remove("g.txt");
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("deleted locally"), 1, "{}", ran.out);
    assert_eq!(ran.count("deleted on SharePoint"), 0, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(env.local_files(), ["g.txt", "h.txt", "i.txt"]);
    assert_eq!(env.remote_files().await, ["g.txt", "h.txt", "i.txt"]);
    assert_eq!(env.read("g.txt").unwrap(), b"g");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_way_carries_both_sides_in_one_run() {
    let env = synced("two-way", "").await;
    env.write("f.txt", b"local edit", 0);
    env.put_remote("g.txt", b"remote edit").await;
    env.write("a/b/new-here.txt", b"here", 0);
    env.put_remote("c/new-there.txt", b"there").await;
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(2, 2);
    let all = ["a/b/new-here.txt", "c/new-there.txt", "f.txt", "g.txt"];
    assert_eq!(env.local_files(), all);
    assert_eq!(env.remote_files().await, all);
    for (path, bytes) in [
        ("f.txt", &b"local edit"[..]),
        ("g.txt", b"remote edit"),
        ("a/b/new-here.txt", b"here"),
        ("c/new-there.txt", b"there"),
    ] {
        assert_eq!(env.read(path).unwrap(), bytes, "{path}");
        assert_eq!(env.remote_bytes(path).await.unwrap(), bytes, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_delete_removes_copied_sources_and_emptied_folders_only() {
    let env = Env::new("push", "after_copy = \"delete\"").await;
    env.put_remote("theirs.txt", b"theirs").await;
    env.put_remote("same.txt", b"already there").await;
    env.write("same.txt", b"already there", 60);
    env.write("a.txt", b"a", 60);
    env.write("sub/b.txt", b"b", 60);
    env.write("sub/deeper/c.txt", b"c", 60);
    std::fs::create_dir(env.lp("was-empty")).unwrap();
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 3, "{}", ran.out);
    let all = [
        "a.txt",
        "same.txt",
        "sub/b.txt",
        "sub/deeper/c.txt",
        "theirs.txt",
    ];
    assert_eq!(env.remote_files().await, all);
    assert_eq!(env.remote_bytes("sub/deeper/c.txt").await.unwrap(), b"c");
    // Sources gone, the folders this run emptied too; the job root and a folder that was
    // empty before stay.
    assert!(env.local_files().is_empty(), "{:?}", env.local_files());
    assert!(!env.lp("sub").exists());
    assert!(env.lp("was-empty").is_dir() && env.local.is_dir());
    // Deletions never travel: not the ones after the copy, not ones on SharePoint.
    env.delete_remote("a.txt").await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 0, "{}", ran.out);
    assert_eq!(ran.count("deleted on SharePoint"), 0, "{}", ran.out);
    assert_eq!(env.remote_files().await, &all[1..]);
    assert!(env.local_files().is_empty());
    // A new file goes the same way.
    env.write("sub/d.txt", b"d", 60);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(env.remote_bytes("sub/d.txt").await.unwrap(), b"d");
    assert!(!env.lp("sub").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_delete_keeps_a_source_whose_upload_was_refused() {
    // A library with 1,000 bytes of space: the small file fits, the big one is refused (507).
    let seed = format!(
        "{}\n[[tenants.sites]]\nhostname = \"contoso.sharepoint.com\"\nname = \"partners\"\n\
         [[tenants.sites.drives]]\nname = \"Documents\"\nquota_bytes = 1000\n",
        common::BASE_SEED
    );
    let ctx = common::Ctx::with_seed(&seed).await;
    let env = Env::with_ctx(ctx, "push", "after_copy = \"delete\"").await;
    let big = common::data(2000, 7);
    env.write("small.txt", b"small", 60);
    env.write("sub/big.bin", &big, 60);
    let ran = env.sync(&[]).await;
    assert!(!ran.ok, "a refused upload must fail the run:\n{}", ran.out);
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("error"), 1, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["small.txt"]);
    assert_eq!(env.local_files(), ["sub/big.bin"]);
    assert_eq!(env.read("sub/big.bin").unwrap(), big);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_delete_keeps_sources_while_sharepoint_fails() {
    let env = Env::new("push", "after_copy = \"delete\"").await;
    env.write("a.txt", b"a", 60);
    env.write("sub/b.txt", b"b", 60);
    env.faults(json!({"fail_5xx_every": 1})).await;
    let ran = env.sync(&[]).await;
    assert!(!ran.ok, "the run cannot succeed:\n{}", ran.out);
    assert_eq!(env.local_files(), ["a.txt", "sub/b.txt"]);
    env.clear_faults().await;
    assert_eq!(env.remote_files().await, Vec::<String>::new());
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 2, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["a.txt", "sub/b.txt"]);
    assert!(env.local_files().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_delete_keeps_skipped_sources() {
    let env = Env::new("push", "after_copy = \"delete\"\nnames = \"refuse\"").await;
    env.write("ok.txt", b"ok", 60);
    env.write("a:b.txt", b"colon", 60);
    env.write("A.txt", b"upper", 60);
    env.write("a.txt", b"lower", 60);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 2, "{}", ran.out);
    assert_eq!(ran.count("skipped"), 2, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["A.txt", "ok.txt"]);
    assert_eq!(env.local_files(), ["a.txt", "a:b.txt"]);
    assert_eq!(env.read("a.txt").unwrap(), b"lower");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_delete_removes_copied_sources_and_emptied_folders_only() {
    let env = Env::new("pull", "after_copy = \"delete\"").await;
    env.write("mine.txt", b"mine", 60);
    env.write("same.txt", b"already here", 60);
    env.put_remote("same.txt", b"already here").await;
    env.put_remote("a.txt", b"a").await;
    env.put_remote("sub/b.txt", b"b").await;
    env.put_remote("sub/deeper/c.txt", b"c").await;
    env.ctx.mkdirs(&env.rp("was-empty")).await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("downloaded"), 3, "{}", ran.out);
    let all = [
        "a.txt",
        "mine.txt",
        "same.txt",
        "sub/b.txt",
        "sub/deeper/c.txt",
    ];
    assert_eq!(env.local_files(), all);
    assert_eq!(env.read("sub/deeper/c.txt").unwrap(), b"c");
    // Sources gone on SharePoint, the folders this run emptied too; the job's folder and a
    // folder that was empty before stay.
    assert!(env.remote_files().await.is_empty());
    assert!(env.ctx.item_at(&env.rp("sub")).await.is_none());
    assert!(env.ctx.item_at(&env.rp("was-empty")).await.is_some());
    assert!(env.ctx.item_at(&env.remote).await.is_some());
    // Deletions never travel: not the ones after the copy, not local ones.
    env.remove("a.txt");
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("downloaded"), 0, "{}", ran.out);
    assert_eq!(ran.count("deleted locally"), 0, "{}", ran.out);
    assert_eq!(env.local_files(), &all[1..]);
    assert!(env.remote_files().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_delete_keeps_a_source_whose_download_failed() {
    let env = Env::new("pull", "after_copy = \"delete\"").await;
    env.put_remote("ok.txt", b"ok").await;
    env.put_remote("sub/x.txt", b"x").await;
    // A local file where the download needs the folder `sub`.
    env.write("sub", b"in the way", 60);
    let ran = env.sync(&[]).await;
    assert!(!ran.ok, "a failed download must fail the run:\n{}", ran.out);
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["sub/x.txt"]);
    assert_eq!(env.remote_bytes("sub/x.txt").await.unwrap(), b"x");
    assert_eq!(env.local_files(), ["ok.txt", "sub"]);
    assert_eq!(env.read("sub").unwrap(), b"in the way");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_delete_keeps_sources_while_sharepoint_fails() {
    let env = Env::new("pull", "after_copy = \"delete\"").await;
    env.put_remote("a.txt", b"a").await;
    env.faults(json!({"fail_5xx_every": 1})).await;
    let ran = env.sync(&[]).await;
    env.clear_faults().await;
    assert!(!ran.ok, "the run cannot succeed:\n{}", ran.out);
    assert_eq!(env.remote_files().await, ["a.txt"]);
    assert!(env.local_files().is_empty());
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(env.read("a.txt").unwrap(), b"a");
    assert!(env.remote_files().await.is_empty());
}
