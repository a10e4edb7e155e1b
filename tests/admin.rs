//! The admin endpoint of `spgate serve`: probes, metrics that move with real transfers, the
//! token-protected API (alerts, connections, syncs) and the status page.

mod common;
mod sync_support;

use common::{Ctx, KillOnDrop};
use reqwest::StatusCode;
use sync_support::quote_toml;

const TOKEN: &str = "admin-secret-token";

struct Served {
    ctx: Ctx,
    dir: tempfile::TempDir,
    admin: String,
    sftp_port: u16,
    _child: KillOnDrop,
}

async fn serve() -> Served {
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let config = format!(
        "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         {connection}\n\
         [[users]]\nname = \"partner\"\npassword_hash = {hash}\n\
         [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/Partner\"\npermissions = \"*\"\n\
         upload_commit = \"close\"\n\n\
         [[syncs]]\nname = \"mirror\"\nlocal = {mirror}\nconnection = \"sp\"\nremote = \"/Mirror\"\n\
         direction = \"pull\"\ninterval = \"1h\"\n",
        connection = ctx.connection_toml("sp"),
        state = quote_toml(dir.path().join("state").to_str().unwrap()),
        hash = quote_toml(&spgate::users::hash_password("partner-pass")),
        mirror = quote_toml(mirror.to_str().unwrap()),
    );
    ctx.mkdirs("Partner").await;
    let (child, sftp_port, admin) = common::spawn_sftp_admin(dir.path(), &config);
    Served {
        sftp_port,
        admin: format!("http://{admin}"),
        ctx,
        dir,
        _child: KillOnDrop(child),
    }
}

