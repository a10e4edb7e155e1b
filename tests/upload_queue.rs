//! The write-back upload queue (`upload_commit = "queued"` and `"close:N"`): the client's close
//! is answered once the file is durably queued; the upload goes on in the background, survives
//! `kill -9` (a half-sent upload session resumes where it stood), and a file SharePoint refuses
//! ends in quarantine with an alert and a failed audit line until `spgate queue retry`.
//! Checked through real clients and the simulator's Graph API.

mod common;
mod sftp_support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Gateway, User, random};

const ALL: &[&str] = &["*"];

/// Polls `check` every 100 ms until it answers `Some`, for at most `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway whose user `alice` has the library folder `In` mounted at `/` with `commit`.
async fn start(commit: &str, connection: &str) -> Gateway {
    let user = User::new("alice")
        .sharepoint("/", "/In", ALL)
        .commit(commit);
    let gw = Gateway::start_with(common::Ctx::new().await, &[user], connection).await;
    gw.sim_mkdirs("In").await;
    gw
}

/// As [`start`] with `"queued"`, in a library of 1 MiB.
async fn start_with_a_1_mib_library() -> Gateway {
    let user = User::new("alice")
        .sharepoint("/", "/In", ALL)
        .commit("queued");
    let gw = Gateway::start_with_quota(&[user], 1 << 20).await;
    gw.sim_mkdirs("In").await;
    gw
}

/// Slows SharePoint to 2 MB/s and queues a 16 MiB file first: with one upload worker, files
/// queued after it wait several seconds in the queue.
async fn keep_the_queue_busy(gw: &Gateway) -> Vec<u8> {
    let big = random(16 << 20);
    gw.write_local("big.bin", &big);
    gw.faults(json!({ "bandwidth_mb_s": 2.0 })).await;
    gw.sftp_ok("alice", "put big.bin\n").await;
    big
}

