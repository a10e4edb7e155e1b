//! Harness for the `sftp_*` tests: a simulator (tests/common's [`Ctx`]), `spgate serve` started
//! as a child process on port 0 with users and mounts written into its configuration, real SFTP
//! clients (OpenSSH `sftp` in batch mode, `curl`, paramiko) run against it, and checks made
//! through the SIMULATOR's own Graph API, never only through spgate.
//!
//! - [`User`]: a login and its mounts, turned into a `[[users]]` table;
//! - [`Gateway`]: the running gateway, its temp directory (state, client key, a client working
//!   folder), the sftp runner and the simulator-side checks;
//! - [`Run`]: what one client process did (exit status and its interleaved stdout/stderr).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::{Ctx, data, enc_path, file_tail, qxh, spawn_serve};

/// Longest any one client process may run before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// A mount of a [`User`].
enum Target {
    SharePoint { remote: String },
    Local { dir: PathBuf },
}

struct Mount {
    path: String,
    target: Target,
    permissions: Vec<String>,
}

/// A login of the gateway. Every user accepts the harness's client key; a password is optional.
pub struct User {
    pub name: String,
    password: Option<String>,
    mounts: Vec<Mount>,
}

impl User {
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            password: None,
            mounts: Vec::new(),
        }
    }

    /// Also allows password login with `password`.
    pub fn password(mut self, password: &str) -> User {
        self.password = Some(password.to_string());
        self
    }

    /// Mounts the library folder `remote` of connection `sp` at `path`.
    pub fn sharepoint(mut self, path: &str, remote: &str, permissions: &[&str]) -> User {
        self.mounts.push(Mount {
            path: path.to_string(),
            target: Target::SharePoint {
                remote: remote.to_string(),
            },
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        });
        self
    }

    /// Mounts the host folder `dir` at `path`.
    pub fn local(mut self, path: &str, dir: &Path, permissions: &[&str]) -> User {
        self.mounts.push(Mount {
            path: path.to_string(),
            target: Target::Local {
                dir: dir.to_path_buf(),
            },
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        });
        self
    }

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
        for m in &self.mounts {
            out += &format!("[[users.mounts]]\npath = {}\n", quote(&m.path));
            match &m.target {
                Target::SharePoint { remote } => {
                    out += &format!("connection = \"sp\"\nremote = {}\n", quote(remote))
                }
                Target::Local { dir } => {
                    out += &format!("local = {}\n", quote(dir.to_str().expect("utf-8 path")))
                }
            }
            let permissions: Vec<String> = m.permissions.iter().map(|p| quote(p)).collect();
            out += &format!("permissions = [{}]\n", permissions.join(", "));
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
    /// What was asked (the batch file), for failure messages.
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

/// The lines a client printed other than the echo of batch commands (`sftp> ...`).
pub fn replies(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| !l.starts_with("sftp> "))
        .collect()
}

/// Whether a short listing (`ls`) in `output` shows `name` (a name without spaces).
pub fn listed(output: &str, name: &str) -> bool {
    replies(output)
        .iter()
        .any(|l| l.split_whitespace().any(|w| w == name))
}

/// The `ls -l` line of `name` in `output`, if any.
pub fn find_long_line<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    let suffix = format!(" {name}");
    output
        .lines()
        .find(|l| l.starts_with(['-', 'd', 'l']) && l.ends_with(&suffix))
}

/// The `ls -l` line of `name` in `output`; panics if there is none.
pub fn long_line<'a>(output: &'a str, name: &str) -> &'a str {
    find_long_line(output, name)
        .unwrap_or_else(|| panic!("no ls -l line for {name:?} in:\n{output}"))
}

/// A running `spgate serve` in front of a simulator; killed on drop (its log tail is printed
/// when the test failed).
pub struct Gateway {
    pub ctx: Ctx,
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    runs: AtomicUsize,
}

impl Gateway {
    /// A default simulator (tenant contoso, site partners) and `users`.
    pub async fn start(users: &[User]) -> Gateway {
        Gateway::start_with(Ctx::new().await, users, "").await
    }

