//! [`Gateway`]: `spgate serve` as a child process in front of a simulator ([`Ctx`]), serving
//! SFTP and FTP on port 0 to the [`User`]s written into its configuration; the client runner
//! ([`Gateway::run`], [`Run`]) and the checks made through the SIMULATOR's own Graph API, never
//! only through spgate. The protocol suites add their clients: `tests/sftp_support` (OpenSSH
//! `sftp`) and `tests/ftp_support` (ftplib, lftp, curl).
//!
//! Every user accepts the harness's client key (`client/id`); a password is optional. The SSH
//! host keys are made once per test process (an RSA key takes spgate a second or more) and
//! copied into each gateway's state folder. FTP's
//! passive ports: libunftp needs a fixed range (`passive_ports` refuses 0) and picks random
//! ports in it, retrying on a busy one. Each gateway gets 200 ports at a random base in
//! 20000-39800, so that parallel tests rarely share a range, and a shared one still works.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{BASE_SEED, Ctx, data, enc_path, file_tail, qxh, spawn_serve};

/// Longest any one client process may run before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs a client command in `dir` with stdout and stderr captured together in `out_path`;
/// fails the test if it runs longer than [`CLIENT_TIMEOUT`].
pub async fn run_client(
    mut cmd: tokio::process::Command,
    dir: &Path,
    out_path: &Path,
    label: &str,
) -> Run {
    let out = std::fs::File::create(out_path).expect("output file");
    let err = out.try_clone().expect("clone output file");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
    let status = match tokio::time::timeout(CLIENT_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("wait for client"),
        Err(_) => {
            let _ = child.kill().await;
            let output = std::fs::read_to_string(out_path).unwrap_or_default();
            panic!("{label} still running after {CLIENT_TIMEOUT:?}:\n{output}");
        }
    };
    let output = String::from_utf8_lossy(&std::fs::read(out_path).unwrap_or_default()).into_owned();
    Run {
        success: status.success(),
        code: status.code(),
        output,
        asked: label.to_string(),
    }
}

/// A mount of a [`User`].
enum Target {
    SharePoint { remote: String },
    Local { dir: PathBuf },
}

struct Mount {
    path: String,
    target: Target,
    permissions: Vec<String>,
    /// `names = ...` of the mount, when written.
    names: Option<String>,
    /// `upload_commit = ...` of a SharePoint mount, when not the harness's default.
    commit: Option<String>,
}

/// The `upload_commit` SharePoint mounts get unless a test sets one: `SPGATE_TEST_UPLOAD_COMMIT`,
/// else `"close"` (the suites check SharePoint as soon as a client is done; the queue has its
/// own tests).
fn default_commit() -> String {
    std::env::var("SPGATE_TEST_UPLOAD_COMMIT").unwrap_or_else(|_| "close".to_string())
}

/// A login of the gateway: the harness's client key, and a password if one is given.
pub struct User {
    pub name: String,
    password: Option<String>,
    ftp_tls_required: bool,
    mounts: Vec<Mount>,
}

