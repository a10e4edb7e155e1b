//! Sync safety rules of `shared/SYNC.md` through the real binary and the simulator: the
//! max-delete guard, vanished roots, first runs and rebuilds, dry runs, throttling and server
//! errors, files SharePoint rewrites after upload, and what must never lead out of the job's
//! folder (symlinks, hostile SharePoint names). Crash safety is in `sync_crash.rs`.

mod common;
mod sync_support;

use std::collections::BTreeMap;

use serde_json::json;
use sync_support::{Env, Ran};

/// The bytes of test file `i`.
fn content(i: usize) -> Vec<u8> {
    format!("file {i}: {}", "x".repeat(i * 7)).into_bytes()
}

fn name(i: usize) -> String {
    format!("f{i}.txt")
}

/// A job with `n` files, synced once.
async fn synced(direction: &str, extra: &str, n: usize) -> Env {
    let env = Env::new(direction, extra).await;
    for i in 0..n {
        env.write(&name(i), &content(i), 100);
    }
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), n as u64, "{}", ran.out);
    env
}

fn assert_aborted(ran: &Ran, needle: &str) {
    assert!(!ran.ok, "the run should have failed:\n{}", ran.out);
    assert!(
        ran.out.contains("aborted") && ran.out.contains(needle),
        "expected an abort naming {needle:?}:\n{}\n{}",
        ran.out,
        ran.err
    );
}

fn assert_alert(env: &Env) {
    let alerts = env.alerts();
    assert!(
        alerts.out.contains("sync:job"),
        "no sync:job alert:\n{}",
        alerts.out
    );
}

fn is_conflict_copy(path: &str) -> bool {
    path.contains(" (conflict ")
}

/// Expected tree of files `range` with their test contents.
fn tree(range: std::ops::Range<usize>) -> BTreeMap<String, Vec<u8>> {
    range.map(|i| (name(i), content(i))).collect()
}