    /// `ctx`'s simulator and `users`; `connection` holds extra lines for `[[connections]]`
    /// (e.g. `max_retries = 1`).
    pub async fn start_with(ctx: Ctx, users: &[User], connection: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = dir.path().join("client");
        std::fs::create_dir(&client).expect("client dir");
        let key = client_key(&client);
        let mut config = format!(
            "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
             [[connections]]\nname = \"sp\"\ntenant = \"contoso\"\nclient_id = \"spgate-demo\"\n\
             client_secret = \"demo-secret\"\nsite = \"https://contoso.sharepoint.com/sites/partners\"\n\
             authority = {base}\ngraph_url = {base}\n{connection}\n\n",
            state = quote(dir.path().join("state").to_str().expect("utf-8 temp path")),
            base = quote(&ctx.sim.base),
        );
        for user in users {
            config += &user.toml(&key);
            config += "\n";
        }
        let config_path = dir.path().join("spgate.toml");
        std::fs::write(&config_path, &config).expect("write config");

        let (child, announced) = spawn_serve(
            &config_path,
            &dir.path().join("spgate.log"),
            "sftp listening on",
        );
        let mut gateway = Gateway {
            ctx,
            dir,
            port: 0,
            child,
            runs: AtomicUsize::new(0),
        };
        let Some(addr) = announced else {
            panic!(
                "spgate serve did not announce its SFTP address\nconfig:\n{config}\nlog:\n{}",
                gateway.log_tail()
            );
        };
        gateway.port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("announced {addr:?}"));
        gateway
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

    /// The OpenSSH options every `sftp` run uses: key login only, no host-key bookkeeping.
    fn ssh_options(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
            "-o",
            "ConnectTimeout=30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-i".into());
        args.push(self.key().to_str().unwrap().to_string());
        args.push("-P".into());
        args.push(self.port.to_string());
        args
    }

    /// Runs `sftp -b BATCH` as `user` (plus `extra` arguments before the destination).
    pub async fn sftp_with(&self, user: &str, extra: &[&str], batch: &str) -> Run {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let batch_path = self.dir.path().join(format!("batch-{n}.txt"));
        std::fs::write(&batch_path, batch).expect("write batch");
        let mut cmd = tokio::process::Command::new("sftp");
        cmd.args(self.ssh_options())
            .args(extra)
            .arg("-b")
            .arg(&batch_path)
            .arg(format!("{user}@127.0.0.1"));
        let mut run = self.run(cmd, &format!("sftp-{n}")).await;
        run.asked = batch.to_string();
        run
    }

    /// Runs `sftp -b BATCH` as `user`.
    pub async fn sftp(&self, user: &str, batch: &str) -> Run {
        self.sftp_with(user, &[], batch).await
    }

    /// Runs a batch that must succeed; answers its output.
    pub async fn sftp_ok(&self, user: &str, batch: &str) -> String {
        let run = self.sftp(user, batch).await;
        assert!(run.success, "sftp failed: {run}");
        run.output
    }

    /// Runs a batch that must fail (sftp exits non-zero); answers its output.
    pub async fn sftp_fails(&self, user: &str, batch: &str) -> String {
        let run = self.sftp(user, batch).await;
        assert!(!run.success, "sftp should have failed: {run}");
        run.output
    }

    /// Runs any client command in the client folder with stdout and stderr captured together.
    pub async fn run(&self, mut cmd: tokio::process::Command, label: &str) -> Run {
        let out_path = self.dir.path().join(format!("{label}.out"));
        let out = std::fs::File::create(&out_path).expect("output file");
        let err = out.try_clone().expect("clone output file");
        cmd.current_dir(self.client_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        let status = match tokio::time::timeout(CLIENT_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for client"),
            Err(_) => {
                let _ = child.kill().await;
                let output = std::fs::read_to_string(&out_path).unwrap_or_default();
                panic!("{label} still running after {CLIENT_TIMEOUT:?}:\n{output}");
            }
        };
        let output =
            String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
        Run {
            success: status.success(),
            code: status.code(),
            output,
            asked: label.to_string(),
        }
    }

    // ---- the simulator's view -------------------------------------------------------------

    /// The simulator's driveItem at `path` (library path, no leading slash), or `None` (404).
    pub async fn sim_item(&self, path: &str) -> Option<Value> {
        self.ctx.item_at(path).await
    }

    /// The child names of library folder `path` ("" for the root), sorted.
    pub async fn sim_names(&self, path: &str) -> Vec<String> {
        self.ctx.child_names(path).await
    }

    /// The children of library folder `path` ("" for the root), as driveItems.
    pub async fn sim_children(&self, path: &str) -> Vec<Value> {
        self.ctx.children(path).await
    }

    /// Every name below library folder `path`, recursively, as `a/b/c` paths (sorted); for
    /// "nothing changed" checks together with eTags.
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
    }
}

/// `s` as a TOML string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Generates the client key `id` in `dir` and answers its public line.
fn client_key(dir: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "sftp-test", "-f"])
        .arg(dir.join("id"))
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    std::fs::read_to_string(dir.join("id.pub"))
        .expect("id.pub")
        .trim()
        .to_string()
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

/// Whether `python3` can import paramiko.
pub fn has_paramiko() -> bool {
    Command::new("python3")
        .args(["-c", "import paramiko"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