impl User {
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            password: None,
            ftp_tls_required: false,
            mounts: Vec::new(),
        }
    }

    /// Also allows password login (SFTP; FTP needs one) with `password`.
    pub fn password(mut self, password: &str) -> User {
        self.password = Some(password.to_string());
        self
    }

    /// Sets `ftp_tls_required = true` (effective with `tls_required = "per-user"`).
    pub fn tls_required(mut self) -> User {
        self.ftp_tls_required = true;
        self
    }

    /// Mounts the library folder `remote` of connection `sp` at `path`.
    pub fn sharepoint(self, path: &str, remote: &str, permissions: &[&str]) -> User {
        let target = Target::SharePoint {
            remote: remote.to_string(),
        };
        self.mount(path, target, permissions)
    }

    /// Mounts the host folder `dir` at `path`.
    pub fn local(self, path: &str, dir: &Path, permissions: &[&str]) -> User {
        let target = Target::Local {
            dir: dir.to_path_buf(),
        };
        self.mount(path, target, permissions)
    }

    fn mount(mut self, path: &str, target: Target, permissions: &[&str]) -> User {
        self.mounts.push(Mount {
            path: path.to_string(),
            target,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            names: None,
            commit: None,
        });
        self
    }

    /// Writes `names = NAMES` (`encode` or `refuse`) on the mount added last.
    pub fn names(mut self, names: &str) -> User {
        let mount = self.mounts.last_mut().expect("a mount to set names on");
        mount.names = Some(names.to_string());
        self
    }

    /// Writes `upload_commit = COMMIT` on the mount added last.
    pub fn commit(mut self, commit: &str) -> User {
        let mount = self
            .mounts
            .last_mut()
            .expect("a mount to set upload_commit on");
        mount.commit = Some(commit.to_string());
        self
    }

    /// The `[[users]]` table, accepting the public key `key`.
    fn toml(&self, key: &str) -> String {
        let mut out = format!(
            "[[users]]\nname = {}\nauthorized_keys = [{}]\n",
            quote(&self.name),
            quote(key)
        );
        if let Some(pw) = &self.password {
            let hash = spgate::users::hash_password(pw);
            out += &format!("password_hash = {}\n", quote(&hash));
        }
        if self.ftp_tls_required {
            out += "ftp_tls_required = true\n";
        }
        for m in &self.mounts {
            out += &format!("[[users.mounts]]\npath = {}\n", quote(&m.path));
            match &m.target {
                Target::SharePoint { remote } => {
                    let commit = m.commit.clone().unwrap_or_else(default_commit);
                    out += &format!(
                        "connection = \"sp\"\nremote = {}\nupload_commit = {}\n",
                        quote(remote),
                        quote(&commit)
                    )
                }
                Target::Local { dir } => {
                    out += &format!("local = {}\n", quote(dir.to_str().expect("utf-8 path")))
                }
            }
            let permissions: Vec<String> = m.permissions.iter().map(|p| quote(p)).collect();
            out += &format!("permissions = [{}]\n", permissions.join(", "));
            if let Some(names) = &m.names {
                out += &format!("names = {}\n", quote(names));
            }
        }
        out
    }
}

/// What one client process did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub code: Option<i32>,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    /// What was asked (the batch file or script), for failure messages.
    pub asked: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "asked:\n{}\nexit {:?}, output:\n{}",
            self.asked, self.code, self.output
        )
    }
}

/// The admin token of [`Gateway::start_with_admin`].
pub const ADMIN_TOKEN: &str = "gateway-admin-token";

/// The listeners a configuration serves, in the order [`Gateway`] reads them.
fn listeners(config: &str) -> &'static [&'static str] {
    if config.contains("\n[admin]\n") {
        &["sftp", "ftp", "admin"]
    } else {
        &["sftp", "ftp"]
    }
}

/// A running `spgate serve` (SFTP on `sftp_port`, FTP on `ftp_port`) in front of a simulator;
/// killed on drop (its log tail is printed when the test failed).
pub struct Gateway {
    pub ctx: Ctx,
    pub dir: tempfile::TempDir,
    pub sftp_port: u16,
    pub ftp_port: u16,
    /// The admin endpoint's address (token [`ADMIN_TOKEN`]), when started with one.
    pub admin: Option<String>,
    child: Child,
    runs: AtomicUsize,
    /// What [`Gateway::start_prepared`]'s `prepare` answered, dropped after the gateway stops.
    kept: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Gateway {
    /// A default simulator (tenant contoso, site partners) and `users`.
    pub async fn start(users: &[User]) -> Gateway {
        Gateway::start_with(Ctx::new().await, users, "").await
    }

    /// `ctx`'s simulator and `users`; `connection` holds extra lines for `[[connections]]`
    /// (e.g. `max_retries = 1`).
    pub async fn start_with(ctx: Ctx, users: &[User], connection: &str) -> Gateway {
        Gateway::start_full(ctx, users, connection, "", |_| String::new()).await
    }

    /// The default simulator, `users`, and extra lines for `[sftp]`.
    pub async fn start_with_sftp(users: &[User], sftp: &str) -> Gateway {
        Gateway::start_full(Ctx::new().await, users, "", sftp, |_| String::new()).await
    }

    /// `limits` holds the lines of a `[limits]` section.
    pub async fn start_with_limits(users: &[User], limits: &str) -> Gateway {
        let section = format!("\n[limits]\n{limits}\n");
        Gateway::start_full(Ctx::new().await, users, "", "", |_| section).await
    }

    /// A simulator whose library (the partners site's Documents) holds `quota_bytes` only.
    pub async fn start_with_quota(users: &[User], quota_bytes: u64) -> Gateway {
        let seed = format!(
            "{BASE_SEED}\n[[tenants.sites]]\nhostname = \"contoso.sharepoint.com\"\nname = \"partners\"\n\
             [[tenants.sites.drives]]\nname = \"Documents\"\nquota_bytes = {quota_bytes}\n"
        );
        Gateway::start_with(Ctx::with_seed(&seed).await, users, "").await
    }

    /// The default simulator and `users`; `prepare(dir)` runs on the gateway's temp folder just
    /// before it starts (e.g. to mount a small file system under `dir/state/spool`) and what
    /// it answers lives as long as the gateway.
    pub async fn start_prepared<T: Send + Sync + 'static>(
        users: &[User],
        prepare: impl FnOnce(&Path) -> T,
    ) -> Gateway {
        let mut kept = None;
        let mut gateway = Gateway::start_full(Ctx::new().await, users, "", "", |dir| {
            kept = Some(prepare(dir));
            String::new()
        })
        .await;
        gateway.kept = kept.map(|k| Box::new(k) as Box<dyn std::any::Any + Send + Sync>);
        gateway
    }

