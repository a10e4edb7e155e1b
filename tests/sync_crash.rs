//! Crash safety of `spgate sync run` (SYNC.md "Safety"): the real binary is killed with SIGKILL
//! at several points of a push, a large upload and a pull, then run again. After the re-run both
//! sides hold every file exactly once with the right content, no temporary or conflict copy is
//! visible, and a further run has nothing to do. Also: one run per job at a time, and the lock
//! of a killed run does not block the next one.

mod common;
mod sync_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sync_support::Env;
use tokio::io::AsyncBufReadExt;

/// How long any one spawned run may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(60);

/// What a run printed before it ended or was killed.
struct Stopped {
    lines: Vec<String>,
    /// False when the run ended by itself before the condition held.
    killed: bool,
}

impl Stopped {
    fn count(&self, verb: &str) -> usize {
        self.lines.iter().filter(|l| l.starts_with(verb)).count()
    }
}

/// Runs the job and kills it with SIGKILL as soon as `when(lines so far)` holds, checked
/// whenever a line arrives and every millisecond in between.
async fn kill_when<F, Fut>(env: &Env, when: F) -> Stopped
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    signal_when(env, "KILL", when).await
}

/// Runs the job and sends it `signal` (`KILL`, `TERM`) as soon as `when(lines so far)` holds;
/// returns once the process has ended.
async fn signal_when<F, Fut>(env: &Env, signal: &str, when: F) -> Stopped
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut child = env.spawn_sync(&[]);
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (seen, reader) = {
        let lines = lines.clone();
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut all = lines.lock().unwrap();
                all.push(line);
                let _ = tx.send(all.len());
            }
        });
        (rx, task)
    };
    let mut seen = seen;
    let start = Instant::now();
    let killed = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "the run neither ended nor met the condition"
        );
        let snapshot = lines.lock().unwrap().clone();
        if when(snapshot).await {
            let pid = child.id().expect("pid").to_string();
            let sent = std::process::Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .expect("kill");
            assert!(sent.success(), "kill -{signal} {pid}");
            break true;
        }
        if child.try_wait().expect("try_wait").is_some() {
            break false;
        }
        let _ = tokio::time::timeout(Duration::from_millis(1), seen.changed()).await;
    };
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the run did not end after the signal")
        .expect("wait");
    eprintln!(
        "run {}: {} line(s) printed",
        if killed { "killed" } else { "ended" },
        lines.lock().unwrap().len()
    );
    let _ = tokio::time::timeout(DEADLINE, reader).await;
    if !killed {
        assert!(
            status.success(),
            "the run failed: {:?}",
            lines.lock().unwrap()
        );
    }
    let lines = lines.lock().unwrap().clone();
    Stopped { lines, killed }
}

/// Kills the run once it printed `n` lines starting with `verb`.
async fn kill_after(env: &Env, verb: &'static str, n: usize) -> Stopped {
    kill_when(env, move |lines| async move {
        lines.iter().filter(|l| l.starts_with(verb)).count() >= n
    })
    .await
}

fn temp_or_conflict(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with(".spgate."))
        || path.contains(" (conflict ")
}

/// The local tree without spgate's temporary files, and the temporary files left.
fn local_synced(env: &Env) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut temps = Vec::new();
    let mut files = env.local_tree();
    files.retain(|path, _| {
        let temp = path
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .starts_with(".spgate.");
        if temp {
            temps.push(path.clone());
        }
        !temp
    });
    (files, temps)
}

/// Every file on SharePoint is one of `want`, complete: a killed run leaves each path either
/// untouched or done.
async fn assert_remote_subset(env: &Env, want: &BTreeMap<String, Vec<u8>>, when: &str) {
    for (path, bytes) in env.remote_tree().await {
        assert!(
            !temp_or_conflict(&path),
            "{when}: {path} is visible on SharePoint"
        );
        let expected = want
            .get(&path)
            .unwrap_or_else(|| panic!("{when}: unexpected {path} on SharePoint"));
        assert!(
            bytes == *expected,
            "{when}: {path} is incomplete or wrong on SharePoint"
        );
    }
}

