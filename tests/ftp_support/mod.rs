//! Harness for the `ftp_*` tests: a simulator (tests/common's [`Ctx`]), `spgate serve` started
//! as a child process with only `[ftp]` on port 0 and password users, real FTP clients (Python's
//! `ftplib`, `curl`) run against it, and checks made through the SIMULATOR's own Graph API.
//!
//! Passive ports: libunftp needs a fixed range (`passive_ports` refuses 0) and picks random
//! ports in it, retrying on a busy one. Each gateway gets 200 ports at a random base in
//! 20000-39800, so that parallel tests rarely share a range, and a shared one still works.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Ctx, data, file_tail, qxh, spawn_serve};

/// Longest any one client process may run before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// A password login with mounts (`(path, toml lines of the target, permissions)`).
pub struct User {
    pub name: String,
    pub password: String,
    ftp_tls_required: bool,
    mounts: Vec<(String, String, Vec<String>)>,
}

impl User {
    pub fn new(name: &str, password: &str) -> User {
        User {
            name: name.to_string(),
            password: password.to_string(),
            ftp_tls_required: false,
            mounts: Vec::new(),
        }
    }

    /// Sets `ftp_tls_required = true` (effective with `tls_required = "per-user"`).
    pub fn tls_required(mut self) -> User {
        self.ftp_tls_required = true;
        self
    }

    /// Mounts the library folder `remote` of connection `sp` at `path`.
    pub fn sharepoint(mut self, path: &str, remote: &str, permissions: &[&str]) -> User {
        let target = format!("connection = \"sp\"\nremote = {}\n", quote(remote));
        self.mounts
            .push((path.into(), target, strings(permissions)));
        self
    }

    /// Mounts the host folder `dir` at `path`.
    pub fn local(mut self, path: &str, dir: &Path, permissions: &[&str]) -> User {
        let target = format!("local = {}\n", quote(dir.to_str().expect("utf-8 path")));
        self.mounts
            .push((path.into(), target, strings(permissions)));
        self
    }

    fn toml(&self) -> String {
        let hash = spgate::users::hash_password(&self.password);
        let mut out = format!(
            "[[users]]\nname = {}\npassword_hash = {}\n",
            quote(&self.name),
            quote(&hash)
        );
        if self.ftp_tls_required {
            out += "ftp_tls_required = true\n";
        }
        for (path, target, permissions) in &self.mounts {
            let permissions: Vec<String> = permissions.iter().map(|p| quote(p)).collect();
            out += &format!(
                "[[users.mounts]]\npath = {}\n{target}permissions = [{}]\n",
                quote(path),
                permissions.join(", ")
            );
        }
        out
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What one client process did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub asked: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "asked:\n{}\noutput:\n{}", self.asked, self.output)
    }
}

/// The Python prelude of every [`Gateway::python`] script: `ftp` is a logged-in `ftplib.FTP`
/// in passive mode; `attempt(f, *args)` answers `f`'s result, or `ERR <reply>` if it failed.
const PRELUDE: &str = r#"
import ftplib, io, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=60)
ftp.login(sys.argv[2], sys.argv[3])
def attempt(f, *args, **kw):
    try:
        return f(*args, **kw)
    except ftplib.all_errors as e:
        return 'ERR ' + str(e)
def fetch(name, rest=None):
    out = io.BytesIO()
    ftp.retrbinary('RETR ' + name, out.write, rest=rest)
    return out.getvalue()
"#;