    /// Explicit FTPS with a fresh self-signed certificate for 127.0.0.1, and `tls_required`.
    pub async fn start_tls(users: &[User], tls_required: &str) -> Gateway {
        Gateway::start_full(Ctx::new().await, users, "", "", |dir| {
            format!(
                "tls = {}\ntls_required = {}\n",
                self_signed(dir, "ftp"),
                quote(tls_required)
            )
        })
        .await
    }

    /// The default simulator, `users`, and the admin endpoint (token [`ADMIN_TOKEN`]).
    pub async fn start_with_admin(users: &[User]) -> Gateway {
        let admin = format!("\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n");
        Gateway::start_full(Ctx::new().await, users, "", "", |_| admin).await
    }

    /// `sftp` holds extra lines for `[sftp]`; `ftp(dir)` answers extra lines for `[ftp]`,
    /// given the gateway's temp directory (or, after a blank line, whole sections: an
    /// `[admin]` section is served and its address read).
    pub async fn start_full(
        ctx: Ctx,
        users: &[User],
        connection: &str,
        sftp: &str,
        ftp: impl FnOnce(&Path) -> String,
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = dir.path().join("client");
        std::fs::create_dir(&client).expect("client dir");
        let key = client_key(&client);
        copy_host_keys(&dir.path().join("state"));
        let ftp = ftp(dir.path());
        let base = 20000 + rand::random::<u16>() % 19800;
        let mut config = format!(
            "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n{sftp}\n\
             [ftp]\nlisten = \"127.0.0.1:0\"\npassive_ports = \"{base}-{end}\"\n{ftp}\n\
             {table}{connection}\n\n",
            state = quote(dir.path().join("state").to_str().expect("utf-8 temp path")),
            end = base + 199,
            table = ctx.connection_toml("sp"),
        );
        for user in users {
            config += &user.toml(&key);
            config += "\n";
        }
        let config_path = dir.path().join("spgate.toml");
        std::fs::write(&config_path, &config).expect("write config");
        let protocols = listeners(&config);
        let (child, announced) =
            spawn_serve(&config_path, &dir.path().join("spgate.log"), protocols);
        let mut gateway = Gateway {
            ctx,
            dir,
            sftp_port: 0,
            ftp_port: 0,
            admin: announced.get(2).cloned().flatten(),
            child,
            runs: AtomicUsize::new(0),
            kept: None,
        };
        let mut ports = announced.iter().map(|addr| {
            addr.as_deref()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
        });
        let (Some(Some(sftp)), Some(Some(ftp))) = (ports.next(), ports.next()) else {
            panic!(
                "spgate serve did not announce its addresses ({announced:?})\nconfig:\n{config}\nlog:\n{}",
                gateway.log_tail()
            );
        };
        gateway.sftp_port = sftp;
        gateway.ftp_port = ftp;
        gateway
    }

    /// Kills `spgate serve` with SIGKILL (no chance to clean up) and starts it again on the
    /// same configuration and state; the first run's log is kept as `spgate.log.1`.
    pub fn crash_and_restart(&mut self) {
        self.crash();
        self.start_again();
    }

    /// Kills `spgate serve` with SIGKILL; its log is kept as `spgate.log.1`.
    pub fn crash(&mut self) {
        self.child.kill().expect("SIGKILL spgate serve");
        self.child.wait().expect("reap spgate serve");
        let log = self.dir.path().join("spgate.log");
        std::fs::rename(&log, self.dir.path().join("spgate.log.1")).expect("keep the first log");
    }

