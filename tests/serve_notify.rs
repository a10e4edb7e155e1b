//! `spgate serve` started as systemd starts a unit of `Type=notify` (`NOTIFY_SOCKET` naming a
//! datagram socket of the test's): READY=1 comes only when the SFTP, FTP and admin listeners
//! answer, with a STATUS= line naming them, also with FTP in PROXY protocol mode; SIGTERM brings
//! STOPPING=1 and a clean exit.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::KillOnDrop;

fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `spgate serve` with `NOTIFY_SOCKET` naming a datagram socket of the test's, as systemd starts
/// a unit of `Type=notify`.
struct Notified {
    socket: UnixDatagram,
    serve: KillOnDrop,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Notified {
    /// Serves SFTP, FTP (`[ftp]` gets the lines `ftp`) and admin, each on a port of its own.
    fn start(ftp: &str) -> Notified {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let config = dir.path().join("spgate.toml");
        let state = dir.path().join("state");
        std::fs::write(
            &config,
            format!(
                "[state]\ndir = {}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
                 [ftp]\nlisten = \"127.0.0.1:0\"\n{ftp}\n\
                 [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"admin-token\"\n",
                quote(state.to_str().unwrap())
            ),
        )
        .unwrap();
        let log = dir.path().join("spgate.log");
        let serve = Command::new(env!("CARGO_BIN_EXE_spgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Notified {
            socket,
            serve: KillOnDrop(serve),
            log,
            _dir: dir,
        }
    }

    /// The lines of the notifications up to and including the first that holds `state`.
    fn until(&self, state: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buffer = [0u8; 4096];
        while !lines.iter().any(|line| line == state) {
            let n = self.socket.recv(&mut buffer).unwrap_or_else(|e| {
                panic!(
                    "no {state} ({e}) after {lines:?}; log:\n{}",
                    common::file_tail(&self.log, 4000)
                )
            });
            lines.extend(
                String::from_utf8_lossy(&buffer[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
        lines
    }
}

/// The listeners a `STATUS=listening: sftp on ADDR, ...` line names, by protocol.
fn listeners(notified: &[String]) -> BTreeMap<String, SocketAddr> {
    let status = notified
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("STATUS=listening: "))
        .unwrap_or_else(|| panic!("no STATUS=listening: in {notified:?}"));
    status
        .split(", ")
        .map(|listener| {
            let (protocol, address) = listener.split_once(" on ").unwrap();
            (protocol.to_owned(), address.parse().unwrap())
        })
        .collect()
}

/// The first line the server at `address` sends on a new connection, which must be accepted
/// at once.
fn first_line(address: SocketAddr) -> String {
    let stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// `GET path` over HTTP/1.1, the whole answer.
fn http_get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn wait_exit(serve: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "spgate still runs after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn systemd_hears_ready_when_every_listener_answers_and_stopping_on_sigterm() {
    let mut served = Notified::start("");
    let ready = served.until("READY=1");
    let listening = listeners(&ready);
    let protocols: Vec<&str> = listening.keys().map(String::as_str).collect();
    assert_eq!(protocols, ["admin", "ftp", "sftp"], "{ready:?}");
    // When READY=1 arrives every front-end already serves a new connection: no retry, no wait.
    let banner = first_line(listening["sftp"]);
    assert!(banner.starts_with("SSH-2.0-"), "SFTP: {banner:?}");
    let greeting = first_line(listening["ftp"]);
    assert!(greeting.starts_with("220"), "FTP: {greeting:?}");
    let readyz = http_get(listening["admin"], "/readyz");
    assert!(readyz.starts_with("HTTP/1.1 200"), "/readyz: {readyz}");

    unsafe { libc::kill(served.serve.0.id() as i32, libc::SIGTERM) };
    let stopping = served.until("STOPPING=1");
    assert!(
        stopping
            .iter()
            .any(|line| line.starts_with("STATUS=stopping")),
        "{stopping:?}"
    );
    let status = wait_exit(&mut served.serve.0, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

/// In PROXY protocol mode libunftp binds the FTP port itself: READY=1 still waits for it.
#[test]
fn systemd_hears_ready_after_the_ftp_listener_in_proxy_protocol_mode() {
    let served = Notified::start("proxy_protocol = true\n");
    let listening = listeners(&served.until("READY=1"));
    TcpStream::connect(listening["ftp"]).expect("FTP (PROXY protocol) accepts at READY=1");
    TcpStream::connect(listening["sftp"]).expect("SFTP accepts at READY=1");
}