impl Served {
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn post(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = reqwest::Client::new().post(format!("{}{path}", self.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let (_, text) = self.get("/metrics", None).await;
        text.lines()
            .filter(|l| l.starts_with(line_start))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_metrics_follow_a_real_sftp_upload() {
    let s = serve().await;
    assert_eq!(s.get("/healthz", None).await.0, StatusCode::OK);
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let files = "spgate_transfer_files_total{protocol=\"sftp\",connection=\"sp\",direction=\"up\",outcome=\"ok\"}";
    let bytes = "spgate_transfer_bytes_total{protocol=\"sftp\",connection=\"sp\",direction=\"up\"}";
    let logins = "spgate_logins_total{protocol=\"sftp\",outcome=\"ok\"}";
    let before = (
        s.metric(files).await,
        s.metric(bytes).await,
        s.metric(logins).await,
    );

    let file = s.dir.path().join("upload.bin");
    std::fs::write(&file, common::data(70_000, 3)).unwrap();
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--user", "partner:partner-pass", "-T"])
        .arg(&file)
        .arg(format!("sftp://127.0.0.1:{}/upload.bin", s.sftp_port))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(s.ctx.item_at("Partner/upload.bin").await.is_some());

    let after = (
        s.metric(files).await,
        s.metric(bytes).await,
        s.metric(logins).await,
    );
    assert_eq!(after.0 - before.0, 1.0, "files metric");
    assert_eq!(after.1 - before.1, 70_000.0, "bytes metric");
    assert!(after.2 - before.2 >= 1.0, "logins metric");
    // The audit log has the login and the upload, and never the password.
    let audit = std::fs::read_to_string(s.dir.path().join("state/audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["action"] == "login"
            && l["user"] == "partner"
            && l["protocol"] == "sftp"
            && l["outcome"] == "ok"
            && l["peer"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        lines.iter().any(|l| l["action"] == "upload"
            && l["path"] == "/upload.bin"
            && l["size"] == 70_000
            && l["connection"] == "sp"
            && l["outcome"] == "ok"
            && l["duration_ms"].is_u64()),
        "{audit}"
    );
    assert!(!audit.contains("partner-pass"), "{audit}");
    let (_, page) = s.get("/", Some(TOKEN)).await;
    assert!(
        page.contains("<td>/upload.bin</td>") && page.contains("<td>upload</td>"),
        "the status page lists the upload:\n{page}"
    );
    let (_, text) = s.get("/metrics", None).await;
    for name in [
        "spgate_graph_requests_total{connection=\"sp\",method=\"PUT\"",
        "spgate_connection_up{connection=\"sp\"} 1",
        "spgate_token_refreshes_total{connection=\"sp\"}",
        "spgate_sessions_total{protocol=\"sftp\"}",
        "spgate_graph_throttled_total{connection=\"sp\"}",
        "spgate_upload_fragments_retried_total{connection=\"sp\"}",
        "spgate_upload_queue_files 0",
        "spgate_upload_queue_quarantined 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

/// Runs curl against the SFTP listener as the partner with extra arguments; asserts success.
async fn curl_sftp(s: &Served, args: &[&str], path: &str) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--user", "partner:partner-pass"])
        .args(args)
        .arg(format!("sftp://127.0.0.1:{}{path}", s.sftp_port))
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "curl {args:?}: {output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_lines_carry_the_sharepoint_item_id() {
    let s = serve().await;
    let file = s.dir.path().join("report.csv");
    std::fs::write(&file, common::data(5_000, 7)).unwrap();
    curl_sftp(&s, &["-T", file.to_str().unwrap()], "/report.csv").await;
    let item = s.ctx.item_at("Partner/report.csv").await.expect("uploaded");
    let id = item["id"].as_str().unwrap().to_string();
    let back = s.dir.path().join("back.csv");
    curl_sftp(&s, &["-o", back.to_str().unwrap()], "/report.csv").await;
    curl_sftp(&s, &["-Q", "rename /report.csv /renamed.csv"], "/").await;
    curl_sftp(&s, &["-Q", "rm /renamed.csv"], "/").await;
    assert!(s.ctx.item_at("Partner/renamed.csv").await.is_none());

    let audit = std::fs::read_to_string(s.dir.path().join("state/audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (action, path) in [
        ("upload", "/report.csv"),
        ("download", "/report.csv"),
        ("rename", "/report.csv"),
        ("delete", "/renamed.csv"),
    ] {
        assert!(
            lines.iter().any(|l| l["action"] == action
                && l["path"] == path
                && l["outcome"] == "ok"
                && l["item_id"] == id.as_str()),
            "no {action} of {path} with item id {id}:\n{audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_needs_the_token_and_answers_with_it() {
    let s = serve().await;
    for path in [
        "/api/v1/alerts",
        "/api/v1/connections",
        "/api/v1/syncs",
        "/",
    ] {
        assert_eq!(
            s.get(path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            s.get(path, Some("wrong")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let (status, body) = s.get("/api/v1/connections", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["connections"][0]["name"], "sp");
    assert_eq!(json["connections"][0]["state"], "enabled");
    let (status, body) = s.get("/api/v1/alerts", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"alerts\""), "{body}");
    let (status, body) = s.get("/api/v1/syncs", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["syncs"][0]["name"], "mirror");
    assert_eq!(json["syncs"][0]["direction"], "pull");
    assert_eq!(
        s.post("/api/v1/connections/sp/enable", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = s.post("/api/v1/connections/sp/enable", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.post("/api/v1/connections/nope/enable", Some(TOKEN))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.post("/api/v1/syncs/mirror/run", Some(TOKEN)).await.0,
        StatusCode::ACCEPTED
    );
    // Basic authentication with the token as password opens the status page in a browser.
    let response = reqwest::Client::new()
        .get(format!("{}/", s.admin))
        .basic_auth("admin", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    for needle in [
        "<h1>spgate</h1>",
        "Connections",
        "<td>sp</td>",
        "Sync jobs",
        "<td>mirror</td>",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the page:\n{page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_connection_makes_the_gateway_unready_until_enabled() {
    let s = serve().await;
    // Revoking the app makes the next sign-in fail for good: the connection is disabled with
    // an alert.
    s.ctx
        .sim
        .control("/apps/spgate-demo/revoke", serde_json::json!({}))
        .await;
    s.ctx
        .sim
        .control("/tokens/expire", serde_json::json!({}))
        .await;
    // A listing needs a token; it fails (the client's exit status does not matter here).
    let _ = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--user",
            "partner:partner-pass",
            "-o",
            "/dev/null",
        ])
        .arg(format!("sftp://127.0.0.1:{}/", s.sftp_port))
        .status()
        .await
        .unwrap();
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("connection sp is disabled"), "{body}");
    let (_, alerts) = s.get("/api/v1/alerts", Some(TOKEN)).await;
    assert!(alerts.contains("\"connection\":\"sp\""), "{alerts}");
    assert!(
        s.get("/metrics", None)
            .await
            .1
            .contains("spgate_connection_up{connection=\"sp\"} 0")
    );
    s.ctx
        .sim
        .control("/apps/spgate-demo/restore", serde_json::json!({}))
        .await;
    let (status, _) = s.post("/api/v1/connections/sp/enable", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, alerts) = s.get("/api/v1/alerts", Some(TOKEN)).await;
    assert!(!alerts.contains("\"connection\":\"sp\""), "{alerts}");
}

/// One paramiko password login to `port` as `user`: whether it was accepted.
async fn sftp_login(port: u16, user: &str, password: &str) -> bool {
    let script = "import sys, paramiko\n\
        t = paramiko.Transport(('127.0.0.1', int(sys.argv[1])))\n\
        try:\n    t.connect(username=sys.argv[2], password=sys.argv[3]); print('ok')\n\
        except paramiko.AuthenticationException:\n    print('refused')\n\
        finally:\n    t.close()\n";
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), user, password])
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(said == "ok" || said == "refused", "{output:?}");
    said == "ok"
}

/// Runs `spgate lockouts ARGS` with the served configuration, its admin port filled in (an
/// operator's file names a fixed port; the test's asks for any): (success, stdout and stderr).
fn lockouts_cli(s: &Served, args: &[&str]) -> (bool, String) {
    let served = std::fs::read_to_string(s.dir.path().join("spgate.toml")).unwrap();
    let admin = s.admin.trim_start_matches("http://");
    let fixed = served.replacen(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"{admin}\""),
        1,
    );
    assert_ne!(fixed, served);
    let path = s.dir.path().join("cli.toml");
    std::fs::write(&path, fixed).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spgate"))
        .arg("lockouts")
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    (output.status.success(), out + &err)
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_logins_are_listed_and_cleared_through_the_api_and_the_cli() {
    let s = serve().await;
    for _ in 0..5 {
        assert!(!sftp_login(s.sftp_port, "partner", "guess").await);
    }
    assert!(
        !sftp_login(s.sftp_port, "partner", "partner-pass").await,
        "locked"
    );

    // The API needs the token, and lists the lock.
    assert_eq!(
        s.get("/api/v1/lockouts", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = s.get("/api/v1/lockouts", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let locked = body["lockouts"].as_array().unwrap();
    assert_eq!(locked.len(), 1, "{body}");
    assert_eq!(locked[0]["user"], "partner");
    assert_eq!(locked[0]["addresses"], "127.0.0.1/32");
    assert_eq!(locked[0]["failures"], 5);

    // The CLI asks the same API, with the token from the configuration.
    let (ok, out) = lockouts_cli(&s, &[]);
    assert!(
        ok && out.contains("partner\tfrom 127.0.0.1/32\t5 failed logins"),
        "{out}"
    );
    let (ok, out) = lockouts_cli(&s, &["clear", "somebody-else"]);
    assert!(ok && out.contains("0 lock(s) cleared"), "{out}");
    assert!(
        !sftp_login(s.sftp_port, "partner", "partner-pass").await,
        "still locked"
    );
    let (ok, out) = lockouts_cli(&s, &["clear", "partner"]);
    assert!(ok && out.contains("1 lock(s) cleared"), "{out}");
    assert!(sftp_login(s.sftp_port, "partner", "partner-pass").await);
    let (ok, out) = lockouts_cli(&s, &[]);
    assert!(ok && out.contains("no locked logins"), "{out}");

    // Through the API: lock again, clear everyone's.
    for _ in 0..5 {
        assert!(!sftp_login(s.sftp_port, "partner", "guess").await);
    }
    let (status, body) = s.post("/api/v1/lockouts/clear", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"cleared\":1"), "{body}");
    assert!(sftp_login(s.sftp_port, "partner", "partner-pass").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_need_bearer_and_a_matching_origin() {
    let s = serve().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/lockouts/clear", s.admin);
    let basic = http.post(&url).basic_auth("admin", Some(TOKEN));
    assert_eq!(
        basic.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a browser's cached Basic credentials do not authorise changes"
    );
    let (status, _) = s.get("/api/v1/lockouts", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let read = http.get(format!("{}/api/v1/lockouts", s.admin));
    let read = read.basic_auth("admin", Some(TOKEN)).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK, "Basic still opens pages");
    let forged = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("Origin", "https://evil.example");
    assert_eq!(forged.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let own = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("Origin", &s.admin);
    assert_eq!(own.send().await.unwrap().status(), StatusCode::OK);
}