    /// Starts `spgate serve` again, on the same configuration and state, after [`crash`].
    pub fn start_again(&mut self) {
        let log = self.dir.path().join("spgate.log");
        let config = self.dir.path().join("spgate.toml");
        let protocols = listeners(&std::fs::read_to_string(&config).expect("read config"));
        let (child, announced) = spawn_serve(&config, &log, protocols);
        self.child = child;
        self.admin = announced.get(2).cloned().flatten();
        let port = |i: usize| {
            announced[i]
                .as_deref()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("restarted spgate did not announce: {}", self.log_tail()))
        };
        (self.sftp_port, self.ftp_port) = (port(0), port(1));
    }

    /// The process id of `spgate serve`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `spgate serve` to exit (after a signal the test sent); panics after `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for spgate serve") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spgate serve still running after {limit:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs `spgate ARGS --config <this gateway's file>` and answers its output.
    pub fn spgate(&self, args: &[&str]) -> std::process::Output {
        super::spgate_with(&self.dir.path().join("spgate.toml"), args)
    }

    /// The state directory's file `name` (e.g. `audit.jsonl`), empty if missing.
    pub fn state_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        file_tail(&self.dir.path().join("spgate.log"), 8000)
    }

    /// The folder client processes run in (relative local paths land here).
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// The client's private key (`id`; `id.pub` beside it).
    pub fn key(&self) -> PathBuf {
        self.client_dir().join("id")
    }

    /// A number not handed out before by this gateway (for names of batch and output files).
    pub fn next_run(&self) -> usize {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `bytes` to `name` in the client folder and answers its path.
    pub fn write_local(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.client_dir().join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub fn read_local(&self, name: &str) -> Vec<u8> {
        let path = self.client_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Runs any client command in the client folder with stdout and stderr captured together.
    pub async fn run(&self, cmd: tokio::process::Command, label: &str) -> Run {
        let out_path = self
            .dir
            .path()
            .join(format!("{label}-{}.out", self.next_run()));
        run_client(cmd, &self.client_dir(), &out_path, label).await
    }

    // ---- the simulator's view -------------------------------------------------------------

    /// Waits (up to a minute) until the gateway's upload queue holds no upload on its way:
    /// with `upload_commit = "queued"` a client is answered before SharePoint has its file, and
    /// the suites check SharePoint once every upload has landed (or been quarantined).
    pub async fn settle(&self) {
        let db = self.dir.path().join("state/spgate.db");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let waiting: i64 = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM upload_queue WHERE failed IS NULL",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or_else(|e| panic!("reading the upload queue in {}: {e}", db.display()));
            if waiting == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{waiting} queued upload(s) still on their way after a minute"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The simulator's driveItem at `path` (library path, no leading slash), or `None` (404),
    /// once the upload queue has settled.
    pub async fn sim_item(&self, path: &str) -> Option<Value> {
        self.settle().await;
        self.ctx.item_at(path).await
    }

    /// The child names of library folder `path` ("" for the root), sorted.
    pub async fn sim_names(&self, path: &str) -> Vec<String> {
        self.settle().await;
        self.ctx.child_names(path).await
    }

    /// The children of library folder `path` ("" for the root), as driveItems.
    pub async fn sim_children(&self, path: &str) -> Vec<Value> {
        self.settle().await;
        self.ctx.children(path).await
    }

    /// Every name below library folder `path`, recursively, as `a/b/c SIZE ETAG` lines
    /// (sorted); for "nothing changed" checks.
    pub async fn sim_tree(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![path.trim_matches('/').to_string()];
        while let Some(folder) = todo.pop() {
            for item in self.sim_children(&folder).await {
                let name = item["name"].as_str().expect("name");
                let full = if folder.is_empty() {
                    name.to_string()
                } else {
                    format!("{folder}/{name}")
                };
                out.push(format!(
                    "{full} {} {}",
                    item["size"],
                    item["eTag"].as_str().unwrap_or("")
                ));
                if item.get("folder").is_some() {
                    todo.push(full);
                }
            }
        }
        out.sort();
        out
    }

    /// The content of the file at library path `path`, downloaded from the simulator.
    pub async fn sim_content(&self, path: &str) -> Vec<u8> {
        let item = self
            .sim_item(path)
            .await
            .unwrap_or_else(|| panic!("{path}: not in the simulator"));
        self.ctx.download(item["id"].as_str().expect("id")).await
    }

    /// Asserts that the simulator holds exactly `bytes` at `path`: size, quickXorHash
    /// (recomputed here) and the downloaded content. Answers the driveItem.
    pub async fn assert_stored(&self, path: &str, bytes: &[u8]) -> Value {
        let Some(item) = self.sim_item(path).await else {
            panic!(
                "{path}: not in the simulator; its folder holds {:?}",
                self.sim_names(parent(path)).await
            );
        };
        assert!(item.get("file").is_some(), "{path} is not a file: {item}");
        assert_eq!(item["size"], bytes.len() as u64, "{path}: size in {item}");
        assert_eq!(
            item["file"]["hashes"]["quickXorHash"].as_str(),
            Some(qxh(bytes).as_str()),
            "{path}: quickXorHash"
        );
        let got = self.ctx.download(item["id"].as_str().expect("id")).await;
        assert_same(&got, bytes, path);
        item
    }

    /// Asserts that nothing exists at library path `path`.
    pub async fn assert_absent(&self, path: &str) {
        if let Some(item) = self.sim_item(path).await {
            panic!("{path} should not exist in the simulator: {item}");
        }
    }

    /// Creates library folders (missing ones only) through the simulator.
    pub async fn sim_mkdirs(&self, path: &str) {
        self.ctx.mkdirs(path.trim_matches('/')).await;
    }

    /// Uploads `bytes` to library path `path` through the simulator (parents created).
    pub async fn sim_put(&self, path: &str, bytes: &[u8]) -> Value {
        let folder = parent(path);
        if !folder.is_empty() {
            self.sim_mkdirs(folder).await;
        }
        self.ctx.put(path.trim_matches('/'), bytes).await
    }

    /// Sets (merges) simulator faults.
    pub async fn faults(&self, body: Value) {
        self.ctx.sim.faults(body).await;
    }

    /// Clears every simulator fault.
    pub async fn clear_faults(&self) {
        let resp = self
            .ctx
            .sim
            .http
            .request(Method::DELETE, self.ctx.sim.ctl("/faults"))
            .send()
            .await
            .expect("clear faults");
        assert!(
            resp.status().is_success(),
            "clear faults: {}",
            resp.status()
        );
    }

    /// The URL of library path `path` by path (for direct requests).
    pub fn sim_url(&self, path: &str) -> String {
        self.ctx
            .d(&format!("/root:/{}", enc_path(path.trim_matches('/'))))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- spgate serve log tail ----\n{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.kept.take();
    }
}

/// `s` as a TOML string.
/// A fresh self-signed P-256 certificate for 127.0.0.1 in `dir` (`NAME.crt`, `NAME.key`), as
/// the inline table `{ cert = ..., key = ... }` of a `tls` key.
pub fn self_signed(dir: &Path, name: &str) -> String {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command-line tool");
    assert!(out.status.success(), "openssl: {out:?}");
    format!(
        "{{ cert = {}, key = {} }}",
        quote(cert.to_str().expect("utf-8 path")),
        quote(key.to_str().expect("utf-8 path"))
    )
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Generates the client key `id` in `dir` and answers its public line.
fn client_key(dir: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "spgate-test", "-f"])
        .arg(dir.join("id"))
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    std::fs::read_to_string(dir.join("id.pub"))
        .expect("id.pub")
        .trim()
        .to_string()
}

/// Writes the process's SSH host keys (made with `ssh-keygen` on first use) into `state`, where
/// spgate loads them instead of generating its own.
fn copy_host_keys(state: &Path) {
    static KEYS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        [
            ("ssh_host_ed25519_key", "ed25519"),
            ("ssh_host_rsa_key", "rsa"),
        ]
        .into_iter()
        .map(|(file, kind)| {
            let path = dir.path().join(file);
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-C", "spgate-test-host", "-f"])
                .arg(&path)
                .output()
                .expect("run ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
            (file, std::fs::read(&path).expect("host key"))
        })
        .collect()
    });
    std::fs::create_dir_all(state).expect("state dir");
    for (file, bytes) in keys {
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(state.join(file))
            .expect("write host key");
        std::io::Write::write_all(&mut out, bytes).expect("write host key");
    }
}

/// The parent of a library path ("" for the root).
pub fn parent(path: &str) -> &str {
    path.trim_matches('/')
        .rsplit_once('/')
        .map_or("", |(parent, _)| parent)
}

/// `len` random bytes (a fresh seed each call).
pub fn random(len: usize) -> Vec<u8> {
    data(len, rand::random())
}

/// Asserts equal bytes without printing megabytes: length, then the first differing offset.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: content differs first at byte {at}");
    }
}
