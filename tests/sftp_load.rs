//! Many sessions at once: 20 OpenSSH `sftp` processes started together, each putting its own
//! file (below and above the 4 MiB simple-upload limit) and getting it back.

mod common;
mod sftp_support;

use futures_util::future::join_all;
use sftp_support::{Gateway, User, assert_same, random};

const SESSIONS: usize = 20;

#[tokio::test]
async fn twenty_concurrent_sessions_all_succeed() {
    let gw = Gateway::start(&[User::new("alice").sharepoint("/", "/Load", &["*"])]).await;
    gw.sim_mkdirs("Load").await;
    let files: Vec<Vec<u8>> = (0..SESSIONS).map(|i| random(300_000 * (i + 1))).collect();
    for (i, bytes) in files.iter().enumerate() {
        gw.write_local(&format!("up{i}.bin"), bytes);
    }
    let batches: Vec<String> = (0..SESSIONS)
        .map(|i| {
            format!("put up{i}.bin s{i}/f{i}.bin\nls -l s{i}\nget s{i}/f{i}.bin down{i}.bin\n")
        })
        .collect();
    // Each session writes into its own folder, made beforehand.
    for i in 0..SESSIONS {
        gw.sim_mkdirs(&format!("Load/s{i}")).await;
    }

    let started = std::time::Instant::now();
    let runs = join_all(batches.iter().map(|b| gw.sftp("alice", b))).await;
    let elapsed = started.elapsed();
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.success)
        .map(|r| r.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {SESSIONS} sessions failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    for (i, bytes) in files.iter().enumerate() {
        gw.assert_stored(&format!("Load/s{i}/f{i}.bin"), bytes)
            .await;
        assert_same(&gw.read_local(&format!("down{i}.bin")), bytes, "got back");
    }
    let total: usize = files.iter().map(Vec::len).sum();
    eprintln!(
        "{SESSIONS} sessions moved {} MiB up and down in {elapsed:?}",
        total >> 20
    );
}
