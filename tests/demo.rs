//! What a newcomer runs first. `spgate demo` (the real binary, its listeners on port 0 and SFTP
//! on an address the test holds, to see the fallback) driven only through what it prints:
//! OpenSSH `sftp` with the password, the printed `curl ftp://` line, the library through the
//! simulator's Graph API, the console's sign-in page, `/metrics`, the audit log, and the printed
//! revoke and restore lines raising and clearing an alert. And `config/sim.toml` in front of
//! `spgate sim`'s default world, as the README's walkthrough runs them.

mod common;
mod ftp_support;
mod sftp_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    APP, KillOnDrop, Run, SECRET, Sim, app_token_at, file_tail, run_client, site_drive_at,
    spawn_serve_as,
};
use ftp_support::{Security, ftplib};
use reqwest::StatusCode;
use sftp_support::sftp_with_password;

/// The banner's last line: every listener is bound.
const LAST_LINE: &str = "Ctrl-C stops the demo.";

/// A running `spgate demo`, killed on drop, and what it printed.
struct Demo {
    banner: String,
    log: PathBuf,
    /// The client's folder (files to upload, downloads, batches).
    dir: tempfile::TempDir,
    _child: KillOnDrop,
}

impl Demo {
    /// Starts `spgate demo ARGS` and waits (up to a minute) for the banner's last line.
    fn start(args: &[String]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("demo.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spgate"))
            .arg("demo")
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn spgate demo");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let child = KillOnDrop(child);
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if line == LAST_LINE {
                        break;
                    }
                }
                Err(_) => panic!(
                    "spgate demo did not finish its banner; it printed:\n{banner}\nlog:\n{}",
                    file_tail(&log, 6000)
                ),
            }
        }
        Demo {
            banner,
            log,
            dir,
            _child: child,
        }
    }

    /// What follows `label` on the banner's first line starting with it (after indentation).
    fn field(&self, label: &str) -> &str {
        self.banner
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.banner))
    }

    /// The banner's `curl -X POST URL` line whose URL ends with `ending`, as curl's arguments.
    fn curl_line(&self, ending: &str) -> Vec<String> {
        let line = self
            .banner
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("curl -X POST ") && l.ends_with(ending))
            .unwrap_or_else(|| panic!("no curl line for {ending:?} in:\n{}", self.banner));
        line.split_whitespace().skip(1).map(String::from).collect()
    }

    /// Runs the banner's curl line ending with `ending`, as printed; it must succeed.
    async fn follow(&self, ending: &str) {
        let run = self.curl(&self.curl_line(ending)).await;
        assert!(run.success, "{run}");
    }

    /// Runs `curl -sS -f ARGS` in the client folder.
    async fn curl(&self, args: &[String]) -> Run {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "-f"]).args(args);
        let out = self
            .dir
            .path()
            .join(format!("curl-{}.out", rand::random::<u32>()));
        run_client(cmd, self.dir.path(), &out, "curl").await
    }

    /// The port in the printed `sftp -P PORT demo@127.0.0.1`.
    fn sftp_port(&self) -> u16 {
        let line = self.field("SFTP");
        let port = line
            .strip_prefix("sftp -P ")
            .and_then(|rest| rest.strip_suffix(" demo@127.0.0.1"))
            .unwrap_or_else(|| panic!("SFTP line {line:?}"));
        port.parse().unwrap()
    }

    async fn sftp(&self, batch: &str) -> Run {
        sftp_with_password(self.dir.path(), self.sftp_port(), "demo", "demo", batch).await
    }

    fn log_tail(&self) -> String {
        file_tail(&self.log, 8000)
    }
}

/// The first whitespace-separated word of `text`.
fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or_default()
}

/// GET `url`: status and body.
async fn get(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status(), response.text().await.unwrap())
}

