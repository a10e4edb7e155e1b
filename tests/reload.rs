//! Configuration reload: `POST /api/v1/reload` and SIGHUP put a changed file in force without
//! a restart; an invalid file, or one changing what needs a restart, is refused with the reason
//! and the old configuration stays.

mod common;
mod sync_support;

use std::time::{Duration, Instant};

use common::Ctx;
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
    // upload_commit "close": a test reads SharePoint as soon as the client's close returns.
    for (name, password) in users {
        text += &format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = {}\n\
             [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/Shared\"\npermissions = \"*\"\nupload_commit = \"close\"\n\n",
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
    common::post_with(&format!("http://{admin}/api/v1/reload"), TOKEN).await
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_a_user_and_refuses_a_broken_file_keeping_the_old_one() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("Shared").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config_text = config(&ctx, &state, &[("alice", "alice-pw")]);
    let (mut child, port, admin) = common::spawn_sftp_admin(dir.path(), &config_text);
    let path = dir.path().join("spgate.toml");
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

/// A gateway (SFTP + admin) in front of `ctx`, with user alice; answers the child, the SFTP
/// port, the admin address and the configuration file.
struct Served {
    child: std::process::Child,
    port: u16,
    admin: String,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- spgate log ----\n{}",
                common::file_tail(&self.log, 6000)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(ctx: &Ctx) -> Served {
    ctx.mkdirs("Shared").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = self::config(ctx, &state, &[("alice", "alice-pw")]);
    let (child, port, admin) = common::spawn_sftp_admin(dir.path(), &text);
    let (config, log) = (
        dir.path().join("spgate.toml"),
        dir.path().join("spgate.log"),
    );
    Served {
        child,
        port,
        admin,
        config,
        log,
        _dir: dir,
    }
}

/// `GET /readyz`: 200 when every connection is enabled.
async fn ready(admin: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// How many alerts were raised about connection `sp`, open or cleared since (the admin API's
/// alert history).
async fn raised(served: &Served) -> usize {
    let url = format!("http://{}/api/v1/alerts/history?source=sp", served.admin);
    let history = common::get_json_with(&url, TOKEN).await;
    history["alerts"].as_array().unwrap().len()
}

/// Makes the running gateway disable its connection: a login lists the root with the app
/// revoked.
async fn disable(served: &Served, ctx: &Ctx) {
    ctx.revoke_app(true).await;
    assert!(!can_log_in(served.port, "alice", "alice-pw").await);
    let (status, body) = ready(&served.admin).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connection sp is disabled"), "{body}");
}

/// The seed: "Even if you don't make any changes to the configuration, saving the record will
/// re-enable the connection." A reload of an unchanged file (SIGHUP after `touch`, or the API)
/// re-enables; with the credentials still bad, the next request disables it again with a new
/// alert.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_without_changes_re_enables_a_disabled_connection() {
    let ctx = Ctx::new().await;
    let served = serve(&ctx).await;
    assert!(can_log_in(served.port, "alice", "alice-pw").await);
    disable(&served, &ctx).await;
    assert_eq!(raised(&served).await, 1);

    // Credentials still bad: the reload re-enables, the next request disables again.
    let (status, body) = reload(&served.admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ready(&served.admin).await.0, 200, "enabled by the reload");
    assert!(!can_log_in(served.port, "alice", "alice-pw").await);
    assert_eq!(ready(&served.admin).await.0, 503, "disabled again");
    assert_eq!(raised(&served).await, 2, "a fresh alert");

    // Fixed in the tenant, then the unchanged file saved again (SIGHUP after a touch).
    ctx.revoke_app(false).await;
    let file = std::fs::File::options()
        .append(true)
        .open(&served.config)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    let pid = rustix::process::Pid::from_raw(served.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&served.admin).await.0 != 200 {
        assert!(Instant::now() < deadline, "SIGHUP did not re-enable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(can_log_in(served.port, "alice", "alice-pw").await);
}

/// `spgate connections enable` beside a running gateway acts on it within a second (it follows
/// the state store): no reload.
#[tokio::test(flavor = "multi_thread")]
async fn connections_enable_reaches_the_running_gateway() {
    let ctx = Ctx::new().await;
    let served = serve(&ctx).await;
    disable(&served, &ctx).await;
    ctx.revoke_app(false).await;
    assert!(
        !can_log_in(served.port, "alice", "alice-pw").await,
        "still disabled: nothing was enabled yet"
    );

    let out = common::spgate_with(&served.config, &["connections", "enable", "sp"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("enabled"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while ready(&served.admin).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the gateway did not follow the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(can_log_in(served.port, "alice", "alice-pw").await);
}
