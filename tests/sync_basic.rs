//! Sync smoke tests: each direction end to end through the real binary and the simulator.

mod common;
mod sync_support;

use sync_support::Env;

#[tokio::test(flavor = "multi_thread")]
async fn push_uploads_a_tree_and_a_rerun_changes_nothing() {
    let env = Env::new("push", "").await;
    env.write("a.txt", b"alpha", 100);
    env.write("sub/b.bin", &common::data(5 * 1024 * 1024 + 7, 1), 100);
    env.write("sub/deeper/c.txt", b"", 100);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 3, "{}", ran.out);
    assert_eq!(
        env.remote_files().await,
        ["a.txt", "sub/b.bin", "sub/deeper/c.txt"]
    );
    assert_eq!(env.remote_bytes("a.txt").await.unwrap(), b"alpha");
    assert_eq!(
        env.remote_bytes("sub/b.bin").await.unwrap(),
        common::data(5 * 1024 * 1024 + 7, 1)
    );
    env.ctx
        .sim
        .control("/stats/reset", serde_json::json!({}))
        .await;
    let again = env.sync_ok(&[]).await;
    assert_eq!(again.count("uploaded"), 0, "{}", again.out);
    let stats = env.ctx.sim.stats().await;
    assert!(
        stats["requests"].as_u64().unwrap() <= 5,
        "a no-change run made {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_downloads_with_remote_times_and_two_way_meets_in_the_middle() {
    let env = Env::new("two-way", "").await;
    env.put_remote("from-sp.txt", b"remote side").await;
    env.write("from-local.txt", b"local side", 50);
    let ran = env.sync_ok(&[]).await;
    assert_eq!(ran.count("uploaded"), 1, "{}", ran.out);
    assert_eq!(ran.count("downloaded"), 1, "{}", ran.out);
    assert_eq!(env.read("from-sp.txt").unwrap(), b"remote side");
    assert_eq!(
        env.remote_bytes("from-local.txt").await.unwrap(),
        b"local side"
    );
    assert_eq!(env.local_files(), ["from-local.txt", "from-sp.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_files_are_never_synced_and_day_old_ones_are_swept() {
    let env = Env::new("push", "").await;
    env.write("keep.txt", b"data", 100);
    env.write(
        "sub/.spgate.big.bin.00ff.partial",
        b"killed download",
        2 * 86_400,
    );
    env.write(".spgate.live.txt.0abc.partial", b"upload in progress", 10);
    env.sync_ok(&[]).await;
    assert_eq!(env.remote_files().await, ["keep.txt"]);
    assert_eq!(
        env.local_files(),
        [".spgate.live.txt.0abc.partial", "keep.txt"],
        "the day-old leftover is removed, the young one is left alone"
    );
}
