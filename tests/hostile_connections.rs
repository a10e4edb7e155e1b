//! Holding connections against `spgate serve` (SFTP and FTP): `[limits]` refuse what is over
//! them with a reason, idle connections that never log in cannot keep a partner out (nor can
//! FTP's NOOP past the login grace time), and running the process out of descriptors neither
//! floods the log nor stops it for good.

mod common;

use std::time::Duration;

use common::{Ctx, Gateway, KillOnDrop, User, spawn_serve_limited};

const ALL: &[&str] = &["*"];

fn alice() -> User {
    User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL)
}

/// Python (argv: port, count, then what to do): opens `count` TCP connections that never say
/// anything (those whose handshake takes longer than `patience`, as when the server's accept
/// queue is full, are given up), then does the rest while holding them. Helpers:
/// `login()` answers how long a paramiko password login as alice took, or raises (`ftp_login()`
/// the same with ftplib); `login_soon(login=login)` tries for up to 15 s and answers `login ok`
/// or `login failed` with why;
/// `still_open()` answers how many of the held connections the server has not closed.
const HOLD: &str = r#"
import ftplib, select, socket, sys, time, paramiko
port, count, patience = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
held = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    held.append(s)
# Waits up to `patience` seconds for the handshakes: once the server's accept queue is full, the
# kernel drops further SYNs, retransmitted for minutes (the queue's length differs between
# machines).
pending, deadline = list(held), time.monotonic() + patience
while pending and time.monotonic() < deadline:
    _, done, _ = select.select([], pending, [], 0.1)
    pending = [s for s in pending if s not in done]
for s in pending:
    s.close()
held = [s for s in held if s not in pending]
def login():
    start = time.monotonic()
    t = paramiko.Transport(("127.0.0.1", port))
    try:
        t.connect(username="alice", password="alice-pw")
        return time.monotonic() - start
    finally:
        t.close()
def ftp_login():
    start = time.monotonic()
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=10)
    f.login("alice", "alice-pw")
    f.quit()
    return time.monotonic() - start
def login_soon(login=login):
    deadline = time.monotonic() + 15
    while True:
        try:
            login()
            return "login ok"
        except Exception as e:
            if time.monotonic() > deadline:
                return f"login failed {e}"
            time.sleep(0.05)
def closed(s):
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
def still_open():
    return sum(not closed(s) for s in held)
"#;

/// Asserts that the gateway's log holds `text` (shows the log's tail when it does not).
#[track_caller]
fn assert_logged(gw: &Gateway, text: &str) {
    let log = gw.log_tail();
    assert!(log.contains(text), "{text:?} not logged:\n{log}");
}

/// The rest of the line of `output` that starts with `label `.
fn value_after<'a>(output: &'a str, label: &str) -> &'a str {
    let prefix = format!("{label} ");
    output
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{output}"))
}

/// The command running [`HOLD`] then `script` against `port` with `count` held connections.
fn holding(port: u16, count: usize, patience: Duration, script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c")
        .arg(format!("{HOLD}\n{script}"))
        .arg(port.to_string())
        .arg(count.to_string())
        .arg(patience.as_secs_f64().to_string());
    cmd
}

/// Runs [`holding`] against `gw`'s SFTP port; answers its output.
async fn hold(gw: &Gateway, count: usize, script: &str) -> String {
    hold_on(gw, gw.sftp_port, count, script).await
}

/// Runs [`holding`] against `port` of `gw`; answers its output.
async fn hold_on(gw: &Gateway, port: u16, count: usize, script: &str) -> String {
    let patience = Duration::from_secs(60);
    let run = gw.run(holding(port, count, patience, script), "hold").await;
    assert!(run.success, "{run}");
    run.output
}

