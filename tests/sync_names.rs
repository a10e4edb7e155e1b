//! Paths a sync must not carry: case collisions and names SharePoint refuses (skipped with a
//! warning each run, nothing overwritten, everything else synced) and excluded paths (invisible
//! on both sides, never deleted, also after the filter changes).

mod common;
mod sync_support;

use sync_support::{Env, Ran};

/// The `skipped PATH (side): reason` lines of a run, as `PATH (side)`.
fn skipped(ran: &Ran) -> Vec<String> {
    ran.out
        .lines()
        .filter_map(|l| l.strip_prefix("skipped "))
        .map(|l| l.split_once(": ").map_or(l, |(what, _)| what).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_collision_syncs_one_variant_and_skips_the_other_every_run() {
    let env = Env::new("two-way", "").await;
    env.write("A.txt", b"upper", 60);
    env.write("a.txt", b"lower", 60);
    env.write("other.txt", b"other", 60);
    for _ in 0..2 {
        let ran = env.sync_ok(&[]).await;
        assert_eq!(ran.count("skipped"), 1, "{}", ran.out);
        assert_eq!(skipped(&ran), ["a.txt (local)"], "{}", ran.out);
        assert_eq!(env.remote_files().await, ["A.txt", "other.txt"]);
        assert_eq!(env.remote_bytes("A.txt").await.unwrap(), b"upper");
        assert_eq!(env.read("A.txt").unwrap(), b"upper");
        assert_eq!(env.read("a.txt").unwrap(), b"lower");
        assert_eq!(env.local_files(), ["A.txt", "a.txt", "other.txt"]);
    }
    let status = env.status();
    assert!(status.ok, "{}\n{}", status.out, status.err);
    assert!(
        status
            .out
            .lines()
            .any(|l| l.contains("problem") && l.contains("a.txt (local)")),
        "{}",
        status.out
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_synced_variant_keeps_its_place_when_another_appears() {
    let env = Env::new("two-way", "").await;
    env.write("report.txt", b"synced first", 60);
    env.sync_ok(&[]).await;
    // "Report.txt" sorts first, but "report.txt" is the one SharePoint already holds.
    env.write("Report.txt", b"newcomer", 0);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(skipped(&ran), ["Report.txt (local)"], "{}", ran.out);
    assert_eq!(ran.count("uploaded"), 0, "{}", ran.out);
    assert_eq!(env.remote_files().await, ["report.txt"]);
    assert_eq!(
        env.remote_bytes("report.txt").await.unwrap(),
        b"synced first"
    );
    assert_eq!(env.read("report.txt").unwrap(), b"synced first");
    assert_eq!(env.read("Report.txt").unwrap(), b"newcomer");
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_differing_in_case_are_never_merged() {
    let env = Env::new("two-way", "").await;
    env.write("Docs/x.txt", b"x", 60);
    env.write("docs/y.txt", b"y", 60);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(skipped(&ran), ["docs (local)"], "{}", ran.out);
    assert_eq!(env.remote_files().await, ["Docs/x.txt"]);
    assert_eq!(env.local_files(), ["Docs/x.txt", "docs/y.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_sharepoint_refuses_are_skipped_and_the_rest_syncs() {
    // With names = "refuse"; tests/names_encode.rs has the default, "encode".
    let env = Env::new("two-way", "names = \"refuse\"").await;
    let bad = [
        "a:b.txt",
        "con.txt",
        "ends.",
        "~$x.docx",
        "bad|dir/inside.txt",
    ];
    for name in bad {
        env.write(name, b"bad", 60);
    }
    env.write("fine.txt", b"fine", 60);
    env.write("dir/fine too.txt", b"fine too", 60);
    for _ in 0..2 {
        let ran = env.sync_ok(&[]).await;
        assert_eq!(ran.count("skipped"), 5, "{}", ran.out);
        let mut want = [
            "a:b.txt (local)",
            "bad|dir (local)",
            "con.txt (local)",
            "ends. (local)",
            "~$x.docx (local)",
        ];
        want.sort();
        assert_eq!(skipped(&ran), want, "{}", ran.out);
        assert_eq!(env.remote_files().await, ["dir/fine too.txt", "fine.txt"]);
    }
    assert_eq!(env.local_files().len(), 7, "{:?}", env.local_files());
}

#[tokio::test(flavor = "multi_thread")]
async fn excluded_paths_never_travel_and_are_never_deleted() {
    let env = Env::new("two-way", "exclude = [\"*.tmp\", \"cache/\"]").await;
    env.write("keep.txt", b"keep", 60);
    env.write("cache.txt", b"a file, not a folder", 60);
    env.write("a.tmp", b"local tmp", 60);
    env.write("sub/b.tmp", b"local tmp", 60);
    env.write("cache/x.txt", b"local cache", 60);
    env.write("sub/cache/y.txt", b"local cache", 60);
    env.put_remote("r.tmp", b"remote tmp").await;
    env.put_remote("cache/r.txt", b"remote cache").await;
    env.put_remote("theirs.txt", b"theirs").await;
    let ran = env.sync_ok(&[]).await;
    ran.assert_transfers(2, 1);
    let remote = [
        "cache.txt",
        "cache/r.txt",
        "keep.txt",
        "r.tmp",
        "theirs.txt",
    ];
    assert_eq!(env.remote_files().await, remote);
    let local = [
        "a.tmp",
        "cache.txt",
        "cache/x.txt",
        "keep.txt",
        "sub/b.tmp",
        "sub/cache/y.txt",
        "theirs.txt",
    ];
    assert_eq!(env.local_files(), local);
    // Excluded files disappearing or changing on either side leave the other side alone.
    env.remove("a.tmp");
    env.remove("cache/x.txt");
    env.write("sub/b.tmp", b"changed", 0);
    env.delete_remote("r.tmp").await;
    env.put_remote("cache/r.txt", b"changed remotely").await;
    let ran = env.sync_ok(&[]).await;
    assert!(
        !ran.out.contains(".tmp") && !ran.out.contains("cache/"),
        "{}",
        ran.out
    );
    assert_eq!(
        env.remote_files().await,
        ["cache.txt", "cache/r.txt", "keep.txt", "theirs.txt"]
    );
    assert_eq!(
        env.local_files(),
        [
            "cache.txt",
            "keep.txt",
            "sub/b.tmp",
            "sub/cache/y.txt",
            "theirs.txt"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_excluded_later_is_never_a_deletion_candidate() {
    let env = Env::new("two-way", "").await;
    for (path, bytes) in [
        ("notes.log", &b"notes"[..]),
        ("logs/a.txt", b"a"),
        ("keep1.txt", b"1"),
        ("keep2.txt", b"2"),
    ] {
        env.write(path, bytes, 60);
    }
    env.sync_ok(&[]).await;
    assert_eq!(
        env.remote_files().await,
        ["keep1.txt", "keep2.txt", "logs/a.txt", "notes.log"]
    );
    env.write_config("two-way", "exclude = [\"*.log\", \"logs/\"]");
    env.remove("notes.log");
    env.delete_remote("logs/a.txt").await;
    env.write("logs/b.txt", b"b", 0);
    let ran = env.sync_ok(&[]).await;
    for label in [
        "uploaded",
        "downloaded",
        "deleted on SharePoint",
        "deleted locally",
    ] {
        assert_eq!(ran.count(label), 0, "{label}:\n{}", ran.out);
    }
    assert_eq!(
        env.remote_files().await,
        ["keep1.txt", "keep2.txt", "notes.log"]
    );
    assert_eq!(env.remote_bytes("notes.log").await.unwrap(), b"notes");
    assert_eq!(
        env.local_files(),
        ["keep1.txt", "keep2.txt", "logs/a.txt", "logs/b.txt"]
    );
    assert_eq!(env.read("logs/a.txt").unwrap(), b"a");
}
