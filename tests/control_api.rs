//! Users managed live through the admin API (`/api/v1/users`, `/api/v1/sessions`): a user made
//! through the API logs in over SFTP and FTP at once, without a reload; one the configuration
//! file declares is read-only (409 naming the file); an invalid user is refused with the field;
//! disabling or deleting a user closes its open sessions; a session can be closed by id; API
//! users outlive a restart, and a user removed from the file is gone after a reload.

mod common;

use std::time::Instant;

use common::{ADMIN_TOKEN, Gateway, User};
use serde_json::{Value, json};

const ALL: &[&str] = &["*"];

/// Sends `method path` with `body` to the gateway's admin API: the status and the JSON answer
/// (`null` when there is none).
async fn api(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let admin = gw
        .admin
        .as_deref()
        .expect("the gateway serves the admin API");
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

/// Whether `user` can log in with `password` and list `/` over `protocol` (curl).
async fn can_list(gw: &Gateway, protocol: &str, user: &str, password: &str) -> bool {
    let port = match protocol {
        "sftp" => gw.sftp_port,
        _ => gw.ftp_port,
    };
    tokio::process::Command::new("curl")
        .args(["-sS", "-k", "-o", "/dev/null", "--max-time", "20", "--user"])
        .arg(format!("{user}:{password}"))
        .arg(format!("{protocol}://127.0.0.1:{port}/"))
        .status()
        .await
        .expect("run curl")
        .success()
}

/// A user record as the API takes it: one SharePoint mount of everything.
fn user(name: &str, password: &str) -> Value {
    json!({
        "name": name,
        "password": password,
        "mounts": [{"path": "/", "connection": "sp", "remote": "/", "permissions": "*"}],
    })
}

/// Python: logs in over SFTP as argv[2]/argv[3] on port argv[1], prints `open` once a listing
/// worked, then waits (up to 20 s) for the server to close the connection: prints
/// `closed after S` or `still open`.
const HOLD: &str = r#"
import sys, time, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username=sys.argv[2], password=sys.argv[3])
sftp = paramiko.SFTPClient.from_transport(t)
sftp.listdir("/")
print("open", flush=True)
start = time.monotonic()
while t.is_active() and time.monotonic() - start < 20:
    time.sleep(0.05)
print(f"closed after {time.monotonic() - start:.2f}" if not t.is_active() else "still open", flush=True)
"#;

/// Python: [`HOLD`] over FTP: logs in, prints `open` once a listing worked, then sends NOOP
/// every 50 ms until the server closes the connection.
const HOLD_FTP: &str = r#"
import sys, time, ftplib
f = ftplib.FTP()
f.connect("127.0.0.1", int(sys.argv[1]), timeout=5)
f.login(sys.argv[2], sys.argv[3])
f.nlst("/")
print("open", flush=True)
start = time.monotonic()
closed = False
while not closed and time.monotonic() - start < 20:
    try:
        f.voidcmd("NOOP")
        time.sleep(0.05)
    except (EOFError, OSError, ftplib.Error):
        closed = True
print(f"closed after {time.monotonic() - start:.2f}" if closed else "still open", flush=True)
"#;

/// A held SFTP session of `user` (see [`HOLD`]), once it is open.
async fn hold(gw: &Gateway, user: &str, password: &str) -> tokio::process::Child {
    hold_on(gw, "sftp", user, password).await
}

/// A held session of `user` over `protocol` (`sftp` or `ftp`), once it is open.
async fn hold_on(
    gw: &Gateway,
    protocol: &str,
    user: &str,
    password: &str,
) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let (script, port) = match protocol {
        "ftp" => (HOLD_FTP, gw.ftp_port),
        _ => (HOLD, gw.sftp_port),
    };
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .args([user, password])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python3");
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(
        line.trim(),
        "open",
        "the session did not open:\n{}",
        gw.log_tail()
    );
    child
}