fn assert_local_subset(env: &Env, want: &BTreeMap<String, Vec<u8>>, when: &str) {
    let (files, _) = local_synced(env);
    for (path, bytes) in files {
        assert!(!temp_or_conflict(&path), "{when}: {path} locally");
        let expected = want
            .get(&path)
            .unwrap_or_else(|| panic!("{when}: unexpected local {path}"));
        assert!(
            bytes == *expected,
            "{when}: local {path} is incomplete or wrong"
        );
    }
}

/// The re-run after the kills: everything converges, then a further run has nothing to do.
async fn assert_converges(env: &Env, want: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let ran = env.sync_ok(&[]).await;
    let same = ran.out.lines().filter(|l| l.starts_with("same")).count();
    eprintln!(
        "re-run: {} uploaded, {} downloaded, {same} found already done",
        ran.count("uploaded"),
        ran.count("downloaded")
    );
    assert_eq!(ran.count("conflict"), 0, "{}", ran.out);
    assert_eq!(ran.count("error"), 0, "{}", ran.out);
    let (local, temps) = local_synced(env);
    assert!(
        local == *want,
        "local side: {:?}",
        local.keys().collect::<Vec<_>>()
    );
    let remote = env.remote_tree().await;
    assert!(
        remote == *want,
        "SharePoint: {:?}",
        remote.keys().collect::<Vec<_>>()
    );
    env.reset_stats().await;
    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded"), 0, "{}", again.out);
    assert_eq!(again.count("downloaded"), 0, "{}", again.out);
    assert_eq!(env.uploads_started().await + env.stat("download").await, 0);
    temps
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_at_several_points_converges() {
    let env = Env::new("push", "").await;
    let mut want = BTreeMap::new();
    for i in 0..150 {
        let path = format!("d{}/f{i:03}.txt", i % 3);
        let bytes = common::data(100 + i * 3, i as u64);
        env.write(&path, &bytes, 100);
        want.insert(path, bytes);
    }
    // Right after planning (folders being made), then after 3, 30 and 50 more uploads.
    let first = kill_after(&env, "plan:", 1).await;
    assert!(first.killed, "{:?}", first.lines);
    assert_remote_subset(&env, &want, "after the kill at the plan").await;
    for n in [3, 30, 50] {
        let stopped = kill_after(&env, "upload", n).await;
        assert!(stopped.killed, "the run ended before {n} uploads");
        assert!(stopped.count("upload") >= n);
        assert_remote_subset(&env, &want, &format!("after the kill at {n}")).await;
    }
    assert!(
        env.remote_files().await.len() >= 83,
        "the killed runs kept their work"
    );
    let temps = assert_converges(&env, &want).await;
    assert!(
        temps.is_empty(),
        "a push leaves no local temp files: {temps:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_during_a_large_upload_converges() {
    let env = Env::new("push", "").await;
    let mut want = BTreeMap::new();
    let big = common::data(30 * 1024 * 1024 + 5, 42);
    env.write("big.bin", &big, 100);
    want.insert("big.bin".to_string(), big);
    for i in 0..5 {
        let path = format!("small{i}.txt");
        env.write(&path, path.as_bytes(), 100);
        want.insert(path.clone(), path.into_bytes());
    }
    // Throttling stretches the session over seconds, so the kill lands inside it.
    env.faults(json!({"throttle_every": 2, "retry_after_s": 1}))
        .await;
    env.reset_stats().await;
    let e = &env;
    let stopped = kill_when(&env, move |_| async move {
        e.ctx.sim.stats().await["by_kind"]["upload_fragment"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;
    env.clear_faults().await;
    assert!(stopped.killed, "the run ended before a fragment was sent");
    assert!(
        env.ctx.item_at(&env.rp("big.bin")).await.is_none(),
        "an unfinished upload session is invisible"
    );
    assert_remote_subset(&env, &want, "after the kill").await;
    env.reset_stats().await;
    let temps = assert_converges(&env, &want).await;
    assert!(temps.is_empty(), "{temps:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_killed_at_several_points_converges_and_leftovers_stay_invisible() {
    let env = Env::new("pull", "").await;
    let mut want = BTreeMap::new();
    let big = common::data(30 * 1024 * 1024 + 9, 77);
    env.put_remote("big.bin", &big).await;
    want.insert("big.bin".to_string(), big);
    for i in 0..60 {
        let path = format!("p{}/g{i:02}.txt", i % 2);
        let bytes = common::data(50 + i, 1000 + i as u64);
        env.put_remote(&path, &bytes).await;
        want.insert(path, bytes);
    }
    // Killed while the large file is being written to its temporary file.
    let local = env.local.clone();
    let stopped = kill_when(&env, |_| {
        let local = local.clone();
        async move {
            std::fs::read_dir(&local).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(".spgate.big.bin.") && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        }
    })
    .await;
    assert!(
        stopped.killed,
        "the run ended before the large download started"
    );
    assert_local_subset(&env, &want, "after the kill in the large download");
    assert!(
        !env.lp("big.bin").exists(),
        "a partial download is never visible"
    );
    for n in [5, 25] {
        let stopped = kill_after(&env, "download", n).await;
        assert!(stopped.killed, "the run ended before {n} downloads");
        assert_local_subset(&env, &want, &format!("after the kill at {n}"));
    }
    let temps = assert_converges(&env, &want).await;
    assert!(
        temps.iter().any(|t| t.starts_with(".spgate.big.bin.")),
        "the killed download's temporary file is expected to stay on disk: {temps:?}"
    );
    eprintln!("temporary files left by the killed runs: {temps:?}");

    // Left-over temporary files are never synced, not even by a job that uploads.
    env.write_config("two-way", "");
    env.reset_stats().await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 0, "{}", ran.out);
    assert_eq!(env.uploads_started().await, 0);
    assert_eq!(env.remote_tree().await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_run_at_a_time_and_a_killed_runs_lock_is_taken_over() {
    let env = Env::new("push", "").await;
    let mut want = BTreeMap::new();
    for i in 0..20 {
        let path = format!("l{i:02}.txt");
        env.write(&path, path.as_bytes(), 100);
        want.insert(path.clone(), path.into_bytes());
    }
    // A slow run: every second request is throttled for a second.
    env.faults(json!({"throttle_every": 2, "retry_after_s": 1}))
        .await;
    let e = &env;
    let stopped = kill_when(&env, move |lines| {
        let env = e;
        async move {
            if !lines.iter().any(|l| l.starts_with("plan:")) {
                return false;
            }
            // The first run holds the lock from before its scan until it ends.
            let second = env.sync(&[]).await;
            assert!(!second.ok, "a second run started:\n{}", second.out);
            assert!(
                second.out.contains("already running"),
                "{}\n{}",
                second.out,
                second.err
            );
            let status = env.status();
            assert!(status.out.contains("running"), "{}", status.out);
            true
        }
    })
    .await;
    assert!(stopped.killed, "the slow run ended too early");
    env.clear_faults().await;
    // The killed run's lock has a fresh heartbeat, but its process is gone.
    let ran = env.sync(&[]).await;
    assert!(
        ran.ok,
        "the killed run's lock blocked the next run:\n{}\n{}",
        ran.out, ran.err
    );
    assert_converges(&env, &want).await;
}

/// Every file of `want` is on at least one side, complete: nothing was lost.
async fn assert_nothing_lost(env: &Env, want: &BTreeMap<String, Vec<u8>>, when: &str) {
    let (local, _) = local_synced(env);
    let remote = env.remote_tree().await;
    for (path, bytes) in want {
        assert!(
            local.get(path) == Some(bytes) || remote.get(path) == Some(bytes),
            "{when}: {path} is on neither side"
        );
    }
}

/// A push or pull with `after_copy = "delete"`, killed twice: every source is deleted only
/// after its verified copy, and the re-run finishes the job without losing or doubling files.
async fn delete_after_copy_killed(direction: &str, verb: &'static str) {
    let env = Env::new(direction, "after_copy = \"delete\"").await;
    let pull = direction == "pull";
    let mut want = BTreeMap::new();
    for i in 0..80 {
        let path = format!("m{}/h{i:02}.txt", i % 2);
        let bytes = common::data(70 + i, 500 + i as u64);
        if pull {
            env.put_remote(&path, &bytes).await;
        } else {
            env.write(&path, &bytes, 100);
        }
        want.insert(path, bytes);
    }
    for n in [10, 30] {
        let stopped = kill_after(&env, verb, n).await;
        assert!(stopped.killed, "the run ended before {n} transfers");
        let when = format!("after the kill at {n}");
        assert_nothing_lost(&env, &want, &when).await;
        assert_remote_subset(&env, &want, &when).await;
        assert_local_subset(&env, &want, &when);
    }
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("conflict"), 0, "{}", ran.out);
    let (local, temps) = local_synced(&env);
    let remote = env.remote_tree().await;
    let (destination, source) = if pull {
        (local, remote)
    } else {
        (remote, local)
    };
    assert!(destination == want, "{:?}", destination.keys());
    assert!(source.is_empty(), "sources left: {:?}", source.keys());
    eprintln!("temporary files left by the killed runs: {temps:?}");
    env.reset_stats().await;
    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded") + again.count("downloaded"), 0);
    assert_eq!(env.uploads_started().await + env.stat("download").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_deleting_its_sources_killed_mid_run_loses_nothing() {
    delete_after_copy_killed("push", "upload").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_deleting_its_sources_killed_mid_run_loses_nothing() {
    delete_after_copy_killed("pull", "download").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_left_by_a_failed_delete_after_copy_is_deleted_next_run() {
    let env = Env::new("pull", "after_copy = \"delete\"").await;
    env.put_remote("kept.txt", b"locked on SharePoint").await;
    env.put_remote("moved.txt", b"free to go").await;
    let lock = json!({"drive_id": env.ctx.drive, "path": env.rp("kept.txt")});
    env.ctx.sim.control("/lock", lock.clone()).await;
    // The copy is verified and recorded; deleting the source fails.
    let ran = env.sync(&[]).await;
    assert!(!ran.ok, "{}", ran.out);
    // The failed action counts as an error, not as a download.
    assert_eq!(ran.count("error"), 1, "{}", ran.out);
    assert_eq!(env.read("kept.txt").unwrap(), b"locked on SharePoint");
    assert_eq!(env.remote_files().await, ["kept.txt"]);
    env.ctx.sim.control("/unlock", lock).await;
    // The next run finishes the move without copying again.
    env.reset_stats().await;
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("downloaded"), 0, "{}", ran.out);
    assert_eq!(env.stat("download").await, 0);
    assert!(
        env.remote_files().await.is_empty(),
        "the copied source stays on SharePoint for ever:\n{}",
        ran.out
    );
    assert_eq!(env.read("kept.txt").unwrap(), b"locked on SharePoint");
    assert_eq!(env.read("moved.txt").unwrap(), b"free to go");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_transfers_in_flight_finish() {
    let env = Env::new("pull", "").await;
    let mut want = BTreeMap::new();
    let big = common::data(30 * 1024 * 1024 + 1, 5);
    env.put_remote("big.bin", &big).await;
    want.insert("big.bin".to_string(), big);
    for i in 0..40 {
        let path = format!("t/s{i:02}.txt");
        let bytes = common::data(60 + i, 300 + i as u64);
        env.put_remote(&path, &bytes).await;
        want.insert(path, bytes);
    }
    let local = env.local.clone();
    let stopped = signal_when(&env, "TERM", |_| {
        let local = local.clone();
        async move {
            std::fs::read_dir(&local).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(".spgate.big.bin.")
                })
            })
        }
    })
    .await;
    assert!(
        stopped.killed,
        "the run ended before the large download started"
    );
    let summary = stopped
        .lines
        .iter()
        .find(|l| l.starts_with("sync job:"))
        .unwrap_or_else(|| panic!("no summary after SIGTERM: {:?}", stopped.lines));
    assert!(summary.contains("interrupted"), "{summary}");
    let (files, temps) = local_synced(&env);
    assert!(
        temps.is_empty(),
        "a stopped run leaves no temporary files: {temps:?}"
    );
    assert_eq!(
        files.get("big.bin"),
        want.get("big.bin"),
        "the download in flight finished"
    );
    assert_local_subset(&env, &want, "after SIGTERM");
    let status = env.status();
    assert!(status.out.contains("interrupted"), "{}", status.out);
    assert_converges(&env, &want).await;
}