/// A running `spgate serve` in front of a simulator; killed on drop (its log tail is printed
/// when the test failed).
pub struct Gateway {
    pub ctx: Ctx,
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Gateway {
    pub async fn start(users: &[User]) -> Gateway {
        Gateway::start_with(Ctx::new().await, users, "").await
    }

    /// `connection` holds extra lines for `[[connections]]` (e.g. `max_retries = 1`).
    pub async fn start_with(ctx: Ctx, users: &[User], connection: &str) -> Gateway {
        Gateway::start_full(ctx, users, connection, |_| String::new()).await
    }

    /// Explicit FTPS with a fresh self-signed certificate for 127.0.0.1, and `tls_required`.
    pub async fn start_tls(users: &[User], tls_required: &str) -> Gateway {
        Gateway::start_full(Ctx::new().await, users, "", |dir| {
            let (cert, key) = (dir.join("ftp.crt"), dir.join("ftp.key"));
            let out = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl: {out:?}");
            format!(
                "tls = {{ cert = {}, key = {} }}\ntls_required = {}\n",
                quote(cert.to_str().expect("utf-8 path")),
                quote(key.to_str().expect("utf-8 path")),
                quote(tls_required)
            )
        })
        .await
    }

    /// `ftp(dir)` answers extra lines for `[ftp]`, given the gateway's temp directory.
    async fn start_full(
        ctx: Ctx,
        users: &[User],
        connection: &str,
        ftp: impl FnOnce(&Path) -> String,
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let ftp = ftp(dir.path());
        std::fs::create_dir(dir.path().join("client")).expect("client dir");
        let base = 20000 + rand::random::<u16>() % 19800;
        let mut config = format!(
            "[state]\ndir = {state}\n\n[ftp]\nlisten = \"127.0.0.1:0\"\npassive_ports = \"{base}-{end}\"\n{ftp}\n\
             [[connections]]\nname = \"sp\"\ntenant = \"contoso\"\nclient_id = \"spgate-demo\"\n\
             client_secret = \"demo-secret\"\nsite = \"https://contoso.sharepoint.com/sites/partners\"\n\
             authority = {sim}\ngraph_url = {sim}\n{connection}\n\n",
            state = quote(dir.path().join("state").to_str().expect("utf-8 temp path")),
            end = base + 199,
            sim = quote(&ctx.sim.base),
        );
        for user in users {
            config += &user.toml();
            config += "\n";
        }
        let config_path = dir.path().join("spgate.toml");
        std::fs::write(&config_path, &config).expect("write config");
        let (child, announced) = spawn_serve(
            &config_path,
            &dir.path().join("spgate.log"),
            "ftp listening on",
        );
        let mut gateway = Gateway {
            ctx,
            dir,
            port: 0,
            child,
        };
        let Some(addr) = announced else {
            panic!(
                "spgate serve did not announce its FTP address\nconfig:\n{config}\nlog:\n{}",
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

    /// The folder client processes run in.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    pub fn write_local(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.client_dir().join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub fn read_local(&self, name: &str) -> Vec<u8> {
        let path = self.client_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Runs `script` (after [`PRELUDE`]) with `python3` as `user`/`password`.
    pub async fn python(&self, user: &str, password: &str, script: &str) -> Run {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .arg(self.port.to_string())
            .arg(user)
            .arg(password);
        let mut run = self.run(cmd, "python").await;
        run.asked = script.to_string();
        run
    }

    /// Runs a script that must succeed; answers its output.
    pub async fn python_ok(&self, user: &str, password: &str, script: &str) -> String {
        let run = self.python(user, password, script).await;
        assert!(run.success, "ftplib script failed: {run}");
        run.output
    }

    /// Runs any client command in the client folder with stdout and stderr captured together.
    pub async fn run(&self, mut cmd: tokio::process::Command, label: &str) -> Run {
        let out_path = self
            .dir
            .path()
            .join(format!("{label}-{}.out", rand::random::<u32>()));
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
            output,
            asked: label.to_string(),
        }
    }

    // ---- the simulator's view -------------------------------------------------------------

    /// The simulator's driveItem at `path` (library path), or `None` (404).
    pub async fn sim_item(&self, path: &str) -> Option<Value> {
        self.ctx.item_at(path).await
    }

    /// The child names of library folder `path` ("" for the root), sorted.
    pub async fn sim_names(&self, path: &str) -> Vec<String> {
        self.ctx.child_names(path).await
    }

    /// Asserts that the simulator holds exactly `bytes` at `path`; answers the driveItem.
    pub async fn assert_stored(&self, path: &str, bytes: &[u8]) -> Value {
        let item = self
            .sim_item(path)
            .await
            .unwrap_or_else(|| panic!("{path}: not in the simulator"));
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

    pub async fn assert_absent(&self, path: &str) {
        if let Some(item) = self.sim_item(path).await {
            panic!("{path} should not exist in the simulator: {item}");
        }
    }

    /// Uploads `bytes` to library path `path` through the simulator (parents created).
    pub async fn sim_put(&self, path: &str, bytes: &[u8]) -> Value {
        let path = path.trim_matches('/');
        if let Some((folder, _)) = path.rsplit_once('/') {
            self.ctx.mkdirs(folder).await;
        }
        self.ctx.put(path, bytes).await
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
            .request(reqwest::Method::DELETE, self.ctx.sim.ctl("/faults"))
            .send()
            .await
            .expect("clear faults");
        assert!(
            resp.status().is_success(),
            "clear faults: {}",
            resp.status()
        );
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

/// `len` random bytes (a fresh seed each call).
pub fn random(len: usize) -> Vec<u8> {
    data(len, rand::random())
}

/// Asserts equal bytes without printing megabytes.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: content differs first at byte {at}");
    }
}
