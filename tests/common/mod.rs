//! Harness shared by the suites: starts `spgate sim` on port 0 in a temp dir, talks to it over
//! plain HTTP with reqwest, and checks Graph JSON shapes. Independent of spgate's Graph client
//! on purpose: the suites check the simulator against shared/GRAPH.md, and spgate against the
//! simulator's own view.
//!
//! - this file: [`Sim`], the simulator process (spawn, address, log, VmHWM, tokens, control API);
//! - [`ctx`]: [`Ctx`], a simulator with a token and a drive, and request helpers;
//! - [`check`]: JSON shape assertions, error assertions, hashing, encoding, test data;
//! - [`serve`]: spawning `spgate serve` and reading its announced addresses;
//! - [`gateway`]: [`Gateway`], `spgate serve` with SFTP and FTP for [`User`]s, the client runner
//!   and the simulator-side checks of the front-end suites;
//! - [`postgres`]: a real PostgreSQL server for the state store suites.
#![allow(dead_code, unused_imports)]

pub mod check;
pub mod ctx;
pub mod gateway;
pub mod postgres;
pub mod serve;

pub use check::*;
pub use ctx::*;
pub use gateway::*;
pub use serve::*;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Client, Response, redirect::Policy};
use serde_json::Value;

pub const HOST: &str = "contoso.sharepoint.com";
pub const APP: &str = "spgate-demo";
pub const SECRET: &str = "demo-secret";
pub const FRAG: usize = 327_680;

/// Seed equivalent to the default world, to which tests append apps, sites and drives.
pub const BASE_SEED: &str = r#"
[[tenants]]
name = "contoso"
id = "2f0b6c8e-1d7a-4c53-9a57-5f1e8a0c9d11"
[[tenants.apps]]
client_id = "spgate-demo"
secret = "demo-secret"
"#;

const PARTNERS: &str = r#"
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "partners"
[[tenants.sites.drives]]
name = "Documents"
"#;

/// A seed like the default world plus `apps` (TOML `[[tenants.apps]]` tables) and `more`
/// (appended after the partners site: more drives for it, or more sites).
pub fn seed(apps: &str, more: &str) -> String {
    format!("{BASE_SEED}{apps}{PARTNERS}{more}")
}

/// A client without connection reuse, for requests the simulator may refuse before reading
/// their bodies: a refused upload then cannot break the next request on a pooled connection
/// (`refused_fragments_leave_the_connection_usable` tests that separately).
pub fn oneshot_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

/// A running simulator; killed on drop (its log is printed when the test failed).
pub struct Sim {
    child: Mutex<Child>,
    pub base: String,
    pub pid: u32,
    pub http: Client,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::spawn(None, &[])
    }

    pub fn with_seed(seed: &str) -> Sim {
        Sim::spawn(Some(seed), &[])
    }

    /// Starts `spgate sim` with an optional seed and extra arguments (e.g. `--public-url`).
    pub fn spawn(seed: Option<&str>, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spgate"));
        cmd.arg("sim")
            .args(extra)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(&data);
        if let Some(seed) = seed {
            let path = dir.path().join("seed.toml");
            std::fs::write(&path, seed).expect("write seed");
            cmd.arg("--seed").arg(path);
        }
        let log = std::fs::File::create(dir.path().join("sim.log")).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn spgate sim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let pid = child.id();
        let http = Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        let mut sim = Sim {
            child: Mutex::new(child),
            base: String::new(),
            pid,
            http,
            dir,
        };
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            panic!(
                "simulator did not announce its address: {line:?}\n{}",
                sim.log_tail()
            );
        };
        assert!(addr.starts_with("http://"), "announced {addr:?}");
        sim.base = addr.trim_end_matches('/').to_string();
        sim
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sim.log")
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_string()
    }

    /// Kills the simulator (SharePoint dying under a transfer).
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Panics if the simulator process has exited.
    pub fn assert_alive(&self) {
        let status = self.child.lock().unwrap().try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "simulator exited: {status:?}\n{}",
            self.log_tail()
        );
    }

    /// Peak resident set size of the simulator (VmHWM), in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM line");
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .expect("VmHWM number")
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base)
    }

    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.token_url(tenant))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// Client-credentials token with a secret; panics unless 200.
    pub async fn app_token_for(&self, client_id: &str, secret: &str) -> String {
        app_token_at(&self.http, &self.base, client_id, secret).await
    }

    pub async fn app_token(&self) -> String {
        self.app_token_for(APP, SECRET).await
    }

    pub fn graph(&self, rel: &str) -> String {
        format!("{}/v1.0{rel}", self.base)
    }

    pub fn ctl(&self, rel: &str) -> String {
        format!("{}/_sim{rel}", self.base)
    }

    /// POST to the control API; panics unless 2xx.
    pub async fn control(&self, rel: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.ctl(rel))
            .json(&body)
            .send()
            .await
            .expect("control");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "control {rel}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn stats(&self) -> Value {
        let resp = self
            .http
            .get(self.ctl("/stats"))
            .send()
            .await
            .expect("stats");
        json_status(resp, 200).await
    }

    pub async fn faults(&self, body: Value) {
        self.control("/faults", body).await;
    }

    /// Resolves the partners site and returns (site id, default drive id).
    pub async fn site_drive(&self, token: &str, site: &str) -> (String, String) {
        site_drive_at(&self.http, &self.base, token, site).await
    }
}

/// A client-credentials token of tenant `contoso` with a secret, from the simulator at `base`
/// (a [`Sim`], or one a test did not start, such as `spgate demo`'s); panics unless 200.
pub async fn app_token_at(http: &Client, base: &str, client_id: &str, secret: &str) -> String {
    let resp = http
        .post(format!("{base}/contoso/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token request");
    let body = json_status(resp, 200).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Resolves site `site` of the simulator at `base` and returns (site id, default drive id).
pub async fn site_drive_at(http: &Client, base: &str, token: &str, site: &str) -> (String, String) {
    let url = format!("{base}/v1.0/sites/{HOST}:/sites/{site}");
    let resp = http.get(url).bearer_auth(token).send().await.expect("site");
    let site = json_status(resp, 200).await;
    let site_id = site["id"].as_str().expect("site id").to_string();
    let url = format!("{base}/v1.0/sites/{site_id}/drive");
    let resp = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("drive");
    let drive = json_status(resp, 200).await;
    (site_id, drive["id"].as_str().expect("drive id").to_string())
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- simulator log tail ----\n{}", self.log_tail());
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