#[tokio::test]
async fn a_connection_over_the_per_address_limit_is_told_why() {
    let gw = Gateway::start_with_limits(&[alice()], "max_per_address = 3").await;
    // Three connections held: OpenSSH's sftp is refused with the reason; once they are gone,
    // it gets in.
    let script = r#"
import subprocess
refused = subprocess.run(["sftp", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-P", str(port), "alice@127.0.0.1"],
    input=b"", capture_output=True)
print("sftp exit", refused.returncode)
print("sftp said", refused.stderr.decode().strip().replace("\n", " | "))
for s in held:
    s.close()
print(login_soon())
"#;
    let out = hold(&gw, 3, script).await;
    assert!(!out.contains("sftp exit 0"), "{out}");
    assert!(out.contains("too many connections"), "{out}");
    assert!(out.contains("login ok"), "{out}");
    assert_logged(&gw, "connection refused: too many connections");
}

/// `count` connections to `gw`'s `protocol` port that never log in, all held, with
/// `max_unauthenticated = waiting`: a partner still logs in within 2 s, and the server keeps
/// no more than `waiting` of them (the oldest are cut to make room).
async fn idle_connections_held(protocol: &str, count: usize, waiting: usize) -> Gateway {
    let limits =
        format!("max_unauthenticated = {waiting}\nmax_per_address = 1000\nmax_connections = 1000");
    let gw = Gateway::start_with_limits(&[alice()], &limits).await;
    let (port, login) = match protocol {
        "sftp" => (gw.sftp_port, "login"),
        _ => (gw.ftp_port, "ftp_login"),
    };
    let script = format!(
        r#"
took = {login}()
print("login took", f"{{took:.3f}}")
deadline = time.monotonic() + 10
while still_open() > {waiting} and time.monotonic() < deadline:
    time.sleep(0.05)
print("still open", still_open())
"#
    );
    let out = hold_on(&gw, port, count, &script).await;
    let took: f64 = value_after(&out, "login took").parse().unwrap();
    assert!(took < 2.0, "{out}");
    let open: usize = value_after(&out, "still open").parse().unwrap();
    assert!(open <= waiting, "{out}");
    gw
}

#[tokio::test]
async fn idle_connections_cannot_keep_a_partner_out() {
    let gw = idle_connections_held("sftp", 300, 20).await;
    assert_logged(&gw, "max_unauthenticated connections were waiting");
}

#[tokio::test]
async fn running_out_of_descriptors_is_logged_calmly_and_recovers() {
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let hash = spgate::users::hash_password("alice-pw");
    // No limit stands in the way: the process itself runs out of descriptors (ulimit -n 64).
    let config = format!(
        "[state]\ndir = \"{state}\"\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
         [limits]\nmax_connections = 100000\nmax_per_address = 100000\nmax_unauthenticated = 100000\n\n\
         {connection}\n\
         [[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n\
         [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/\"\npermissions = \"*\"\n",
        state = state.display(),
        connection = ctx.connection_toml("sp"),
    );
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("spgate.log");
    let (child, announced) = spawn_serve_limited(&path, &log, &["sftp"], 64);
    let _child = KillOnDrop(child);
    let port = announced[0]
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("not listening:\n{}", common::file_tail(&log, 4000)));

    // 200 connections held for three seconds, far past the 64 descriptors; then let go.
    let script = "time.sleep(3)\nfor s in held:\n    s.close()\nprint(login_soon())\n";
    // Connections the full accept queue keeps waiting are not needed: the limit is reached.
    let patience = Duration::from_secs(5);
    let output = holding(port, 200, patience, script).output().await.unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let text = std::fs::read_to_string(&log).unwrap();
    let failures = text
        .lines()
        .filter(|l| l.contains("accepting connections failed"))
        .count();
    assert!(
        text.contains("Too many open files"),
        "the limit was never reached:\n{}",
        common::file_tail(&log, 4000)
    );
    assert!(
        failures < 30 && text.lines().count() < 200,
        "{failures} accept failure lines:\n{}",
        common::file_tail(&log, 4000)
    );
    assert!(out.contains("login ok"), "{out}{output:?}");
}

#[tokio::test]
async fn sessions_channels_and_handles_are_bounded_per_login() {
    let limits =
        "max_sessions_per_user = 1\nmax_channels_per_connection = 2\nmax_handles_per_login = 3";
    let gw = Gateway::start_with_limits(&[alice()], limits).await;
    let script = r#"
def connect():
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username="alice", password="alice-pw")
    return t
first = connect()
try:
    connect()
    print("second session ok")
except paramiko.AuthenticationException:
    print("second session refused")
one, two = first.open_sftp_client(), first.open_sftp_client()
try:
    first.open_sftp_client()
    print("third channel ok")
except Exception as e:
    print("third channel refused")
# Three handles over the login's two channels, then no more on either.
files = [one.open(f"/h{i}.txt", "w") for i in range(2)] + [two.open("/h2.txt", "w")]
for client in (one, two):
    try:
        client.open("/h3.txt", "w")
        print("fourth handle ok")
    except IOError as e:
        print("fourth handle refused", e)
files[0].close()
two.open("/h3.txt", "w").close()
print("handle after a close ok")
first.close()
print(login_soon().replace("login", "session after the first"))
"#;
    let out = hold(&gw, 0, script).await;
    for line in [
        "second session refused",
        "third channel refused",
        "handle after a close ok",
        "session after the first ok",
    ] {
        assert!(out.contains(line), "{line}:\n{out}");
    }
    assert_eq!(out.matches("fourth handle refused").count(), 2, "{out}");
    assert!(
        out.contains("too many open handles"),
        "the reason reaches the client:\n{out}"
    );
    let audit = std::fs::read_to_string(gw.dir.path().join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("max_sessions_per_user reached"), "{audit}");
}

#[tokio::test]
async fn ftp_connections_are_bounded_and_told_why() {
    let limits = "max_per_address = 3";
    let gw = Gateway::start_with_limits(&[alice()], limits).await;
    let script = r#"
try:
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=10)
    print("ftp greeting", f.getwelcome())
except ftplib.all_errors as e:
    print("ftp refused", e)
for s in held:
    s.close()
print(login_soon(ftp_login))
"#;
    let out = hold_on(&gw, gw.ftp_port, 3, script).await;
    assert!(
        out.contains("ftp refused 421 Too many connections"),
        "{out}"
    );
    assert!(out.contains("login ok"), "{out}");
    assert_logged(&gw, "connection refused: too many connections");
}

#[tokio::test]
async fn idle_ftp_connections_cannot_keep_a_partner_out() {
    idle_connections_held("ftp", 60, 5).await;
}

/// `[ftp] login_grace_time`: a connection that only sends NOOP is closed when it is over; a
/// logged-in one stays.
#[tokio::test]
async fn ftp_connections_that_do_not_log_in_are_closed_after_the_grace_time() {
    let gw = Gateway::start_full(Ctx::new().await, &[alice()], "", "", |_| {
        "login_grace_time = \"2s\"\n".to_string()
    })
    .await;
    let script = r#"
f = ftplib.FTP()
f.connect("127.0.0.1", port, timeout=10)
start = time.monotonic()
try:
    while time.monotonic() - start < 10:
        f.voidcmd("NOOP")
        time.sleep(0.2)
    print("still open after 10 s")
except (EOFError, OSError, ftplib.Error) as e:
    print("closed after", f"{time.monotonic() - start:.1f}")
g = ftplib.FTP()
g.connect("127.0.0.1", port, timeout=10)
g.login("alice", "alice-pw")
time.sleep(3)
print("logged in", g.voidcmd("NOOP"))
"#;
    let out = hold_on(&gw, gw.ftp_port, 0, script).await;
    let closed: f64 = value_after(&out, "closed after").parse().unwrap();
    assert!((1.5..6.0).contains(&closed), "{out}");
    assert!(out.contains("logged in 200"), "{out}");
    assert_logged(&gw, "FTP connection closed: no login within the grace time");
}