async fn max_delete_percent(direction: &str) {
    let env = synced(direction, "", 10).await;
    for i in 0..6 {
        std::fs::remove_file(env.lp(&name(i))).unwrap();
    }
    env.reset_stats().await;
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "max_delete");
    assert!(ran.out.contains("6 of 10"), "{}", ran.out);
    assert_eq!(env.stat("delete").await, 0);
    assert_eq!(env.remote_tree().await, tree(0..10));
    assert_alert(&env);
    // The guard holds on every run until someone decides.
    assert_aborted(&env.sync(&[]).await, "max_delete");
    assert_eq!(env.remote_files().await.len(), 10);

    let forced = env.sync_ok(&["--force"]).await;
    assert_eq!(forced.count("deleted on SharePoint"), 6, "{}", forced.out);
    assert_eq!(env.remote_tree().await, tree(6..10));
    assert!(
        env.alerts().out.contains("no open alerts"),
        "a successful run clears the alert"
    );

    // --force is for one run only: 3 of the 4 left is over 50% again.
    for i in 6..9 {
        std::fs::remove_file(env.lp(&name(i))).unwrap();
    }
    assert_aborted(&env.sync(&[]).await, "max_delete");
    assert_eq!(env.remote_tree().await, tree(6..10));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_delete_percent_stops_a_two_way_run_until_forced() {
    max_delete_percent("two-way").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_delete_percent_stops_a_push_run_until_forced() {
    max_delete_percent("push").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_delete_count_limits_each_side() {
    let env = synced("two-way", "max_delete = { count = 2 }", 10).await;
    // Local side: 3 deletions are 30%, under the percentage but over the count.
    for i in 0..3 {
        std::fs::remove_file(env.lp(&name(i))).unwrap();
    }
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "max_delete");
    assert!(ran.out.contains("2 files"), "{}", ran.out);
    assert_eq!(env.remote_tree().await, tree(0..10));
    assert_alert(&env);
    // Two are within the limit.
    env.write(&name(0), &content(0), 100);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("deleted on SharePoint"), 2, "{}", ran.out);
    assert_eq!(ran.count("uploaded"), 0, "{}", ran.out);
    let mut want = tree(0..10);
    want.remove(&name(1));
    want.remove(&name(2));
    assert_eq!(env.remote_tree().await, want);
    assert_eq!(env.local_tree(), want);

    // SharePoint side: 3 deletions there would delete 3 local files.
    for i in 3..6 {
        env.delete_remote(&name(i)).await;
    }
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "max_delete");
    assert!(ran.out.contains("locally"), "{}", ran.out);
    assert_eq!(env.local_tree(), want, "nothing deleted locally");
    assert_alert(&env);
    let ran = env.sync_ok(&["--force"]).await;
    assert_eq!(ran.count("deleted locally"), 3, "{}", ran.out);
    for i in 3..6 {
        want.remove(&name(i));
    }
    assert_eq!(env.local_tree(), want);
    assert_eq!(env.remote_tree().await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_local_folder_aborts_even_under_the_percentage() {
    let env = synced("two-way", "max_delete = { percent = 100 }", 10).await;
    for i in 0..10 {
        std::fs::remove_file(env.lp(&name(i))).unwrap();
    }
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "is empty");
    assert_eq!(env.remote_tree().await, tree(0..10));
    assert_alert(&env);
    // A push job has the same rule.
    env.write_config("push", "max_delete = { percent = 100 }");
    assert_aborted(&env.sync(&[]).await, "is empty");
    assert_eq!(env.remote_files().await.len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_local_root_aborts_and_deletes_nothing_on_sharepoint() {
    let env = synced("two-way", "", 10).await;
    std::fs::remove_dir_all(&env.local).unwrap();
    env.reset_stats().await;
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "does not exist");
    assert_eq!(env.stat("delete").await, 0);
    assert_eq!(env.remote_tree().await, tree(0..10));
    assert!(
        !env.local.exists(),
        "the root is not recreated by a later run"
    );
    assert_alert(&env);
    // Even with --force: a missing root is not an empty one.
    assert_aborted(&env.sync(&["--force"]).await, "does not exist");
    assert_eq!(env.remote_files().await.len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_emptied_remote_root_aborts_and_deletes_nothing_locally() {
    let env = synced("two-way", "max_delete = { percent = 100 }", 10).await;
    // Every file deleted on SharePoint: the folder lists as empty.
    for i in 0..10 {
        env.delete_remote(&name(i)).await;
    }
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "is empty");
    assert_eq!(env.local_tree(), tree(0..10));
    assert_alert(&env);
    // The folder itself deleted.
    env.delete_remote_root().await;
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "is missing");
    assert_eq!(env.local_tree(), tree(0..10));
    assert!(
        env.ctx.item_at(&env.remote).await.is_none(),
        "the root is not recreated"
    );
    assert_alert(&env);
    // Pull follows the same rules.
    env.write_config("pull", "max_delete = { percent = 100 }");
    assert_aborted(&env.sync(&["--force"]).await, "is missing");
    assert_eq!(env.local_tree(), tree(0..10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_remote_root_aborts_and_deletes_nothing_locally() {
    let env = synced("two-way", "", 10).await;
    let response = env
        .ctx
        .req(reqwest::Method::PATCH, &env.ctx.p(&env.remote, ""))
        .json(&json!({"name": "Mirror (old)"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status().as_u16(), 200, "rename the remote root");
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "is missing");
    assert_eq!(env.local_tree(), tree(0..10));
    assert_eq!(
        env.ctx.children("Mirror (old)").await.len(),
        10,
        "the renamed folder is left alone"
    );
    assert!(env.ctx.item_at(&env.remote).await.is_none());
    assert_alert(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_run_copies_both_ways_and_never_deletes() {
    let env = Env::new("two-way", "").await;
    let big = common::data(300_000, 3);
    for (path, bytes) in [("same.txt", &b"identical"[..]), ("sub/same.bin", &big)] {
        env.write(path, bytes, 100);
        env.put_remote(path, bytes).await;
    }
    env.write("local-only.txt", b"from the local side", 100);
    env.put_remote("sub/remote-only.txt", b"from SharePoint")
        .await;
    // Same size, different bytes (the hash decides), and different sizes.
    env.write("differ.txt", b"local version", 100);
    env.put_remote("differ.txt", b"remote versio").await;
    env.write("sizes.txt", b"short", 100);
    env.put_remote("sizes.txt", b"a longer remote text").await;
    env.reset_stats().await;

    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("conflict"), 2, "{}", ran.out);
    // local-only plus the two local versions moved aside; remote-only plus the two winners.
    assert_eq!(ran.count("uploaded"), 3, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 3, "{}", ran.out);
    assert_eq!(env.uploads_started().await, 3, "equal files are not sent");
    assert_eq!(env.stat("delete").await, 0);
    let local = env.local_tree();
    assert_eq!(local, env.remote_tree().await);
    // The remote versions are newer (their mtime is now): they keep the names.
    assert_eq!(local["differ.txt"], b"remote versio");
    assert_eq!(local["sizes.txt"], b"a longer remote text");
    assert_eq!(local["same.txt"], b"identical");
    assert_eq!(local["sub/same.bin"], big);
    assert_eq!(local["local-only.txt"], b"from the local side");
    assert_eq!(local["sub/remote-only.txt"], b"from SharePoint");
    let copies: Vec<(&String, &Vec<u8>)> =
        local.iter().filter(|(p, _)| is_conflict_copy(p)).collect();
    assert_eq!(copies.len(), 2, "{local:?}");
    let aside = |stem: &str| {
        copies
            .iter()
            .find(|(p, _)| p.starts_with(&format!("{stem} (conflict ")) && p.ends_with(".txt"))
            .unwrap_or_else(|| panic!("no conflict copy of {stem}: {:?}", local.keys()))
            .1
            .clone()
    };
    assert_eq!(aside("differ"), b"local version");
    assert_eq!(aside("sizes"), b"short");
    assert_eq!(local.len(), 8, "{:?}", local.keys());

    env.reset_stats().await;
    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded"), 0, "{}", again.out);
    assert_eq!(again.count("downloaded"), 0, "{}", again.out);
    assert_eq!(env.uploads_started().await + env.stat("download").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_rebuilds_the_baseline_copy_only() {
    let env = Env::new("two-way", "").await;
    for i in 0..6 {
        env.write(&name(i), &content(i), 100);
    }
    env.put_remote("sub/r.txt", b"remote file").await;
    env.sync_ok(&[]).await;
    let before = env.local_tree();
    assert_eq!(before, env.remote_tree().await);

    // One file deleted on each side: a normal run would mirror both deletions.
    std::fs::remove_file(env.lp(&name(0))).unwrap();
    env.delete_remote("sub/r.txt").await;
    let dry = env.sync_ok(&["--dry-run"]).await;
    assert!(
        dry.out.contains(&format!("delete-r {}", name(0)))
            && dry.out.contains("delete-l sub/r.txt"),
        "{}",
        dry.out
    );

    env.reset_stats().await;
    let ran = env.sync_ok(&["--resync"]).await;
    assert_eq!(ran.count("deleted on SharePoint"), 0, "{}", ran.out);
    assert_eq!(ran.count("deleted locally"), 0, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("conflict"), 0, "{}", ran.out);
    assert_eq!(env.stat("delete").await, 0);
    assert_eq!(
        env.uploads_started().await,
        1,
        "equal files are not sent again"
    );
    assert_eq!(env.local_tree(), before);
    assert_eq!(env.remote_tree().await, before);

    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded") + again.count("downloaded"), 0);
    assert_eq!(env.local_tree(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let env = Env::new("two-way", "").await;
    for i in 0..4 {
        env.write(&name(i), &content(i), 100);
    }
    env.write("dir/deep.txt", b"deep", 100);
    let local = env.local_tree();

    for _ in 0..2 {
        let dry = env.sync_ok(&["--dry-run"]).await;
        for path in [name(0), name(3), "dir/deep.txt".to_string()] {
            assert!(
                dry.out
                    .lines()
                    .any(|l| l.starts_with("would upload") && l.ends_with(&path)),
                "no 'would upload {path}' in:\n{}",
                dry.out
            );
        }
        assert!(dry.out.contains("would mkdir-r"), "{}", dry.out);
        assert_eq!(dry.count("uploaded"), 0, "a dry run counts nothing done");
        assert_eq!(env.local_tree(), local);
        assert!(env.remote_files().await.is_empty());
        let status = env.status();
        assert!(status.out.contains("last run: never"), "{}", status.out);
        assert!(env.alerts().out.contains("no open alerts"));
    }
    assert_eq!(env.uploads_started().await, 0);
    assert_eq!(env.stat("mkdir").await, 0, "a dry run creates no folder");
    assert!(
        env.ctx.item_at(&env.remote).await.is_none(),
        "a dry run must not create the job's SharePoint folder"
    );

    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 5, "{}", ran.out);
    assert_eq!(env.remote_tree().await, local);

    // Changes on both sides, planned but not done.
    env.write(&name(1), b"changed locally", 10);
    std::fs::remove_file(env.lp(&name(2))).unwrap();
    env.put_remote("new-remote.txt", b"new on SharePoint").await;
    let local = env.local_tree();
    let remote = env.remote_tree().await;
    let status = env.status().out;
    env.reset_stats().await;
    let dry = env.sync_ok(&["--dry-run"]).await;
    for line in [
        format!("would upload   {}", name(1)),
        format!("would delete-r {}", name(2)),
        "would download new-remote.txt".to_string(),
    ] {
        assert!(dry.out.contains(&line), "no {line:?} in:\n{}", dry.out);
    }
    // (Checked before the test's own downloads below.)
    assert_eq!(env.uploads_started().await, 0);
    assert_eq!(env.stat("download").await, 0);
    assert_eq!(env.stat("delete").await, 0);
    assert_eq!(env.local_tree(), local);
    assert_eq!(env.remote_tree().await, remote);
    assert_eq!(env.status().out, status, "the state is unchanged");

    // The real run afterwards sees the same changes (the dry run advanced no delta link).
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("deleted on SharePoint"), 1, "{}", ran.out);
    assert_eq!(env.local_tree(), env.remote_tree().await);
    assert_eq!(env.read("new-remote.txt").unwrap(), b"new on SharePoint");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_of_a_new_job_creates_neither_folder() {
    let env = Env::new("pull", "").await;
    env.put_remote("r.txt", b"remote").await;
    std::fs::remove_dir(&env.local).unwrap();
    let dry = env.sync_ok(&["--dry-run"]).await;
    assert!(dry.out.contains("would download r.txt"), "{}", dry.out);
    assert!(
        !env.local.exists(),
        "a dry run must not create the local folder"
    );
    assert!(env.status().out.contains("last run: never"));
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(env.read("r.txt").unwrap(), b"remote");
}

/// Both directions with small files and one upload session, under simulator `faults`.
async fn completes_under(faults: serde_json::Value) -> Env {
    let env = Env::new("two-way", "").await;
    let mut want = BTreeMap::new();
    for i in 0..8 {
        let path = format!("up/{}", name(i));
        env.write(&path, &content(i), 100);
        want.insert(path, content(i));
    }
    let big = common::data(5 * 1024 * 1024 + 11, 7);
    env.write("up/big.bin", &big, 100);
    want.insert("up/big.bin".into(), big);
    for i in 0..6 {
        let path = format!("down/{}", name(i));
        env.put_remote(&path, &content(i + 50)).await;
        want.insert(path, content(i + 50));
    }
    let remote_big = common::data(1024 * 1024 + 3, 8);
    env.put_remote("down/big.bin", &remote_big).await;
    want.insert("down/big.bin".into(), remote_big);
    env.reset_stats().await;
    env.faults(faults).await;
    let ran = env.sync(&[]).await;
    env.clear_faults().await;
    assert!(
        ran.ok,
        "the run should ride out the faults:\n{}\n{}",
        ran.out, ran.err
    );
    assert_eq!(ran.count("uploaded"), 9, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 7, "{}", ran.out);
    assert_eq!(ran.count("error"), 0, "{}", ran.out);
    assert_eq!(env.local_tree(), want);
    assert_eq!(
        env.remote_tree().await,
        want,
        "no duplicates, no missing files"
    );
    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded") + again.count("downloaded"), 0);
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_run_completes_without_duplicates() {
    let env = completes_under(json!({"throttle_every": 3, "retry_after_s": 1})).await;
    // The stats were reset before the faulty run; the clean rerun adds no throttling.
    let throttled = env.ctx.sim.stats().await["throttled"].as_u64().unwrap();
    assert!(throttled > 0, "the simulator throttled nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_server_errors_completes_without_duplicates() {
    completes_under(json!({"fail_5xx_every": 4})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_sharepoint_rewrites_are_not_transferred_again() {
    let env = Env::new("two-way", "").await;
    env.faults(json!({"enrich_office": true})).await;
    let big_pdf = common::data(5 * 1024 * 1024 + 1, 9);
    env.write("report.docx", b"PK\x03\x04 a small document", 100);
    env.write("x.pdf", b"%PDF-1.4 a small pdf", 100);
    env.write("docs/big.pdf", &big_pdf, 100);
    env.write("plain.txt", b"not rewritten", 100);
    let local = env.local_tree();
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 4, "{}", ran.out);
    let remote = env.remote_tree().await;
    for path in ["report.docx", "x.pdf", "docs/big.pdf"] {
        assert!(
            remote[path].len() > local[path].len() && remote[path].starts_with(&local[path]),
            "{path} was not enriched by the simulator"
        );
    }
    assert_eq!(remote["plain.txt"], local["plain.txt"]);

    for round in 2..=3 {
        env.reset_stats().await;
        let ran = env.sync_ok(&[]).await;
        assert_eq!(ran.count("uploaded"), 0, "run {round}:\n{}", ran.out);
        assert_eq!(ran.count("downloaded"), 0, "run {round}:\n{}", ran.out);
        assert_eq!(ran.count("conflict"), 0, "run {round}:\n{}", ran.out);
        assert_eq!(env.uploads_started().await, 0, "run {round}");
        assert_eq!(env.stat("download").await, 0, "run {round}");
        assert_eq!(env.local_tree(), local, "run {round}: the local files stay");
    }

    // A real local edit travels once, then things are quiet again.
    env.write("report.docx", b"PK\x03\x04 the second draft", 5);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 0, "{}", ran.out);
    env.reset_stats().await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(
        ran.count("uploaded") + ran.count("downloaded"),
        0,
        "{}",
        ran.out
    );
    assert_eq!(env.uploads_started().await + env.stat("download").await, 0);
    assert!(
        env.remote_bytes("report.docx")
            .await
            .unwrap()
            .starts_with(b"PK\x03\x04 the second draft")
    );
}

/// A symlink in the job's folder to a folder outside it (the scan skips it): a pull writes
/// nothing through it, reports the files it could not place, and syncs the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_never_writes_through_a_symlink_out_of_the_folder() {
    let env = Env::new("pull", "").await;
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, env.lp("reports")).unwrap();
    env.put_remote("reports/q1.txt", b"quarter").await;
    env.put_remote("plain.txt", b"plain").await;
    let ran = env.sync(&[]).await;
    let leaked: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(
        leaked.is_empty(),
        "written outside: {leaked:?}\n{}",
        ran.out
    );
    assert_eq!(env.read("plain.txt").as_deref(), Some(&b"plain"[..]));
    assert!(
        !ran.ok && ran.out.contains("reports"),
        "the blocked file is reported:\n{}\n{}",
        ran.out,
        ran.err
    );
    assert_eq!(
        env.remote_bytes("reports/q1.txt").await.as_deref(),
        Some(&b"quarter"[..]),
        "the SharePoint side is untouched"
    );
}

/// A Python HTTP proxy in front of the simulator that renames items in Graph's JSON answers
/// (`"name":"FROM"` becomes `"name":"TO"`, for each pair in argv after the simulator's URL),
/// standing in for a hostile or broken server. Prints `port N` once listening.
const RENAMING_PROXY: &str = r#"
import http.server, sys, urllib.request, urllib.error
target, pairs = sys.argv[1], sys.argv[2:]
swaps = [(('"name":"%s"' % a).encode(), ('"name":"%s"' % b).encode()) for a, b in zip(pairs[::2], pairs[1::2])]
class Proxy(http.server.BaseHTTPRequestHandler):
    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(target + self.path, data=body, headers=headers, method=self.command)
        try:
            response = urllib.request.urlopen(request)
        except urllib.error.HTTPError as e:
            response = e
        data = response.read()
        for a, b in swaps:
            data = data.replace(a, b)
        self.send_response(response.status)
        for k, v in response.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"#;

/// SharePoint names that would lead out of the job's folder or into another file (`..`, a name
/// with `/`, a control character), served by a renaming proxy: a pull never uses them, reports
/// each as a problem (printed escaped), and syncs the rest.
#[tokio::test(flavor = "multi_thread")]
async fn sharepoint_names_that_cannot_be_local_are_never_used() {
    use tokio::io::AsyncBufReadExt;
    let env = Env::new("pull", "").await;
    env.put_remote("dotdot/escaped.txt", b"escaped").await;
    env.put_remote("slashed.txt", b"slashed").await;
    env.put_remote("bell.txt", b"bell").await;
    env.put_remote("plain.txt", b"plain").await;
    let mut proxy = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(RENAMING_PROXY)
        .arg(&env.ctx.sim.base)
        .args(["dotdot", "..", "slashed.txt", "sub/slashed.txt"])
        .args(["bell.txt", "bell\\u0007.txt"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut lines = tokio::io::BufReader::new(proxy.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the proxy's port");
    let port = line.strip_prefix("port ").expect("port N");
    let config = std::fs::read_to_string(&env.config).unwrap();
    let sim = sync_support::quote_toml(&env.ctx.sim.base);
    let proxied = config.replace(
        &format!("graph_url = {sim}"),
        &format!("graph_url = \"http://127.0.0.1:{port}\""),
    );
    assert_ne!(config, proxied, "graph_url goes through the proxy");
    std::fs::write(&env.config, proxied).unwrap();

    let ran = env.sync(&[]).await;
    assert!(
        !env.dir.path().join("escaped.txt").exists(),
        "written outside the job's folder:\n{}",
        ran.out
    );
    assert_eq!(env.local_files(), ["plain.txt"], "{}\n{}", ran.out, ran.err);
    for (path, reason) in [
        ("..", "parent"),
        ("sub/slashed.txt", "path separator"),
        ("\"bell\\u{7}.txt\"", "control character"),
    ] {
        assert!(
            ran.out
                .lines()
                .any(|l| l.starts_with(&format!("skipped {path} (remote)")) && l.contains(reason)),
            "no problem for {path}:\n{}",
            ran.out
        );
    }
    assert!(
        !ran.out.contains('\u{7}'),
        "a control character reached the terminal"
    );
    assert!(env.alerts().out.contains("sync:job"));
}

/// The job's local folder is replaced by another one holding the same files (another host's
/// folder, on a cluster whose instances should share one): the run refuses before it changes
/// anything, with the job's alert; `--resync` where the folder is the right one adopts it.
#[tokio::test]
async fn a_folder_that_is_not_the_jobs_folder_is_refused() {
    let env = synced("push", "", 3).await;
    let marker = env.local.join(spgate::sync::folder::MARKER);
    let text = std::fs::read_to_string(&marker).expect("the first run marks the folder");
    assert!(
        text.contains("cluster ") && text.contains("folder "),
        "{text}"
    );
    // Another folder in its place: the same files, no marker.
    std::fs::remove_file(&marker).unwrap();
    std::fs::remove_file(env.lp(&name(0))).unwrap();
    let ran = env.sync(&[]).await;
    assert_aborted(&ran, "is not the folder this job was synced with");
    assert_alert(&env);
    assert!(
        env.remote_bytes(&name(0)).await.is_some(),
        "nothing was deleted"
    );
    // A marker of another cluster is refused too.
    std::fs::write(&marker, "cluster elsewhere\nfolder f1\n").unwrap();
    assert_aborted(&env.sync(&[]).await, "belongs to another spgate cluster");
    // Adopted on purpose: the resync copies only, and the folder is the job's from then on.
    std::fs::remove_file(&marker).unwrap();
    env.sync_ok(&["--resync"]).await;
    assert!(env.remote_bytes(&name(0)).await.is_some());
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 0, "{}", ran.out);
}
