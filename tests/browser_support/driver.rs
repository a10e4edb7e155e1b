//! The `chromedriver` process of a [`Browser`](super::Browser): started on a port it picks
//! itself (`--port=0`, announced on its stdout), ready once its `/status` says so, and run in
//! its own process group with HOME and the XDG dirs in its temp dir, so that stopping it (also
//! on drop, when a test panics) ends every Chromium process it started.

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, timeout};

use super::{CHROMEDRIVER, CHROMIUM, POLL, TIMEOUT};

/// The `chromedriver` process and its temp dir (log, Chromium profile).
pub(super) struct Driver {
    child: Option<Child>,
    dir: Option<TempDir>,
    port: u16,
}

impl Driver {
    /// Spawns `chromedriver --port=0`, reads the port it announces on stdout and waits until
    /// its `/status` says it is ready.
    pub(super) async fn start() -> Driver {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("spgate-browser-")
            .tempdir()
            .expect("temp dir for the browser");
        let stderr = std::fs::File::create(dir.path().join("chromedriver.stderr"))
            .expect("create chromedriver.stderr");
        let child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            // Chromium's crash handler keeps its database under XDG_CONFIG_HOME: inside the dir,
            // away from the user's, and findable by `kill_strays`.
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        let mut driver = Driver {
            child: Some(child),
            dir: Some(dir),
            port: 0,
        };
        driver.port = driver.announced_port().await;
        driver.wait_ready().await;
        driver
    }

    /// The port from chromedriver's "ChromeDriver was started successfully on port N." line.
    /// A thread reads stdout to its end so that chromedriver never writes into a closed pipe.
    async fn announced_port(&mut self) -> u16 {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take());
        let stdout = stdout.expect("chromedriver's stdout");
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line
                    .split_once("started successfully on port ")
                    .and_then(|(_, rest)| rest.trim_end_matches(['.', ' ']).parse::<u16>().ok());
                if let Some(port) = port
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        match timeout(TIMEOUT, rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => panic!("chromedriver exited without a port\n{}", self.log()),
            Err(_) => panic!(
                "chromedriver announced no port in {TIMEOUT:?}\n{}",
                self.log()
            ),
        }
    }

    /// Polls `GET /status` until its `value.ready` is true.
    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let answer = match http.get(&status).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if answer.as_ref().and_then(|a| a["value"]["ready"].as_bool()) == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready in {TIMEOUT:?}: {answer:?}\n{}",
                self.log()
            );
            sleep(POLL).await;
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(super) fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the browser's temp dir").path()
    }

    /// The end of chromedriver's log and stderr, for failure messages.
    pub(super) fn log(&self) -> String {
        let mut out = String::new();
        for name in ["chromedriver.log", "chromedriver.stderr"] {
            let path = self.dir().join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail = text.len().saturating_sub(6000);
            let tail = text.get(tail..).unwrap_or(&text);
            out += &format!("--- {} (end)\n{tail}\n", path.display());
        }
        out
    }

    /// Kills chromedriver's process group (chromedriver and the Chromium it started) and the
    /// strays, then reaps chromedriver: signalled before it is reaped, the group's id cannot
    /// have been reused.
    pub(super) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
            kill_strays(self.dir());
            let _ = child.wait();
        }
    }
}

/// Kills the processes whose command line names `dir`: Chromium's crash handlers, which leave
/// chromedriver's process group (their `--database` is under the dir's `config/`).
fn kill_strays(dir: &Path) {
    let needle = dir.as_os_str().as_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let pid = entry.file_name().to_str().and_then(|n| n.parse().ok());
        let Some(pid) = pid.and_then(Pid::from_raw) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            for bulk in ["profile", "config", "cache"] {
                let _ = std::fs::remove_dir_all(dir.path().join(bulk));
            }
            eprintln!("browser logs kept in {}", dir.keep().display());
        }
    }
}
