//! Uploads when SharePoint misbehaves: a failed upload must reach the client as an error and
//! leave no file (nor a partial one) in the library, and must not damage the file it was
//! replacing; transient trouble (a dropped fragment, throttling) must not fail the transfer.

mod common;
mod sftp_support;

use std::time::{Duration, Instant};

use serde_json::json;
use sftp_support::{Gateway, User, random, replies};

use common::Ctx;

const ALL: &[&str] = &["*"];

fn alice() -> User {
    User::new("alice").sharepoint("/", "/", ALL)
}

#[tokio::test]
async fn an_upload_failing_with_server_errors_leaves_no_file() {
    let gw = Gateway::start_with(
        Ctx::new().await,
        &[alice().commit("close")],
        "max_retries = 1",
    )
    .await;
    let old = random(1000);
    gw.sim_put("existing.bin", &old).await;
    let bytes = random(5 * 1024 * 1024 + 17);
    gw.write_local("big.bin", &bytes);
    // A first session, so that the connection has its token and library before the faults.
    gw.sftp_ok("alice", "ls\n").await;

    gw.faults(json!({"fail_5xx_every": 1})).await;
    let new = gw.sftp("alice", "put big.bin new.bin\n").await;
    let replace = gw.sftp("alice", "put big.bin existing.bin\n").await;
    gw.clear_faults().await;
    assert!(!new.success, "the put should fail: {new}");
    assert!(!replace.success, "the put should fail: {replace}");

    gw.assert_absent("new.bin").await;
    assert_eq!(gw.sim_names("").await, ["existing.bin"]);
    gw.assert_stored("existing.bin", &old).await;

    // Once SharePoint answers again, the same upload goes through.
    gw.sftp_ok("alice", "put big.bin new.bin\n").await;
    gw.assert_stored("new.bin", &bytes).await;
}

#[tokio::test]
async fn an_upload_refused_at_close_reaches_the_client() {
    // A library with 4 MiB of space: opening the file and writing it succeed, the upload
    // when the handle closes is refused (507 quotaLimitReached).
    let gw = Gateway::start_with_quota(&[alice().commit("close")], 4 << 20).await;
    let old = random(1_500_000);
    gw.sim_put("existing.bin", &old).await;
    let session = random(6 * 1024 * 1024); // upload session
    let simple = random(3 * 1024 * 1024 + 5); // simple upload
    gw.write_local("session.bin", &session);
    gw.write_local("simple.bin", &simple);

    for (local, remote) in [
        ("session.bin", "session.bin"),
        ("simple.bin", "simple.bin"),
        ("session.bin", "existing.bin"),
    ] {
        let out = gw
            .sftp_fails("alice", &format!("put {local} {remote}\n"))
            .await;
        let errors = replies(&out).join("\n");
        // OpenSSH reports the failure of the CLOSE request: `close remote: Failure`.
        assert!(errors.contains("close remote"), "refused at close:\n{out}");
    }
    assert_eq!(gw.sim_names("").await, ["existing.bin"]);
    gw.assert_stored("existing.bin", &old).await;
    let log = gw.log_tail();
    assert!(log.contains("upload failed"), "{log}");
}

#[tokio::test]
async fn a_dropped_fragment_is_resumed() {
    let gw = Gateway::start_with(Ctx::new().await, &[alice()], "upload_chunk_mib = 2").await;
    let bytes = random(9 * 1024 * 1024 + 3);
    gw.write_local("big.bin", &bytes);
    gw.faults(json!({"drop_fragment_every": 2})).await;
    let run = gw.sftp("alice", "put big.bin big.bin\n").await;
    gw.clear_faults().await;
    assert!(run.success, "{run}");
    gw.assert_stored("big.bin", &bytes).await;
}

#[tokio::test]
async fn throttling_slows_an_upload_down_without_failing_it() {
    let gw = Gateway::start(&[alice()]).await;
    let bytes = random(5 * 1024 * 1024);
    gw.write_local("big.bin", &bytes);
    gw.faults(json!({"throttle_every": 4, "retry_after_s": 1}))
        .await;
    let run = gw.sftp("alice", "put big.bin big.bin\nls -l\n").await;
    gw.clear_faults().await;
    assert!(run.success, "{run}");
    gw.assert_stored("big.bin", &bytes).await;
    let stats = gw.ctx.sim.stats().await;
    assert!(stats["throttled"].as_u64() > Some(0), "{stats}");
}