fn audit_lines(gw: &Gateway, action: &str) -> Vec<Value> {
    gw.state_file("audit.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["action"] == action)
        .collect()
}

#[tokio::test]
async fn queued_files_show_at_once_and_land_in_order() {
    let gw = start("queued", "upload_workers = 1\n").await;
    let (a, b, d) = (random(10_000), random(300_000), random(300));
    gw.write_local("a.txt", &a);
    gw.write_local("b.bin", &b);
    gw.write_local("d.txt", &d);
    let big = keep_the_queue_busy(&gw).await;
    gw.ctx.sim.control("/stats/reset", json!({})).await;
    // Acknowledged at once, and there for the client before SharePoint has them: listed,
    // read back, renamed, deleted.
    let out = gw
        .sftp_ok(
            "alice",
            "put a.txt\nput b.bin\nput d.txt\nrename b.bin c.bin\nrm d.txt\nls -l\nget a.txt back.txt\n",
        )
        .await;
    assert!(sftp_support::listed(&out, "a.txt"), "{out}");
    assert!(sftp_support::listed(&out, "big.bin"), "{out}");
    assert!(sftp_support::listed(&out, "c.bin"), "{out}");
    assert!(!sftp_support::listed(&out, "b.bin"), "{out}");
    assert!(!sftp_support::listed(&out, "d.txt"), "{out}");
    assert!(
        sftp_support::long_line(&out, "c.bin").contains(&b.len().to_string()),
        "{out}"
    );
    assert_eq!(gw.read_local("back.txt"), a, "read back from the queue");
    assert!(
        !gw.ctx
            .child_names("In")
            .await
            .contains(&"a.txt".to_string()),
        "a.txt waits behind big.bin"
    );
    gw.clear_faults().await;
    eventually("the files in SharePoint", 60, || async {
        let names = gw.sim_names("In").await;
        (names == ["a.txt", "big.bin", "c.bin"]).then_some(())
    })
    .await;
    gw.assert_stored("In/a.txt", &a).await;
    gw.assert_stored("In/c.bin", &b).await;
    gw.assert_stored("In/big.bin", &big).await;
    // b.bin went straight to its new name; d.txt never went.
    let stats = gw.ctx.sim.stats().await;
    assert_eq!(stats["by_kind"]["simple_upload"], 2, "{stats}");
    assert_eq!(stats["by_kind"]["move"], 0, "{stats}");
    // Once delivered, nothing is left in the queue and each delivery is audited.
    assert_queue_empty(&gw);
    let delivered = audit_lines(&gw, "deliver");
    let mut paths: Vec<&str> = delivered
        .iter()
        .filter_map(|v| v["path"].as_str())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/a.txt", "/big.bin", "/c.bin"], "{delivered:?}");
    assert!(
        delivered
            .iter()
            .all(|v| v["outcome"] == "ok" && v["item_id"].is_string()),
        "{delivered:?}"
    );
}

#[tokio::test]
async fn many_small_files_are_acknowledged_before_they_land_and_land_once() {
    let gw = start("queued", "").await;
    let names: Vec<String> = (0..40).map(|i| format!("f{i:02}.txt")).collect();
    for (i, name) in names.iter().enumerate() {
        gw.write_local(name, format!("file {i}").as_bytes());
    }
    let puts: String = names.iter().map(|n| format!("put {n}\n")).collect();
    gw.sftp_ok("alice", &puts).await;
    eventually("40 files in SharePoint", 60, || async {
        (gw.sim_names("In").await.len() == 40).then_some(())
    })
    .await;
    for (i, name) in names.iter().enumerate() {
        gw.assert_stored(&format!("In/{name}"), format!("file {i}").as_bytes())
            .await;
    }
    let stats = gw.ctx.sim.stats().await;
    assert_eq!(
        stats["by_kind"]["simple_upload"], 40,
        "one upload each: {stats}"
    );
}

#[tokio::test]
async fn a_second_upload_to_a_queued_path_supersedes_the_first() {
    let gw = start("queued", "upload_workers = 1\n").await;
    gw.write_local("one.txt", b"first version");
    gw.write_local("two.txt", b"second version, longer");
    keep_the_queue_busy(&gw).await;
    gw.ctx.sim.control("/stats/reset", json!({})).await;
    gw.sftp_ok("alice", "put one.txt same.txt\nput two.txt same.txt\n")
        .await;
    gw.clear_faults().await;
    eventually("same.txt in SharePoint", 60, || async {
        gw.sim_item("In/same.txt").await.map(|_| ())
    })
    .await;
    gw.assert_stored("In/same.txt", b"second version, longer")
        .await;
    let stats = gw.ctx.sim.stats().await;
    assert_eq!(
        stats["by_kind"]["simple_upload"], 1,
        "the first never went: {stats}"
    );
}

/// What `spgate queue list` prints.
fn queue_list(gw: &Gateway) -> String {
    String::from_utf8_lossy(&gw.spgate(&["queue", "list"]).stdout).into_owned()
}

fn assert_queue_empty(gw: &Gateway) {
    let listed = queue_list(gw);
    assert!(listed.contains("the upload queue is empty"), "{listed}");
}

/// The id of the quarantined row for library path `path`, if `spgate queue list` shows one.
fn quarantined_id(gw: &Gateway, path: &str) -> Option<String> {
    let listed = queue_list(gw);
    let line = listed
        .lines()
        .find(|l| l.contains("quarantined") && l.contains(&format!("\t{path}\t")))?;
    Some(line.split('\t').next().expect("an id").trim().to_string())
}

/// Where row `id`'s file for library path `path` is kept while quarantined.
fn quarantine_copy(gw: &Gateway, id: &str, path: &str) -> std::path::PathBuf {
    let name = path.rsplit('/').next().expect("a name");
    gw.dir
        .path()
        .join(format!("state/queue/quarantine/{id}-{name}"))
}

/// The line of `spgate queue list` for library path `path` once it is quarantined; answers
/// the row's id. Checks the alert (naming the file and the way out), the failed audit line
/// (with its reason) and the whole file kept in the quarantine folder.
async fn quarantined(gw: &Gateway, path: &str, body: &[u8]) -> String {
    let id = eventually("the upload quarantined", 60, || async {
        quarantined_id(gw, path)
    })
    .await;
    let name = path.rsplit('/').next().expect("a name");
    // The alert is raised just after the row is marked.
    let alerts = eventually("the alert raised", 30, || async {
        let out = gw.spgate(&["alerts"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(&format!("spgate queue retry {id}"))
            .then_some(text)
    })
    .await;
    assert!(alerts.contains("upload_failed"), "{alerts}");
    assert!(alerts.contains(&format!("/{name}")), "{alerts}");
    let failed: Vec<Value> = audit_lines(gw, "deliver")
        .into_iter()
        .filter(|l| l["outcome"] == "failed" && l["path"] == format!("/{name}"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed:?}"
    );
    let kept = quarantine_copy(gw, &id, path);
    assert_eq!(std::fs::read(&kept).expect("the quarantined file"), body);
    id
}

/// After the cause is fixed, `spgate queue retry ID` delivers the quarantined file at `path`:
/// it lands whole, its alert clears and its quarantined copy goes.
async fn retry_delivers(gw: &Gateway, id: &str, path: &str, body: &[u8]) {
    let retried = gw.spgate(&["queue", "retry", id]);
    assert!(retried.status.success(), "{retried:?}");
    eventually("the retried file in SharePoint", 60, || async {
        let item = gw.sim_item(path).await?;
        (item.get("file").is_some() && item["size"] == body.len()).then_some(())
    })
    .await;
    gw.assert_stored(path, body).await;
    let alerts = gw.spgate(&["alerts"]);
    let alerts = String::from_utf8_lossy(&alerts.stdout);
    assert!(!alerts.contains(&format!("queue retry {id}")), "{alerts}");
    assert!(
        !quarantine_copy(gw, id, path).exists(),
        "the quarantined copy is gone"
    );
}

/// Deletes the library item at `path` through the simulator's Graph API.
async fn sim_delete(gw: &Gateway, path: &str) {
    let item = gw.sim_item(path).await.expect("the item");
    let resp = gw
        .ctx
        .req(
            reqwest::Method::DELETE,
            &gw.ctx
                .d(&format!("/items/{}", item["id"].as_str().expect("id"))),
        )
        .send()
        .await
        .expect("delete the item");
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[tokio::test]
async fn an_upload_refused_for_a_folder_of_its_name_is_quarantined_then_retried() {
    let gw = start("queued", "").await;
    // A folder takes the name: SharePoint refuses the file (the client already heard "ok").
    gw.sim_mkdirs("In/report.csv").await;
    let body = random(2000);
    gw.write_local("report.csv", &body);
    gw.sftp_ok("alice", "put report.csv\n").await;
    let id = quarantined(&gw, "/In/report.csv", &body).await;
    // The client no longer sees it: only the folder has the name.
    let out = gw.sftp("alice", "ls -l\n").await;
    let lines: Vec<&str> = out
        .output
        .lines()
        .filter(|l| l.ends_with("report.csv"))
        .collect();
    assert!(lines.len() == 1 && lines[0].starts_with('d'), "{out}");
    // The administrator removes the folder and retries.
    sim_delete(&gw, "In/report.csv").await;
    retry_delivers(&gw, &id, "In/report.csv", &body).await;
}

/// The library fills up behind the gateway's back after it last heard its quota: the queued
/// file is refused by SharePoint and quarantined; space freed, the retry delivers it.
#[tokio::test]
async fn an_upload_refused_for_quota_is_quarantined_then_retried() {
    let gw = start_with_a_1_mib_library().await;
    // The gateway hears the quota (1 MiB free) when the client logs in; then 700 KiB arrive
    // from elsewhere.
    gw.sftp_ok("alice", "ls\n").await;
    gw.sim_put("Elsewhere/filler.bin", &random(700 << 10)).await;
    let body = random(600 << 10);
    gw.write_local("data.bin", &body);
    gw.sftp_ok("alice", "put data.bin\n").await;
    let id = quarantined(&gw, "/In/data.bin", &body).await;
    sim_delete(&gw, "Elsewhere/filler.bin").await;
    retry_delivers(&gw, &id, "In/data.bin", &body).await;
}

/// A file the library cannot hold is refused at close, before anything is queued or sent:
/// by the free space as last heard less what is queued, checked again with SharePoint.
#[tokio::test]
async fn a_file_the_library_cannot_hold_is_refused_at_close() {
    let gw = start_with_a_1_mib_library().await;
    let first = random(600 << 10);
    gw.write_local("first.bin", &first);
    gw.write_local("second.bin", &random(600 << 10));
    gw.write_local("big.bin", &random(2 << 20));
    let out = gw.sftp("alice", "put big.bin\n").await;
    assert!(!out.success, "{out}");
    gw.sftp_ok("alice", "put first.bin\n").await;
    // Queued or delivered, the first leaves no room for the second.
    let out = gw.sftp("alice", "put second.bin\n").await;
    assert!(!out.success, "{out}");
    gw.assert_stored("In/first.bin", &first).await;
    assert!(gw.sim_item("In/second.bin").await.is_none());
    assert!(gw.sim_item("In/big.bin").await.is_none());
    let stats = gw.ctx.sim.stats().await;
    assert_eq!(stats["by_kind"]["simple_upload"], 1, "{stats}");
    assert_eq!(stats["by_kind"]["create_session"], 0, "{stats}");
    assert_queue_empty(&gw);
    let spool: Vec<_> = std::fs::read_dir(gw.dir.path().join("state/queue"))
        .expect("the queue folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("u-"))
        .collect();
    assert!(spool.is_empty(), "no spool file is left: {spool:?}");
}

/// The app's access is revoked while files wait in the queue: the connection is disabled (its
/// own alert) and the files wait, neither quarantined nor lost; enabled again, they go up
/// without anyone retrying them.
#[tokio::test]
async fn uploads_for_a_disabled_connection_wait_until_it_is_enabled() {
    let mut gw = start("queued", "upload_workers = 1\n").await;
    let big = keep_the_queue_busy(&gw).await;
    let body = random(3000);
    gw.write_local("late.txt", &body);
    gw.sftp_ok("alice", "put late.txt\n").await;
    for action in ["/apps/spgate-demo/revoke", "/tokens/expire"] {
        gw.ctx.sim.control(action, json!({})).await;
    }
    gw.clear_faults().await;
    eventually("the connection disabled", 60, || async {
        let out = gw.spgate(&["connections"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("disabled").then_some(())
    })
    .await;
    let listed = queue_list(&gw);
    assert!(listed.contains("/In/late.txt"), "the file waits: {listed}");
    assert!(!listed.contains("quarantined"), "{listed}");
    let alerts = gw.spgate(&["alerts"]);
    let alerts = String::from_utf8_lossy(&alerts.stdout);
    assert!(
        !alerts.contains("upload_failed"),
        "one alert, the connection's: {alerts}"
    );
    gw.ctx
        .sim
        .control("/apps/spgate-demo/restore", json!({}))
        .await;
    // The test's own token expired with the gateway's.
    gw.ctx.token = gw.ctx.sim.app_token().await;
    let enabled = gw.spgate(&["connections", "enable", "sp"]);
    assert!(enabled.status.success(), "{enabled:?}");
    for (path, bytes) in [("In/late.txt", &body), ("In/big.bin", &big)] {
        eventually("the waiting file in SharePoint", 60, || async {
            let item = gw.sim_item(path).await?;
            (item.get("file").is_some() && item["size"] == bytes.len()).then_some(())
        })
        .await;
        gw.assert_stored(path, bytes).await;
    }
    eventually("the queue empty", 30, || async {
        queue_list(&gw)
            .lines()
            .all(|l| !l.contains("/In/"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn close_within_answers_sharepoints_verdict_when_it_comes_in_time() {
    let user = User::new("alice")
        .sharepoint("/", "/In", ALL)
        .commit("close:10s");
    let gw = Gateway::start_with_quota(&[user], 1 << 20).await;
    gw.sim_mkdirs("In").await;
    gw.write_local("ok.txt", b"fine");
    gw.write_local("big.bin", &random(2 << 20));
    // In time: stored when the put returns; refused (the library is full): the client hears
    // it, and nothing is left queued.
    gw.sftp_ok("alice", "put ok.txt\n").await;
    gw.assert_stored("In/ok.txt", b"fine").await;
    let out = gw.sftp("alice", "put big.bin\n").await;
    assert!(!out.success, "{out}");
    assert_queue_empty(&gw);
}

#[tokio::test]
async fn kill_9_loses_nothing_and_a_half_sent_session_resumes() {
    // 200 MiB in fragments of about 12.5 MiB at 40 MB/s (a realistic link): the big file
    // takes about 5 s; it is killed half-way.
    let mut gw = start("queued", "upload_chunk_mib = 1\nupload_workers = 1\n").await;
    let big = random(200 << 20);
    let fragment = spgate::graph::upload::fragment_for(big.len() as u64, common::FRAG as u64 * 3);
    let total = (big.len() as u64).div_ceil(fragment);
    gw.write_local("big.bin", &big);
    let small: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("s{i:02}.txt"), random(1000 + i)))
        .collect();
    for (name, bytes) in &small {
        gw.write_local(name, bytes);
    }
    gw.faults(json!({ "bandwidth_mb_s": 40.0 })).await;
    let puts: String = small.iter().map(|(n, _)| format!("put {n}\n")).collect();
    gw.sftp_ok("alice", &format!("put big.bin\n{puts}")).await;
    // One worker: the big file goes first and the small ones wait behind it.
    let sent = eventually("half the big file sent", 60, || async {
        let fragments = gw.ctx.sim.stats().await["by_kind"]["upload_fragment"]
            .as_u64()
            .unwrap_or(0);
        (fragments >= total / 2).then_some(fragments)
    })
    .await;
    gw.crash_and_restart();
    assert!(
        gw.ctx.item_at("In/big.bin").await.is_none(),
        "nothing partial is visible"
    );
    gw.ctx.sim.control("/stats/reset", json!({})).await;
    gw.clear_faults().await;
    eventually("every file in SharePoint", 120, || async {
        (gw.sim_names("In").await.len() == 21).then_some(())
    })
    .await;
    common::assert_same(&gw.sim_content("In/big.bin").await, &big, "big.bin");
    gw.assert_stored("In/big.bin", &big).await;
    for (name, bytes) in &small {
        gw.assert_stored(&format!("In/{name}"), bytes).await;
    }
    let stats = gw.ctx.sim.stats().await;
    assert_eq!(
        stats["by_kind"]["create_session"], 0,
        "resumed, not restarted: {stats}"
    );
    let after = stats["by_kind"]["upload_fragment"].as_u64().unwrap_or(0);
    assert!(
        after <= total - sent + 1,
        "after the restart only the rest was sent: {after} fragments of {total}, {sent} before: {stats}"
    );
    assert_eq!(
        stats["by_kind"]["simple_upload"], 20,
        "each small file once: {stats}"
    );
    assert!(
        gw.log_tail().contains("resuming an upload session"),
        "{}",
        gw.log_tail()
    );
}