/// A file of the simulated library `Documents` of site `partners`, read through the Graph API
/// of the simulator at `base`; `None` while it is not there.
async fn library_file(base: &str, path: &str) -> Option<Vec<u8>> {
    let http = reqwest::Client::new();
    let token = app_token_at(&http, base, APP, SECRET).await;
    let (_, drive) = site_drive_at(&http, base, &token, "partners").await;
    let response = http
        .get(format!("{base}/v1.0/drives/{drive}/root:/{path}:/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    match response.status() {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => Some(response.bytes().await.unwrap().to_vec()),
        other => panic!("GET {path}: {other}"),
    }
}

/// Waits up to a minute for `check` to answer `Some` (an upload the queue sends in the
/// background, an audit line written after the client's close).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    check: impl Fn() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_serves_sftp_ftp_and_the_console_on_the_addresses_it_prints() {
    // Something else holds the SFTP address the demo is given: it takes a free port instead.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().to_string();
    let any = "127.0.0.1:0".to_string();
    let args = [
        "--sim", &any, "--sftp", &taken, "--ftp", &any, "--admin", &any,
    ];
    let demo = Demo::start(&args.map(String::from));
    let note =
        format!("note: {taken} is taken, so SFTP listens on a free port instead: 127.0.0.1:");
    assert!(demo.banner.contains(&note), "{}", demo.banner);
    assert_ne!(
        demo.sftp_port().to_string(),
        taken.rsplit(':').next().unwrap()
    );

    // SFTP with the printed command and password: an upload, the seeded file, a listing.
    let sent = b"uploaded through the demo\n";
    std::fs::write(demo.dir.path().join("hello.txt"), sent).unwrap();
    let run = demo
        .sftp("put hello.txt /Inbound/hello.txt\nget /Outbound/welcome.txt welcome.txt\nls /\n")
        .await;
    assert!(run.success, "{run}\n{}", demo.log_tail());
    for name in ["Inbound", "Outbound", "local"] {
        assert!(run.output.contains(name), "{name} not listed: {run}");
    }
    let welcome = std::fs::read(demo.dir.path().join("welcome.txt")).unwrap();
    assert_eq!(welcome, b"Hello from the simulated SharePoint library.\n");

    // The upload is in the simulated library, read through its Graph API.
    let sim = first_word(demo.field("Simulated SharePoint:"));
    let stored = eventually("the upload in SharePoint", || {
        library_file(sim, "Inbound/hello.txt")
    })
    .await;
    assert_eq!(stored, sent);

    // FTP with the printed curl line: the folder lists the upload.
    let ftp = demo
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("curl ftp://"))
        .map(|url| format!("ftp://{url}Inbound/"))
        .expect("a curl ftp:// line");
    let run = demo.curl(&[ftp]).await;
    assert!(run.success && run.output.contains("hello.txt"), "{run}");

    // The console's sign-in page, the metrics, the audit log.
    let (status, page) = get(demo.field("console")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"signin\""), "{page}");
    let (status, metrics) = get(demo.field("metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("spgate_"), "{metrics}");
    let audit = Path::new(demo.field("audit log"));
    assert!(audit.is_absolute(), "{}", audit.display());
    eventually("the upload in the audit log", || async move {
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("\"action\":\"upload\"") && l.contains("/Inbound/hello.txt"))
            .map(|l| assert!(l.contains("\"user\":\"demo\""), "{l}"))
    })
    .await;

    // The printed lines make SharePoint refuse the app: the next listing fails, the
    // connection is disabled and the gateway says why.
    let readyz = demo.field("readiness");
    assert_eq!(get(readyz).await.0, StatusCode::OK);
    demo.follow("/_sim/apps/spgate-demo/revoke").await;
    demo.follow("/_sim/tokens/expire").await;
    let run = demo.sftp("ls /Inbound\n").await;
    assert!(!run.success, "listed with a revoked app: {run}");
    let (status, why) = get(readyz).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    assert!(why.contains("connection demo is disabled"), "{why}");
    let alerts = first_word(demo.field("admin API"));
    assert!(get(alerts).await.1.contains("\"connection\":\"demo\""));

    // And they clear it.
    demo.follow("/_sim/apps/spgate-demo/restore").await;
    demo.follow("/api/v1/connections/demo/enable").await;
    assert_eq!(get(readyz).await.0, StatusCode::OK);
    let run = demo.sftp("ls /Inbound\n").await;
    assert!(run.success && run.output.contains("hello.txt"), "{run}");
    drop(held);
}

/// `config/sim.toml` with the simulator's address replaced by `sim`'s.
fn sim_toml_for(sim: &Sim) -> String {
    let shipped = include_str!("../config/sim.toml");
    let address = "\"http://127.0.0.1:8080\"";
    assert_eq!(
        shipped.matches(address).count(),
        2,
        "authority and graph_url name `spgate sim`'s default address"
    );
    shipped.replace(address, &format!("\"{}\"", sim.base))
}

#[tokio::test(flavor = "multi_thread")]
async fn config_sim_toml_serves_the_simulators_default_world() {
    // As shipped, it is valid.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim.toml");
    let check = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["check", "--offline", "--config"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // In front of `spgate sim` with its default world (on a free port, hence the new address).
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.toml");
    std::fs::write(&config, sim_toml_for(&sim)).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // Served with its listeners moved to free ports (environment overrides).
    let base = 20000 + rand::random::<u16>() % 19800;
    let mut serve = Command::new(env!("CARGO_BIN_EXE_spgate"));
    serve
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("SPGATE_SFTP__LISTEN", "127.0.0.1:0")
        .env("SPGATE_FTP__LISTEN", "127.0.0.1:0")
        .env(
            "SPGATE_FTP__PASSIVE_PORTS",
            format!("{base}-{}", base + 199),
        )
        .env("SPGATE_ADMIN__LISTEN", "127.0.0.1:0");
    let log = dir.path().join("serve.log");
    let (child, found) = spawn_serve_as(serve, &log, &["sftp", "ftp", "admin"]);
    let _child = KillOnDrop(child);
    let [Some(sftp), Some(ftp), Some(admin)] = [&found[0], &found[1], &found[2]] else {
        panic!(
            "not every listener announced: {found:?}\n{}",
            file_tail(&log, 6000)
        );
    };
    let port = |address: &str| address.rsplit(':').next().unwrap().parse::<u16>().unwrap();

    let sent = b"a partner's file\n";
    std::fs::write(dir.path().join("report.csv"), sent).unwrap();
    let run = sftp_with_password(
        dir.path(),
        port(sftp),
        "partner",
        "partner",
        "put report.csv\n",
    )
    .await;
    assert!(run.success, "{run}\n{}", file_tail(&log, 6000));
    let stored = eventually("the upload in SharePoint", || {
        library_file(&sim.base, "report.csv")
    })
    .await;
    assert_eq!(stored, sent);
    let script = "print(ftp.nlst('/'))";
    let cmd = ftplib(port(ftp), Security::Plain, "partner", "partner", script);
    let out = dir.path().join("ftplib.out");
    let run = run_client(cmd, dir.path(), &out, "ftplib").await;
    assert!(run.success && run.output.contains("report.csv"), "{run}");
    let (status, body) = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
