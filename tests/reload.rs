//! Configuration reload: `POST /api/v1/reload` and SIGHUP put a changed file in force without
//! a restart; an invalid file, or one changing what needs a restart, is refused with the reason
//! and the old configuration stays.

mod common;
mod sync_support;

use std::time::{Duration, Instant};

use common::{Ctx, spawn_serve};
use sync_support::quote_toml;

const TOKEN: &str = "reload-admin-token";

fn config(ctx: &Ctx, state: &std::path::Path, users: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         {connection}\n",
        connection = ctx.connection_toml("sp"),
        state = quote_toml(state.to_str().unwrap()),
    );
    for (name, password) in users {
        text += &format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = {}\n\
             [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/Shared\"\npermissions = \"*\"\n\n",
            quote_toml(&spgate::users::hash_password(password))
        );
    }
    text
}

/// Whether `user` can log in over SFTP and list the root.
async fn can_log_in(port: u16, user: &str, password: &str) -> bool {
    tokio::process::Command::new("curl")
        .args(["-sS", "-k", "-o", "/dev/null", "--user"])
        .arg(format!("{user}:{password}"))
        .arg(format!("sftp://127.0.0.1:{port}/"))
        .status()
        .await
        .unwrap()
        .success()
}

async fn reload(admin: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{admin}/api/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_a_user_and_refuses_a_broken_file_keeping_the_old_one() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("Shared").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, config(&ctx, &state, &[("alice", "alice-pw")])).unwrap();
    let log = dir.path().join("spgate.log");
    let (mut child, announced) = spawn_serve(&path, &log, &["sftp", "admin"]);
    let (Some(sftp), Some(admin)) = (announced[0].clone(), announced[1].clone()) else {
        panic!("no addresses:\n{}", common::file_tail(&log, 4000));
    };
    let port: u16 = sftp.rsplit(':').next().unwrap().parse().unwrap();
    assert!(can_log_in(port, "alice", "alice-pw").await);
    assert!(!can_log_in(port, "bob", "bob-pw").await);

    // A session open across the reloads keeps working: paramiko holds one while they happen.
    let mut held = tokio::process::Command::new("python3")
        .args(["-c", &format!(
            "import paramiko, sys\n\
             t = paramiko.Transport(('127.0.0.1', {port})); t.connect(username='alice', password='alice-pw')\n\
             s = paramiko.SFTPClient.from_transport(t)\n\
             s.listdir('/'); print('ready', flush=True)\n\
             sys.stdin.readline()\n\
             with s.open('/held.txt', 'w') as f: f.write('written after the reloads')\n\
             print(s.stat('/held.txt').st_size, flush=True)\n"
        )])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    out.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim(), "ready");

    std::fs::write(
        &path,
        config(&ctx, &state, &[("alice", "alice-pw"), ("bob", "bob-pw")]),
    )
    .unwrap();
    let (status, body) = reload(&admin).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        can_log_in(port, "bob", "bob-pw").await,
        "bob after the reload"
    );

    // A broken file is refused with the reason; the configuration in force stays.
    std::fs::write(&path, "[state]\ndir = 5\nnot toml at all [[[").unwrap();
    let (status, body) = reload(&admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("spgate.toml"), "{body}");
    assert!(
        can_log_in(port, "bob", "bob-pw").await,
        "bob after a refused reload"
    );

    // So is a change that needs a restart.
    let moved = config(&ctx, &state, &[("alice", "alice-pw")]).replace(
        "[sftp]\nlisten = \"127.0.0.1:0\"",
        "[sftp]\nlisten = \"127.0.0.1:1\"",
    );
    std::fs::write(&path, moved).unwrap();
    let (status, body) = reload(&admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("[sftp]") && body.contains("restart"),
        "{body}"
    );

    // SIGHUP reloads too: carol appears.
    std::fs::write(
        &path,
        config(
            &ctx,
            &state,
            &[("alice", "alice-pw"), ("carol", "carol-pw")],
        ),
    )
    .unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !can_log_in(port, "carol", "carol-pw").await {
        assert!(
            Instant::now() < deadline,
            "carol never could log in after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!can_log_in(port, "bob", "bob-pw").await, "bob was removed");

    // The session opened before all this still works.
    use tokio::io::AsyncWriteExt;
    held.stdin.take().unwrap().write_all(b"go\n").await.unwrap();
    line.clear();
    out.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim(), "25", "the held session's write");
    assert!(held.wait().await.unwrap().success());
    assert!(ctx.item_at("Shared/held.txt").await.is_some());
    let _ = child.kill();
    let _ = child.wait();
}
