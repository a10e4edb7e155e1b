//! Parallel downloads over SFTP (`download_streams`): a large file comes in several ranged GETs
//! on connections of their own and arrives byte for byte; small files and
//! `download_streams = 1` cost the requests a download always cost; with SharePoint failing
//! requests mid-way a download completes right or fails cleanly, never with wrong bytes.

mod common;
mod sftp_support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sftp_support::{Gateway, User, random};
use sha2::{Digest, Sha256};

use common::Ctx;

const ALL: &[&str] = &["*"];
const MIB: usize = 1024 * 1024;

fn alice() -> User {
    User::new("alice").sharepoint("/", "/", ALL)
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A gateway (with `connection` settings) whose library holds `name` with `bytes`; the
/// connection has its token and library, and the simulator's counters are zeroed.
async fn gateway(connection: &str, name: &str, bytes: &[u8]) -> Gateway {
    let gw = Gateway::start_with(Ctx::new().await, &[alice()], connection).await;
    gw.sim_put(name, bytes).await;
    gw.sftp_ok("alice", "ls\n").await;
    gw.ctx.sim.control("/stats/reset", json!({})).await;
    gw
}

async fn sim_stats(gw: &Gateway) -> Value {
    gw.ctx.sim.stats().await
}

#[tokio::test]
async fn a_40_mib_file_comes_in_parallel_ranges() {
    let bytes = random(40 * MIB);
    let gw = gateway("download_streams = 4", "big.bin", &bytes).await;
    gw.sftp_ok("alice", "get big.bin got.bin\n").await;
    assert_eq!(sha256(&gw.read_local("got.bin")), sha256(&bytes));

    // The redirect, then 5 blocks of 8 MiB: each a ranged GET.
    let stats = sim_stats(&gw).await;
    assert_eq!(stats["ranged_downloads"], 5, "{stats}");
    assert_eq!(stats["by_kind"]["download"], 1 + 5, "{stats}");
    // Four were started at once: they cannot share an HTTP/1.1 connection.
    let connections = stats["download_connections"].as_u64().unwrap();
    assert!(connections >= 2, "{connections} connections: {stats}");
}

#[tokio::test]
async fn small_files_and_one_stream_cost_what_they_always_did() {
    // Under two blocks: the redirect and one streaming GET, no range.
    let small = random(15 * MIB);
    let gw = gateway("download_streams = 4", "small.bin", &small).await;
    gw.sftp_ok("alice", "get small.bin got.bin\n").await;
    assert_eq!(sha256(&gw.read_local("got.bin")), sha256(&small));
    let stats = sim_stats(&gw).await;
    assert_eq!(stats["by_kind"]["download"], 2, "{stats}");
    assert_eq!(stats["ranged_downloads"], 0, "{stats}");

    let big = random(40 * MIB);
    let gw = gateway("download_streams = 1", "big.bin", &big).await;
    gw.sftp_ok("alice", "get big.bin got.bin\n").await;
    assert_eq!(sha256(&gw.read_local("got.bin")), sha256(&big));
    let stats = sim_stats(&gw).await;
    assert_eq!(stats["by_kind"]["download"], 2, "{stats}");
    assert_eq!(stats["ranged_downloads"], 0, "{stats}");
}

#[tokio::test]
async fn a_resumed_download_starts_its_blocks_where_it_resumes() {
    let bytes = random(40 * MIB);
    let gw = gateway("download_streams = 4", "big.bin", &bytes).await;
    let cut = 13 * MIB + 77;
    gw.write_local("got.bin", &bytes[..cut]);
    gw.sftp_ok("alice", "reget big.bin got.bin\n").await;
    assert_eq!(sha256(&gw.read_local("got.bin")), sha256(&bytes));
    // 27 MiB from the cut: 4 blocks.
    let stats = sim_stats(&gw).await;
    assert_eq!(stats["ranged_downloads"], 4, "{stats}");
}

/// What a download under faults may leave: the whole file, or (after a clean failure) a
/// prefix of it. Never other bytes.
fn assert_right_or_clean(run: &sftp_support::Run, got: Option<Vec<u8>>, want: &[u8]) {
    match (run.success, got) {
        (true, Some(got)) => assert_eq!(sha256(&got), sha256(want), "{run}"),
        (true, None) => panic!("sftp succeeded without a file: {run}"),
        (false, Some(got)) => {
            assert!(got.len() < want.len(), "a failed get kept it all? {run}");
            assert!(
                got[..] == want[..got.len()],
                "a failed get left bytes that are not a prefix of the file: {run}"
            );
        }
        (false, None) => {}
    }
}

#[tokio::test]
async fn requests_failing_mid_download_never_give_wrong_bytes() {
    let bytes = random(40 * MIB);
    // With retries: every third request fails and is retried; the download completes.
    let gw = gateway("download_streams = 4", "big.bin", &bytes).await;
    gw.faults(json!({"fail_5xx_every": 3})).await;
    let run = gw.sftp("alice", "get big.bin got.bin\n").await;
    gw.clear_faults().await;
    assert!(run.success, "{run}");
    assert_eq!(sha256(&gw.read_local("got.bin")), sha256(&bytes));
    let stats = sim_stats(&gw).await;
    assert!(stats["ranged_downloads"].as_u64() >= Some(5), "{stats}");

    // Without retries, blocks of 1 MiB: every other request fails once 4 MiB have arrived; a
    // block gets one more try. Whatever the outcome, the bytes that arrived are the file's.
    let connection = "download_streams = 4\ndownload_block_mib = 1\nmax_retries = 0";
    let gw = gateway(connection, "big.bin", &bytes).await;
    let (run, kept) = fail_mid_way(&gw, 2).await;
    assert_right_or_clean(&run, kept, &bytes);

    // Every request fails once 4 MiB have arrived: the blocks fetched before are delivered,
    // then the download fails.
    let gw = gateway(connection, "big.bin", &bytes).await;
    let (run, kept) = fail_mid_way(&gw, 1).await;
    assert!(!run.success, "{run}");
    let kept = kept.unwrap_or_default();
    assert!(kept.len() >= 4 << 20, "{} bytes kept", kept.len());
    assert_right_or_clean(&run, Some(kept), &bytes);
    let log = gw.log_tail();
    assert!(
        !log.contains("tempauth"),
        "a download URL in the log:\n{log}"
    );
}

/// Gets `big.bin` at 40 Mbit/s; once 4 MiB have arrived, every `every`th request fails.
/// Answers the run and what it left.
async fn fail_mid_way(gw: &Gateway, every: u64) -> (sftp_support::Run, Option<Vec<u8>>) {
    let got = gw.client_dir().join(format!("got-{every}.bin"));
    let fail = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&got).map_or(0, |m| m.len()) < 4 << 20 {
            assert!(Instant::now() < deadline, "the download never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw.faults(json!({"fail_5xx_every": every})).await;
    };
    let batch = format!("get big.bin {}\n", got.display());
    let (run, ()) = tokio::join!(gw.sftp_with("alice", &["-l", "40000"], &batch), fail);
    gw.clear_faults().await;
    let kept = std::fs::read(&got).ok();
    eprintln!(
        "every {every} failing mid-way: success {}, {:?} bytes kept",
        run.success,
        kept.as_ref().map(Vec::len)
    );
    (run, kept)
}
