//! Starting `spgate serve` for the front-end suites: spawn it with a config file, send its log
//! to a file, and wait for the lines announcing its listeners' addresses.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `RUST_LOG` for every `spgate serve` this test binary starts, when set (e.g. to check what
/// debug lines carry).
pub static SERVE_RUST_LOG: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Spawns `spgate serve --config CONFIG` (stderr to `log`) and waits up to a minute for one
/// stdout line `PROTOCOL listening on ADDR` per entry of `protocols` (e.g. `["sftp", "ftp"]`);
/// answers the addresses in that order, `None` for a listener never announced.
pub fn spawn_serve(
    config: &Path,
    log: &Path,
    protocols: &[&'static str],
) -> (Child, Vec<Option<String>>) {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_spgate"));
    serve.arg("serve").arg("--config").arg(config);
    spawn_serve_as(serve, log, protocols)
}

/// Writes `config` to `dir/spgate.toml` and runs it ([`spawn_serve`], logging to
/// `dir/spgate.log`) for SFTP and the admin endpoint: the process, the SFTP port and the admin
/// address (`HOST:PORT`); panics with the log's tail when either is not announced.
pub fn spawn_sftp_admin(dir: &Path, config: &str) -> (Child, u16, String) {
    let path = dir.join("spgate.toml");
    std::fs::write(&path, config).expect("write the configuration");
    let log = dir.join("spgate.log");
    let (child, announced) = spawn_serve(&path, &log, &["sftp", "admin"]);
    let (Some(sftp), Some(admin)) = (&announced[0], &announced[1]) else {
        panic!("no addresses; log:\n{}", file_tail(&log, 4000));
    };
    let port = sftp.rsplit(':').next().unwrap().parse().unwrap();
    (child, port, admin.clone())
}

/// [`spawn_serve`] with open files limited to `nofile` (`ulimit -n`, through `sh`).
pub fn spawn_serve_limited(
    config: &Path,
    log: &Path,
    protocols: &[&'static str],
    nofile: u32,
) -> (Child, Vec<Option<String>>) {
    let mut serve = Command::new("sh");
    serve
        .arg("-c")
        .arg(format!(
            "ulimit -n {nofile} && exec \"$0\" serve --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_spgate"))
        .arg(config);
    spawn_serve_as(serve, log, protocols)
}

/// [`spawn_serve`] running `serve`, a command that ends up running `spgate serve`.
pub fn spawn_serve_as(
    mut serve: Command,
    log: &Path,
    protocols: &[&'static str],
) -> (Child, Vec<Option<String>>) {
    let log = std::fs::File::create(log).expect("log file");
    if let Some(filter) = SERVE_RUST_LOG.get() {
        serve.env("RUST_LOG", filter);
    }
    let mut child = serve
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn spgate serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Some((protocol, addr)) = line.trim_end().split_once(" listening on ")
                        && tx
                            .send((protocol.to_string(), addr.trim().to_string()))
                            .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let mut found: Vec<Option<String>> = vec![None; protocols.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((protocol, addr)) = rx.recv_timeout(left) else {
            break;
        };
        if let Some(i) = protocols.iter().position(|p| *p == protocol) {
            found[i] = Some(addr);
        }
    }
    (child, found)
}

/// A child process killed (and reaped) when this is dropped, e.g. at the end of a test.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last `bytes` (about) of a text file, cut at a character boundary; empty if unreadable.
pub fn file_tail(path: &Path, bytes: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_string()
}

/// `GET url` with `token` as Bearer, answered as JSON (the admin API's reads).
pub async fn get_json_with(url: &str, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST url` with `token` as Bearer and no body: the status and the answer's text (the admin
/// API's actions: reload, run a sync job).
pub async fn post_with(url: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Runs `spgate ARGS --config CONFIG` to completion (an operator's command beside a server).
pub fn spgate_with(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run spgate")
}
