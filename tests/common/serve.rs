//! Starting `spgate serve` for the front-end suites: spawn it with a config file, send its log
//! to a file, and wait for the line announcing a listener's address.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Spawns `spgate serve --config CONFIG` (stderr to `log`) and waits up to a minute for the
/// stdout line `ANNOUNCE ADDR` (e.g. `sftp listening on`); `None` if it never came.
pub fn spawn_serve(config: &Path, log: &Path, announce: &'static str) -> (Child, Option<String>) {
    let log = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .arg("serve")
        .arg("--config")
        .arg(config)
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
                    if let Some(addr) = line.trim_end().strip_prefix(announce) {
                        let _ = tx.send(addr.trim().to_string());
                        break;
                    }
                }
            }
        }
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).ok();
    (child, addr)
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
