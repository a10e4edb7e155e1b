//! Sync jobs inside `spgate serve`: a job runs when the gateway starts, and an SFTP upload into
//! a pushed local folder starts it again soon, without waiting for the interval.

mod common;
mod sync_support;

use std::time::{Duration, Instant};

use common::{Ctx, spawn_serve};
use sync_support::quote_toml;

/// Polls `check` until it answers true or `within` passes.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_job_runs_at_start_and_again_after_an_sftp_upload() {
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::write(drop.join("early.txt"), b"there before the start").unwrap();
    let config = format!(
        "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
         {connection}\n\
         [[users]]\nname = \"scanner\"\npassword_hash = {hash}\n\
         [[users.mounts]]\npath = \"/\"\nlocal = {drop}\npermissions = [\"list\", \"read\", \"write\", \"overwrite\"]\n\n\
         [[syncs]]\nname = \"drop\"\nlocal = {drop}\nconnection = \"sp\"\nremote = \"/Inbound\"\n\
         direction = \"push\"\nafter_copy = \"delete\"\ninterval = \"1h\"\n",
        connection = ctx.connection_toml("sp"),
        state = quote_toml(dir.path().join("state").to_str().unwrap()),
        hash = quote_toml(&spgate::users::hash_password("scan-pass")),
        drop = quote_toml(drop.to_str().unwrap()),
    );
    let config_path = dir.path().join("spgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("spgate.log");
    let (mut child, announced) = spawn_serve(&config_path, &log, &["sftp"]);
    let port = announced[0]
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no sftp address; log:\n{}", common::file_tail(&log, 4000)));

    // The run at start pushes the file that was waiting, then deletes the verified source.
    eventually(
        Duration::from_secs(30),
        "early.txt on SharePoint",
        || async { ctx.item_at("Inbound/early.txt").await.is_some() },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "early.txt removed locally",
        || async { !drop.join("early.txt").exists() },
    )
    .await;

    // An upload through the gateway wakes the job long before its one-hour interval.
    let upload = dir.path().join("late.txt");
    std::fs::write(&upload, b"uploaded by a partner").unwrap();
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--user", "scanner:scan-pass", "-T"])
        .arg(&upload)
        .arg(format!("sftp://127.0.0.1:{port}/late.txt"))
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "curl upload; log:\n{}",
        common::file_tail(&log, 4000)
    );
    eventually(
        Duration::from_secs(30),
        "late.txt on SharePoint",
        || async { ctx.item_at("Inbound/late.txt").await.is_some() },
    )
    .await;
    let item = ctx.item("Inbound/late.txt").await;
    assert_eq!(
        ctx.download(item["id"].as_str().unwrap()).await,
        b"uploaded by a partner"
    );
    eventually(
        Duration::from_secs(10),
        "late.txt removed locally",
        || async { !drop.join("late.txt").exists() },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
}