/// C.: SharePoint dies in the middle of a download. The read that meets the failure resumes
/// once (one retry budget); every later read of the ~64 OpenSSH queues is answered at once, so
/// the client reports the failure within about one retry budget (it used to take one budget
/// per queued read: 12.6 minutes with the default budget).
#[tokio::test]
async fn a_download_fails_within_one_retry_budget_when_sharepoint_dies() {
    sharepoint_dies_mid_download("max_retries = 3\ndownload_streams = 1").await;
}

/// The same with parallel downloads: the blocks already fetched (at most 4 of 1 MiB here) are
/// delivered, then the block that cannot be fetched fails the download after its one retry.
#[tokio::test]
async fn a_parallel_download_fails_within_its_retries_when_sharepoint_dies() {
    sharepoint_dies_mid_download("max_retries = 3\ndownload_streams = 4\ndownload_block_mib = 1")
        .await;
}

async fn sharepoint_dies_mid_download(connection: &str) {
    // At debug level, no line may carry the download URL's `tempauth`.
    let _ = common::SERVE_RUST_LOG.set("info,spgate=debug");
    let gw = Gateway::start_with(Ctx::new().await, &[alice()], connection).await;
    let bytes = random(24 << 20);
    gw.write_local("big.bin", &bytes);
    gw.sftp_ok("alice", "put big.bin /big.bin\n").await;
    // Queued (SPGATE_TEST_UPLOAD_COMMIT): the download must come from SharePoint, not the queue.
    gw.settle().await;

    // 4 Mbit/s: the download takes ~50 s; SharePoint dies after the first 2 MiB arrived.
    let got = gw.client_dir().join("got.bin");
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&got).map_or(0, |m| m.len()) < 2 << 20 {
            assert!(Instant::now() < deadline, "the download never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw.ctx.sim.kill();
        Instant::now()
    };
    let (run, killed_at) = tokio::join!(
        gw.sftp_with("alice", &["-l", "4000"], "get /big.bin got.bin\n"),
        kill
    );
    let took = killed_at.elapsed();
    assert!(!run.success, "the download cannot have succeeded: {run}");
    // Three retries back off for under 2 s; one budget per queued read took over a minute.
    assert!(
        took < Duration::from_secs(30),
        "the client waited {took:?} after SharePoint died: {run}"
    );
    let kept = std::fs::read(&got).unwrap_or_default();
    assert!(
        kept[..] == bytes[..kept.len()],
        "the part that arrived is not the file's start"
    );
    let log = std::fs::read_to_string(gw.dir.path().join("spgate.log")).unwrap();
    assert!(log.contains("DEBUG"), "debug lines are on");
    assert!(
        log.contains("network:"),
        "the refused connections were logged:\n{}",
        gw.log_tail()
    );
    assert!(
        !log.contains("tempauth"),
        "a log line carries tempauth:\n{log}"
    );
}

/// SIGTERM while one SFTP connection uploads and another sits idle (paramiko): the idle one is
/// closed at once, the upload goes on to its close and is stored, and then spgate exits.
#[tokio::test]
async fn a_shutdown_closes_idle_connections_and_lets_an_upload_finish() {
    let mut gw = Gateway::start(&[alice().password("pw").commit("close")]).await;
    let bytes = random(640 * 1024);
    let local = gw.write_local("slow.bin", &bytes);
    let script = format!(
        r#"
import os, signal, sys, time, paramiko
def connect():
    t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
    t.connect(username="alice", password="pw")
    return paramiko.SFTPClient.from_transport(t)
idle, busy = connect(), connect()
data = open({local:?}, "rb").read()
with busy.open("slow.bin", "wb") as f:
    for at in range(0, len(data), 64 * 1024):
        if at == 128 * 1024:
            os.kill({pid}, signal.SIGTERM)
            stopped = time.monotonic()
        f.write(data[at:at + 64 * 1024])
        time.sleep(0.2)
print("upload closed", f"{{time.monotonic() - stopped:.1f}}", "s after SIGTERM")
try:
    idle.listdir(".")
    print("idle connection still open")
except (EOFError, OSError, paramiko.SSHException):
    print("idle connection closed")
"#,
        pid = gw.pid(),
        local = local.display().to_string(),
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", &script, &gw.sftp_port.to_string()]);
    let run = gw.run(cmd, "paramiko-shutdown").await;
    assert!(run.success, "{run}");
    assert!(run.output.contains("upload closed"), "{run}");
    assert!(run.output.contains("idle connection closed"), "{run}");
    gw.assert_stored("slow.bin", &bytes).await;
    let status = gw.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "spgate serve: {status:?}\n{}",
        gw.log_tail()
    );
}