/// What [`hold`]'s session printed at its end.
async fn end_of(child: tokio::process::Child) -> String {
    let out = child.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_made_through_the_api_log_in_at_once_and_lose_their_sessions_when_disabled() {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let mut gw = Gateway::start_with_admin(&[alice]).await;

    // Created, then usable at once over both protocols (no reload).
    let (status, body) = api(&gw, "POST", "/api/v1/users", Some(user("bob", "bob-pw-1"))).await;
    assert_eq!(status, 201, "{body}");
    let created = Instant::now();
    assert_eq!(body["has_password"], true, "{body}");
    assert_eq!(body["in_force"], true, "{body}");
    assert!(body["managed_by"].is_null(), "{body}");
    assert!(
        body.get("password").is_none() && body.get("password_hash").is_none(),
        "{body}"
    );
    assert!(
        can_list(&gw, "sftp", "bob", "bob-pw-1").await,
        "{}",
        gw.log_tail()
    );
    assert!(
        can_list(&gw, "ftp", "bob", "bob-pw-1").await,
        "{}",
        gw.log_tail()
    );
    // Both logins are in the audit the store keeps, newest first.
    let audited = within(10.0, || async {
        let (_, body) = api(&gw, "GET", "/api/v1/audit?user=bob&action=login", None).await;
        body["events"].as_array().is_some_and(|e| e.len() >= 2)
    })
    .await;
    assert!(audited.is_some(), "{}", gw.log_tail());
    let (_, body) = api(&gw, "GET", "/api/v1/audit?user=bob&limit=1", None).await;
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["protocol"], "ftp", "the newest first: {body}");
    assert_eq!(events[0]["outcome"], "ok", "{body}");
    // The next page holds the SFTP login, older.
    let next = body["next"].as_str().unwrap().to_string();
    let path = format!("/api/v1/audit?user=bob&action=login&limit=1&after={next}");
    let (_, body) = api(&gw, "GET", &path, None).await;
    assert_eq!(body["events"][0]["protocol"], "sftp", "{body}");
    let (status, body) = api(&gw, "GET", "/api/v1/audit?since=yesterday", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("since"))
    );
    assert!(created.elapsed().as_secs_f64() < 5.0);
    assert!(!can_list(&gw, "sftp", "bob", "wrong").await);
    // The same name again is a conflict; the file's user is read-only, named with its file.
    let (status, body) = api(&gw, "POST", "/api/v1/users", Some(user("bob", "x"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("exists")),
        "{body}"
    );
    let (status, body) = api(&gw, "PUT", "/api/v1/users/alice", Some(user("alice", "x"))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "managed_by_config", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("spgate.toml"), "{body}");
    let (status, _) = api(&gw, "DELETE", "/api/v1/users/alice", None).await;
    assert_eq!(status, 409);
    assert!(can_list(&gw, "sftp", "alice", "alice-pw").await);
    // Invalid users are refused with the field, by the configuration's own validation.
    let mut bad = user("carol", "carol-pw");
    bad["mounts"][0]["connection"] = json!("nowhere");
    let (status, body) = api(&gw, "PUT", "/api/v1/users/carol", Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "mounts[0].connection", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{body}"
    );
    let (status, body) = api(
        &gw,
        "PUT",
        "/api/v1/users/carol",
        Some(json!({"mounts": []})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = api(&gw, "GET", "/api/v1/users/carol", None).await;
    assert_eq!(status, 404, "nothing invalid was stored");
    // A change to users keeps the connections as they were: no new token is fetched.
    let tokens = || async {
        gw.ctx.sim.stats().await["by_kind"]["token"]
            .as_u64()
            .unwrap()
    };
    let before = tokens().await;
    let (status, body) = api(
        &gw,
        "PUT",
        "/api/v1/users/carol",
        Some(user("carol", "c-pw")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(can_list(&gw, "sftp", "carol", "c-pw").await);
    assert_eq!(tokens().await, before, "the connection was opened again");
    let (status, _) = api(&gw, "DELETE", "/api/v1/users/carol", None).await;
    assert_eq!(status, 204);
    // Listed, with who manages each and without hashes.
    let (status, body) = api(&gw, "GET", "/api/v1/users", None).await;
    assert_eq!(status, 200);
    let users = body["users"].as_array().unwrap();
    let names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob"], "{body}");
    assert!(
        users[0]["managed_by"]
            .as_str()
            .unwrap()
            .ends_with("spgate.toml")
    );
    assert!(!body.to_string().contains("argon2"), "{body}");

    // A held session of bob closes when bob is disabled (the password stays as it was).
    let held = hold(&gw, "bob", "bob-pw-1").await;
    let (status, body) = api(&gw, "GET", "/api/v1/sessions", None).await;
    assert_eq!(status, 200);
    let bobs: Vec<&Value> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["user"] == "bob")
        .collect();
    assert_eq!(bobs.len(), 1, "{body}");
    assert_eq!(bobs[0]["protocol"], "sftp");
    let held_ftp = hold_on(&gw, "ftp", "bob", "bob-pw-1").await;
    let mut disabled = user("bob", "unused");
    disabled.as_object_mut().unwrap().remove("password");
    disabled["enabled"] = json!(false);
    let (status, body) = api(&gw, "PUT", "/api/v1/users/bob", Some(disabled.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["has_password"], true,
        "the stored password is kept: {body}"
    );
    for held in [held, held_ftp] {
        let end = end_of(held).await;
        assert!(end.starts_with("closed after"), "{end}\n{}", gw.log_tail());
    }
    assert!(!can_list(&gw, "sftp", "bob", "bob-pw-1").await);
    assert!(gw.log_tail().contains("the user was disabled"));
    // Enabled again with the same password: back.
    disabled["enabled"] = json!(true);
    let (status, _) = api(&gw, "PUT", "/api/v1/users/bob", Some(disabled)).await;
    assert_eq!(status, 200);
    assert!(can_list(&gw, "sftp", "bob", "bob-pw-1").await);

    // A session closed by its id.
    let held = hold(&gw, "alice", "alice-pw").await;
    let (_, body) = api(&gw, "GET", "/api/v1/sessions", None).await;
    let id = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "alice")
        .map(|s| s["id"].as_u64().unwrap())
        .expect("alice's session is listed");
    let (status, _) = api(&gw, "DELETE", &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, 204);
    let end = end_of(held).await;
    assert!(end.starts_with("closed after"), "{end}");
    let (status, _) = api(&gw, "DELETE", &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, 404);

    // API users outlive a restart.
    gw.crash_and_restart();
    assert!(
        can_list(&gw, "sftp", "bob", "bob-pw-1").await,
        "{}",
        gw.log_tail()
    );

    // Deleted: its session closes and it can no longer log in.
    let held = hold(&gw, "bob", "bob-pw-1").await;
    let (status, _) = api(&gw, "DELETE", "/api/v1/users/bob", None).await;
    assert_eq!(status, 204);
    let end = end_of(held).await;
    assert!(end.starts_with("closed after"), "{end}");
    assert!(!can_list(&gw, "sftp", "bob", "bob-pw-1").await);
    let (status, body) = api(&gw, "GET", "/api/v1/users/bob", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // A user removed from the file is gone from the store after a reload.
    let config = gw.dir.path().join("spgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let without_alice = text.split("[[users]]").next().unwrap().to_string();
    std::fs::write(&config, without_alice).unwrap();
    let (status, body) = api(&gw, "POST", "/api/v1/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(&gw, "GET", "/api/v1/users/alice", None).await;
    assert_eq!(status, 404);
    assert!(!can_list(&gw, "sftp", "alice", "alice-pw").await);
}

/// Runs `spgate ARGS --config <gw's file>`: whether it succeeded, and what it printed.
fn spgate_cli(gw: &Gateway, args: &[&str]) -> (bool, String) {
    let out = gw.spgate(args);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs `spgate users ARGS --config <gw's file>` with `stdin`: whether it succeeded, and what
/// it printed.
fn users_cli(gw: &Gateway, args: &[&str], stdin: &str) -> (bool, String) {
    records_cli(gw, "users", args, stdin)
}

/// Runs `spgate COMMAND ARGS --config <gw's file>` with `stdin`: whether it succeeded, and
/// what it printed.
fn records_cli(gw: &Gateway, command: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spgate"))
        .current_dir(gw.dir.path())
        .arg(command)
        .args(args)
        .arg("--config")
        .arg(gw.dir.path().join("spgate.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run spgate users");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Polls `check` until it holds, for up to `seconds`: how long it took, or `None`.
async fn within<F: std::future::Future<Output = bool>>(
    seconds: f64,
    mut check: impl FnMut() -> F,
) -> Option<f64> {
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed().as_secs_f64());
        }
        if start.elapsed().as_secs_f64() > seconds {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_users_while_the_server_runs() {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let gw = Gateway::start_with_admin(&[alice]).await;

    // Added by the CLI (password read from stdin): the running server lets dave in soon after.
    let (ok, out) = users_cli(
        &gw,
        &[
            "add",
            "dave",
            "--connection",
            "sp",
            "--remote",
            "/",
            "--password",
        ],
        "dave-pw-7\n",
    );
    assert!(ok, "{out}");
    let took = within(10.0, || can_list(&gw, "sftp", "dave", "dave-pw-7")).await;
    let took = took.unwrap_or_else(|| panic!("dave never got in:\n{}", gw.log_tail()));
    assert!(took < 3.0, "the server took {took:.1} s to see dave");
    // Listed by the CLI and the API alike, without the hash.
    let (ok, out) = users_cli(&gw, &["list", "--json"], "");
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "dave"]);
    assert!(!out.contains("argon2"), "{out}");
    let (_, body) = api(&gw, "GET", "/api/v1/users/dave", None).await;
    assert_eq!(body["in_force"], true, "{body}");

    // Disabled by the CLI: its open session closes, and it can no longer log in.
    let held = hold(&gw, "dave", "dave-pw-7").await;
    let (ok, out) = users_cli(&gw, &["disable", "dave"], "");
    assert!(ok, "{out}");
    let end = end_of(held).await;
    assert!(end.starts_with("closed after"), "{end}\n{}", gw.log_tail());
    assert!(!can_list(&gw, "sftp", "dave", "dave-pw-7").await);

    // Refusals say why and fail: the file's user, an unknown connection, an existing name.
    let (ok, out) = users_cli(&gw, &["delete", "alice"], "");
    assert!(
        !ok && out.contains("managed by the configuration file"),
        "{out}"
    );
    let (ok, out) = users_cli(
        &gw,
        &["add", "erin", "--connection", "elsewhere", "--password"],
        "pw\n",
    );
    assert!(!ok && out.contains("elsewhere"), "{out}");
    let (ok, out) = users_cli(
        &gw,
        &["add", "dave", "--connection", "sp", "--password"],
        "pw\n",
    );
    assert!(!ok && out.contains("exists"), "{out}");
    // A new password (stdin), then enabled again: the new one works, the old one not.
    let (ok, out) = users_cli(&gw, &["passwd", "dave"], "dave-pw-8\n");
    assert!(ok, "{out}");
    let (ok, out) = users_cli(&gw, &["enable", "dave"], "");
    assert!(ok, "{out}");
    let took = within(10.0, || can_list(&gw, "sftp", "dave", "dave-pw-8")).await;
    assert!(took.is_some(), "{}", gw.log_tail());
    assert!(!can_list(&gw, "sftp", "dave", "dave-pw-7").await);
    let (ok, out) = users_cli(&gw, &["remove", "dave"], "");
    assert!(ok, "{out}");
    let (ok, out) = users_cli(&gw, &["show", "dave"], "");
    assert!(!ok && out.contains("no user named dave"), "{out}");
}

/// The state of connection `name` in `GET /api/v1/connections` (`enabled`, `disabled`).
async fn connection_state(gw: &Gateway, name: &str) -> String {
    let (_, body) = api(gw, "GET", "/api/v1/connections", None).await;
    body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| format!("absent from {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_made_through_the_api_serve_mounts_keep_their_secret_sealed_and_reenable_when_saved()
 {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let gw = Gateway::start_with_admin(&[alice]).await;
    let sim = gw.ctx.sim.base.clone();
    let connection = |secret: Option<&str>| {
        let mut c = json!({
            "tenant": "contoso", "client_id": "spgate-demo", "authority": sim, "graph_url": sim,
            "site": "https://contoso.sharepoint.com/sites/partners", "max_retries": 1,
        });
        if let Some(secret) = secret {
            c["client_secret"] = json!(secret);
        }
        c
    };

    // Made, tested, and used by a user made through the API.
    let mut made = connection(Some("demo-secret"));
    made["name"] = json!("sp2");
    let (status, body) = api(&gw, "POST", "/api/v1/connections", Some(made)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["has_client_secret"], true, "{body}");
    assert!(!body.to_string().contains("demo-secret"), "{body}");
    let (_, tested) = api(&gw, "POST", "/api/v1/connections/sp2/test", None).await;
    assert_eq!(tested["ok"], true, "{tested}");
    let mut frank = user("frank", "frank-pw");
    frank["mounts"][0]["connection"] = json!("sp2");
    frank["mounts"][0]["upload_commit"] = json!("close");
    let (status, body) = api(&gw, "PUT", "/api/v1/users/frank", Some(frank)).await;
    assert_eq!(status, 201, "{body}");
    let local = gw.write_local("frank.txt", b"through an API connection\n");
    let put = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--user", "frank:frank-pw", "-T"])
        .arg(&local)
        .arg(format!("sftp://127.0.0.1:{}/frank.txt", gw.sftp_port))
        .status()
        .await
        .unwrap();
    assert!(put.success(), "{}", gw.log_tail());
    gw.assert_stored("/frank.txt", b"through an API connection\n")
        .await;
    // Never shown, and in use: not deleted.
    let (_, body) = api(&gw, "GET", "/api/v1/connections/sp2", None).await;
    assert!(
        !body.to_string().contains("demo-secret") && body["in_force"] == true,
        "{body}"
    );
    let (status, body) = api(&gw, "DELETE", "/api/v1/connections/sp2", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("frank"),
        "{body}"
    );
    // The file's connection is read-only.
    let (status, body) = api(&gw, "PUT", "/api/v1/connections/sp", Some(connection(None))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("managed_by_config"))
    );

    // A wrong secret: saved (credentials are not checked on save), the test says why, and the
    // first use disables the connection.
    let (status, body) = api(
        &gw,
        "PUT",
        "/api/v1/connections/sp2",
        Some(connection(Some("wrong"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, tested) = api(&gw, "POST", "/api/v1/connections/sp2/test", None).await;
    assert_eq!(tested["ok"], false, "{tested}");
    assert!(!can_list(&gw, "sftp", "frank", "frank-pw").await);
    assert_eq!(
        connection_state(&gw, "sp2").await,
        "disabled",
        "{}",
        gw.log_tail()
    );
    // Saving the record again, even unchanged (the secret left out stays), enables it again.
    let (status, body) = api(
        &gw,
        "PUT",
        "/api/v1/connections/sp2",
        Some(connection(None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_client_secret"], true, "{body}");
    assert_eq!(connection_state(&gw, "sp2").await, "enabled");
    // With the right secret it serves again.
    let (status, _) = api(
        &gw,
        "PUT",
        "/api/v1/connections/sp2",
        Some(connection(Some("demo-secret"))),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        can_list(&gw, "sftp", "frank", "frank-pw").await,
        "{}",
        gw.log_tail()
    );
    // Deleted once nothing uses it.
    assert_eq!(api(&gw, "DELETE", "/api/v1/users/frank", None).await.0, 204);
    assert_eq!(
        api(&gw, "DELETE", "/api/v1/connections/sp2", None).await.0,
        204
    );
    assert!(connection_state(&gw, "sp2").await.starts_with("absent"));

    // No client secret in the database, the file's nor the API's (sealed apart).
    let state = gw.dir.path().join("state");
    let mut raw = Vec::new();
    for file in ["spgate.db", "spgate.db-wal"] {
        raw.extend(std::fs::read(state.join(file)).unwrap_or_default());
    }
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("spgate-demo"), "the raw read sees the records");
    assert!(
        !raw.contains("demo-secret"),
        "the database holds the client secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_valid_and_describes_the_records() {
    let gw = Gateway::start_with_admin(&[]).await;
    let (status, document) = api(&gw, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200, "{document}");
    let schemas = &document["components"]["schemas"];
    assert!(
        schemas["User"]["properties"]["mounts"].is_object(),
        "{schemas}"
    );
    // Checked by a validator of its own (openapi-spec-validator, installed by .ci/run).
    let mut check = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\n\
                      validate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    use tokio::io::AsyncWriteExt;
    let mut stdin = check.stdin.take().unwrap();
    stdin
        .write_all(document.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = check.wait_with_output().await.unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("valid"), "{said}");
    // Without the token: refused like the rest of the API.
    let admin = gw.admin.as_deref().unwrap();
    let anonymous = reqwest::get(format!("http://{admin}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_jobs_made_through_the_api_run_and_keep_their_history() {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let gw = Gateway::start_with_admin(&[alice]).await;
    let outbox = gw.dir.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::fs::write(outbox.join("invoice.csv"), b"id,total\n1,99\n").unwrap();
    let job = json!({
        "name": "out", "local": outbox.to_str().unwrap(), "connection": "sp",
        "remote": "/Out", "direction": "push", "interval": "1h",
    });
    let (status, body) = api(&gw, "POST", "/api/v1/syncs", Some(job.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["in_force"], true, "{body}");
    // Run now; its run is in the history once it ended.
    let (status, body) = api(&gw, "POST", "/api/v1/syncs/out/run", None).await;
    assert_eq!(status, 202, "{body}");
    let ended = within(30.0, || async {
        let (_, body) = api(&gw, "GET", "/api/v1/syncs/out/runs", None).await;
        body["runs"]
            .as_array()
            .is_some_and(|runs| runs.iter().any(|r| !r["ended"].is_null()))
    })
    .await;
    assert!(ended.is_some(), "the run never ended:\n{}", gw.log_tail());
    let (_, body) = api(&gw, "GET", "/api/v1/syncs/out/runs?limit=1", None).await;
    assert_eq!(body["runs"][0]["outcome"], "success", "{body}");
    assert_eq!(body["runs"][0]["uploaded"], 1, "{body}");
    gw.assert_stored("/Out/invoice.csv", b"id,total\n1,99\n")
        .await;
    // The operator's commands see the job made through the API.
    let (ok, out) = spgate_cli(&gw, &["sync", "status"]);
    assert!(ok && out.contains("out"), "{out}");
    std::fs::write(outbox.join("second.csv"), b"id\n2\n").unwrap();
    let (ok, out) = spgate_cli(&gw, &["sync", "run", "out"]);
    assert!(ok, "{out}");
    gw.assert_stored("/Out/second.csv", b"id\n2\n").await;
    let (status, body) = api(&gw, "GET", "/api/v1/syncs/out/runs?limit=0", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("limit")),
        "{body}"
    );
    // Invalid jobs are refused with the field.
    let mut bad = job.clone();
    bad["direction"] = json!("sideways");
    let (status, body) = api(&gw, "PUT", "/api/v1/syncs/out", Some(bad)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("direction")),
        "{body}"
    );
    // A relative local folder has nothing to be relative to.
    let mut relative = job.clone();
    relative["local"] = json!("outbox");
    let (status, body) = api(&gw, "PUT", "/api/v1/syncs/out", Some(relative)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("local")),
        "{body}"
    );
    // Disabled: a run is refused; deleted: gone.
    let mut disabled = job.clone();
    disabled["enabled"] = json!(false);
    let (status, body) = api(&gw, "PUT", "/api/v1/syncs/out", Some(disabled)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(&gw, "POST", "/api/v1/syncs/out/run", None).await;
    assert_eq!(status, 409);
    assert_eq!(api(&gw, "DELETE", "/api/v1/syncs/out", None).await.0, 204);
    assert_eq!(api(&gw, "GET", "/api/v1/syncs/out", None).await.0, 404);
    assert_eq!(api(&gw, "POST", "/api/v1/syncs/out/run", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_connections_and_sync_jobs_while_the_server_runs() {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let gw = Gateway::start_with_admin(&[alice]).await;
    let sim = gw.ctx.sim.base.clone();
    let site = "https://contoso.sharepoint.com/sites/partners";
    let connections = |args: &[&str], stdin: &str| records_cli(&gw, "connections", args, stdin);
    let syncs = |args: &[&str]| records_cli(&gw, "syncs", args, "");

    // A connection from flags, its secret read from stdin: sealed, never shown, in force soon.
    let add = [
        "add",
        "sp3",
        "--tenant",
        "contoso",
        "--client-id",
        "spgate-demo",
        "--site",
        site,
        "--authority",
        &sim,
        "--graph-url",
        &sim,
        "--client-secret",
    ];
    let (ok, out) = connections(&add, "demo-secret\n");
    assert!(ok, "{out}");
    let (ok, out) = connections(&["show", "sp3"], "");
    assert!(ok, "{out}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["has_client_secret"], true, "{out}");
    assert!(!out.contains("demo-secret"), "{out}");
    let (ok, out) = connections(&["list"], "");
    assert!(
        ok && out.contains("sp3") && out.contains("managed through the API/CLI"),
        "{out}"
    );
    let seen = within(10.0, || async {
        connection_state(&gw, "sp3").await == "enabled"
    })
    .await;
    assert!(
        seen.is_some(),
        "the server never saw sp3:\n{}",
        gw.log_tail()
    );
    // Again: an existing name; a site that is no URL, with the key at fault.
    let (ok, out) = connections(&add, "demo-secret\n");
    assert!(!ok && out.contains("exists"), "{out}");
    let mut bad = add;
    bad[1] = "sp4";
    bad[7] = "not a url";
    let (ok, out) = connections(&bad, "demo-secret\n");
    assert!(!ok && out.contains("site"), "{out}");

    // A push job over it, from flags, run by the CLI: its file lands in the simulator.
    let outbox = gw.dir.path().join("cli-outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::fs::write(outbox.join("order.csv"), b"order,1\n").unwrap();
    let local = outbox.to_str().unwrap();
    // Given relative (the command runs in the test's directory): stored absolute.
    let (ok, out) = syncs(&[
        "add",
        "cli-out",
        "--connection",
        "sp3",
        "--local",
        "cli-outbox",
        "--remote",
        "/CliOut",
        "--direction",
        "push",
        "--interval",
        "1h",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = syncs(&["list", "--json"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["syncs"][0]["name"], "cli-out", "{out}");
    assert_eq!(listed["syncs"][0]["direction"], "push", "{out}");
    assert_eq!(listed["syncs"][0]["local"], local, "{out}");
    let (ok, out) = syncs(&["run", "cli-out"]);
    assert!(ok, "{out}");
    gw.assert_stored("/CliOut/order.csv", b"order,1\n").await;
    // The server puts the job in force; a bad direction is refused naming the key.
    let in_force = within(10.0, || async {
        let (_, body) = api(&gw, "GET", "/api/v1/syncs/cli-out", None).await;
        body["in_force"] == true
    })
    .await;
    assert!(in_force.is_some(), "{}", gw.log_tail());
    let (ok, out) = syncs(&[
        "add",
        "sideways",
        "--connection",
        "sp3",
        "--local",
        local,
        "--remote",
        "/Sideways",
        "--direction",
        "sideways",
    ]);
    assert!(!ok && out.contains("direction"), "{out}");

    // In use by the job, the connection stays; disabled, the job refuses to run; then both go.
    let (ok, out) = connections(&["remove", "sp3"], "");
    assert!(!ok && out.contains("cli-out"), "{out}");
    let (ok, out) = syncs(&["disable", "cli-out"]);
    assert!(ok, "{out}");
    let (ok, out) = syncs(&["run", "cli-out"]);
    assert!(!ok, "a disabled job ran: {out}");
    let (ok, out) = syncs(&["remove", "cli-out"]);
    assert!(ok, "{out}");
    let (ok, out) = connections(&["remove", "sp3"], "");
    assert!(ok, "{out}");
    let (ok, out) = connections(&["show", "sp3"], "");
    assert!(!ok && out.contains("no connection named sp3"), "{out}");
    let gone = within(10.0, || async {
        connection_state(&gw, "sp3").await.starts_with("absent")
    })
    .await;
    assert!(gone.is_some(), "{}", gw.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_the_store_and_rekey_seals_it_again() {
    let alice = User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL);
    let mut gw = Gateway::start_with_admin(&[alice]).await;
    let add_bob = ["add", "bob", "--connection", "sp", "--password"];
    let (ok, out) = users_cli(&gw, &add_bob, "bob-pw-1\n");
    assert!(ok, "{out}");
    let backup = gw.dir.path().join("backup.db");
    let backup_arg = backup.to_str().unwrap();

    // Taken while the server runs: private, bob in it, no secret in clear; never overwritten.
    let (ok, out) = spgate_cli(&gw, &["backup", backup_arg]);
    assert!(ok && out.contains("sealed with key"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw = String::from_utf8_lossy(&std::fs::read(&backup).unwrap()).into_owned();
    assert!(
        raw.contains("bob") && raw.contains("spgate-demo"),
        "bob is in the backup"
    );
    assert!(
        !raw.contains("demo-secret"),
        "the client secret is in clear in the backup"
    );
    let (ok, out) = spgate_cli(&gw, &["backup", backup_arg]);
    assert!(!ok && out.contains("exists"), "{out}");

    // Restore and rekey refuse while a server runs on the store.
    for command in [vec!["restore", backup_arg], vec!["rekey"]] {
        let (ok, out) = spgate_cli(&gw, &command);
        assert!(!ok && out.contains("running"), "{command:?}: {out}");
    }

    // After the backup bob goes; with the server stopped the backup brings him back.
    let (ok, out) = users_cli(&gw, &["remove", "bob"], "");
    assert!(ok, "{out}");
    gw.crash();
    let db = gw.dir.path().join("state/spgate.db");
    let before_junk = std::fs::read(&db).unwrap();
    let junk = gw.dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let (ok, out) = spgate_cli(&gw, &["restore", junk.to_str().unwrap()]);
    assert!(!ok, "a file that is no store was restored: {out}");
    assert!(
        std::fs::read(&db).unwrap() == before_junk,
        "the refused restore changed the store"
    );
    let (ok, out) = spgate_cli(&gw, &["restore", backup_arg]);
    assert!(ok && out.contains("kept as"), "{out}");
    let (ok, out) = users_cli(&gw, &["show", "bob"], "");
    assert!(ok, "{out}");

    // A new key: every secret sealed again (the host keys, the connection's secret), the old
    // key gone; the server starts with the new one and bob logs in through the connection.
    let key_file = gw.dir.path().join("state/secret.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let (ok, out) = spgate_cli(&gw, &["rekey"]);
    assert!(ok && out.contains("sealed again"), "{out}");
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after, "the key file holds the new key");
    // The old key is kept for the backups taken before, named by its id.
    let kept: Vec<_> = std::fs::read_dir(gw.dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("secret.key.") && name != "secret.key.new"
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), before);
    assert!(!gw.dir.path().join("state/secret.key.new").exists());
    gw.start_again();
    assert!(
        can_list(&gw, "sftp", "bob", "bob-pw-1").await,
        "{}",
        gw.log_tail()
    );
}

/// A state directory as an earlier spgate left it (the alert log and a disabled connection's
/// state file, beside the host key files) under an unchanged configuration: the server starts,
/// imports the files into the store (leaving them `.imported`) and goes on from them; a file
/// put back later is not imported twice.
#[tokio::test(flavor = "multi_thread")]
async fn state_files_of_an_earlier_version_are_imported_on_first_start() {
    let ctx = common::Ctx::new().await;
    let text = format!("[state]\ndir = \"/x\"\n{}", ctx.connection_toml("sp"));
    let config = spgate::config::parse_str(&text).unwrap();
    let fingerprint = spgate::connections::fingerprint(&config.connections[0]);
    let line = |event: &str, time: &str, source: &str, code: &str, message: &str| {
        json!({"event": event, "time": time, "connection": source, "code": code,
               "message": message, "action": "what to do"})
        .to_string()
    };
    let log = [
        line(
            "raised",
            "2026-11-30T08:00:00Z",
            "sp",
            "invalid_client AADSTS7000222",
            "The client secret expired",
        ),
        line(
            "raised",
            "2026-11-30T09:00:00Z",
            "sync:nightly",
            "sync_skipped",
            "1 path(s) cannot be synced",
        ),
        line(
            "cleared",
            "2026-11-30T10:00:00Z",
            "sync:nightly",
            "sync_skipped",
            "cleared: the last run succeeded",
        ),
        line(
            "raised",
            "2026-11-30T11:00:00Z",
            "queue:7",
            "upload_failed",
            "the upload of /a.txt failed",
        ),
        "{\"event\":\"rai".to_string(), // torn by a crash
    ]
    .join("\n");
    let disabled = json!({
        "disabled": {"time": "2026-11-30T08:00:00Z", "connection": "sp",
                     "code": "invalid_client AADSTS7000222",
                     "message": "The client secret expired", "action": "what to do"},
        "fingerprint": fingerprint,
    });
    let alice = User::new("alice")
        .password("pw")
        .sharepoint("/", "/", &["*"]);
    let mut gw = Gateway::start_full(ctx, &[alice], "", "", |dir| {
        let state = dir.join("state");
        std::fs::write(state.join("alerts.jsonl"), &log).unwrap();
        std::fs::create_dir_all(state.join("connections")).unwrap();
        std::fs::write(state.join("connections/sp.json"), disabled.to_string()).unwrap();
        format!("\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n")
    })
    .await;
    let state = gw.dir.path().join("state");
    for file in ["alerts.jsonl", "connections/sp.json"] {
        assert!(!state.join(file).exists(), "{file} left in place");
        assert!(
            state.join(format!("{file}.imported")).exists(),
            "{file} not kept"
        );
    }
    let open = |body: Value| -> Vec<String> {
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["connection"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = api(&gw, "GET", "/api/v1/alerts", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(open(body), ["sp", "queue:7"]);
    assert_eq!(connection_state(&gw, "sp").await, "disabled");
    assert!(
        !can_list(&gw, "sftp", "alice", "pw").await,
        "still disabled"
    );
    let (_, body) = api(
        &gw,
        "GET",
        "/api/v1/alerts/history?source=sync:nightly",
        None,
    )
    .await;
    assert_eq!(
        body["alerts"][0]["cleared_why"], "cleared: the last run succeeded",
        "{body}"
    );
    let (ok, out) = spgate_cli(&gw, &["alerts"]);
    assert!(
        ok && out.contains("queue:7") && out.contains("AADSTS7000222"),
        "{out}"
    );

    // Enabled by the administrator; the alert log put back is not imported again.
    let (status, body) = api(&gw, "POST", "/api/v1/connections/sp/enable", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(can_list(&gw, "sftp", "alice", "pw").await);
    std::fs::copy(
        state.join("alerts.jsonl.imported"),
        state.join("alerts.jsonl"),
    )
    .unwrap();
    gw.crash_and_restart();
    let (_, body) = api(&gw, "GET", "/api/v1/alerts", None).await;
    assert_eq!(open(body), ["queue:7"]);
    assert_eq!(connection_state(&gw, "sp").await, "enabled");
    let (_, body) = api(&gw, "GET", "/api/v1/alerts/history?source=sp", None).await;
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1, "{body}");
    assert!(can_list(&gw, "sftp", "alice", "pw").await);
}

/// An upload an earlier version queued (its row in `queue/queue.db`, its file in the spool)
/// before the upgrade: the new version imports the row into the store at start and delivers
/// the file to SharePoint.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_queued_by_an_earlier_version_is_delivered_after_the_upgrade() {
    let content = b"queued by the earlier version, delivered by this one".to_vec();
    let alice = User::new("alice")
        .password("pw")
        .sharepoint("/", "/", &["*"]);
    let size = content.len();
    let spooled = content.clone();
    let gw = Gateway::start_full(common::Ctx::new().await, &[alice], "", "", |dir| {
        let queue = dir.join("state/queue");
        std::fs::create_dir_all(&queue).unwrap();
        std::fs::write(queue.join("u-legacy"), &spooled).unwrap();
        let old = rusqlite::Connection::open(queue.join("queue.db")).unwrap();
        old.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE upload (
                id INTEGER PRIMARY KEY AUTOINCREMENT, connection TEXT NOT NULL,
                path TEXT NOT NULL, target TEXT, size INTEGER NOT NULL, modified TEXT,
                replace INTEGER NOT NULL, file TEXT NOT NULL, upload_url TEXT,
                uploaded INTEGER NOT NULL DEFAULT 0, failed TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, queued_at TEXT NOT NULL,
                origin TEXT NOT NULL);",
        )
        .unwrap();
        old.execute(
            "INSERT INTO upload (connection, path, target, size, replace, file, queued_at, origin)
             VALUES ('sp', '/legacy.txt', '/legacy.txt', ?1, 1, 'u-legacy', ?2, ?3)",
            rusqlite::params![
                size as i64,
                chrono::Utc::now().to_rfc3339(),
                json!({"user": "alice", "protocol": "sftp", "peer": null, "vpath": "/legacy.txt"})
                    .to_string()
            ],
        )
        .unwrap();
        String::new()
    })
    .await;
    gw.assert_stored("legacy.txt", &content).await;
    let queue = gw.dir.path().join("state/queue");
    assert!(!queue.join("queue.db").exists());
    assert!(queue.join("queue.db.imported").exists());
    assert!(
        !queue.join("u-legacy").exists(),
        "the delivered file left the spool"
    );
}
