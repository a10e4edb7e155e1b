//! The FTP front-end with real clients (Python's ftplib, curl) against `spgate serve` and the
//! simulator: uploads and downloads checked in the simulator, resumed downloads, listings with
//! sizes and times, the replies for missing paths (550) and refused names (553), folder and
//! file operations, APPE (SharePoint and local) and REST+STOR (local), modification times, STORs
//! failing upstream or cut by a reset that leave nothing, the failed-logins block, and FTPS
//! (required for all, or per user).

mod common;
mod ftp_support;

use common::Ctx;
use ftp_support::{Gateway, User, assert_same, random, value};
use serde_json::json;

const ALL: &[&str] = &["*"];

fn alice() -> User {
    User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
}

#[tokio::test]
async fn uploads_and_downloads_reach_sharepoint() {
    let gw = Gateway::start(&[alice()]).await;
    let bytes = random(3 * 1024 * 1024 + 123);
    gw.write_local("big.bin", &bytes);
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.mkd('In')\n\
         print('STOR', ftp.storbinary('STOR In/big.bin', open('big.bin', 'rb')))\n\
         open('got.bin', 'wb').write(fetch('In/big.bin'))\n\
         open('tail.bin', 'wb').write(fetch('In/big.bin', rest=1000000))\n\
         print('SIZE', ftp.size('In/big.bin'))\n",
    )
    .await;
    gw.assert_stored("In/big.bin", &bytes).await;
    assert_same(&gw.read_local("got.bin"), &bytes, "RETR");
    assert_same(&gw.read_local("tail.bin"), &bytes[1_000_000..], "REST+RETR");

    // curl: upload (STOR) and download (RETR) over passive mode.
    let small = random(5000);
    gw.write_local("small.bin", &small);
    let url = format!(
        "ftp://alice:wonderland@127.0.0.1:{}/In/small.bin",
        gw.ftp_port
    );
    let mut put = tokio::process::Command::new("curl");
    put.args(["-sS", "--ftp-pasv", "-T", "small.bin", &url]);
    let run = gw.run(put, "curl-put").await;
    assert!(run.success, "curl upload: {run}");
    gw.assert_stored("In/small.bin", &small).await;
    let mut get = tokio::process::Command::new("curl");
    get.args(["-sS", "--ftp-pasv", "-o", "small-got.bin", &url]);
    let run = gw.run(get, "curl-get").await;
    assert!(run.success, "curl download: {run}");
    assert_same(&gw.read_local("small-got.bin"), &small, "curl RETR");
}

#[tokio::test]
async fn listings_errors_and_file_operations() {
    let gw = Gateway::start(&[alice().names("refuse")]).await;
    gw.sim_put("report.csv", &random(1234)).await;
    gw.sim_put("Inbox/one.txt", &random(77)).await;
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "lines = []\nftp.retrlines('LIST', lines.append)\nprint('LIST', repr(lines))\n\
             facts = dict(ftp.mlsd('/'))\n\
             print('MLSD-report', facts['report.csv']['type'], facts['report.csv']['size'], facts['report.csv']['modify'])\n\
             print('MLSD-inbox', facts['Inbox']['type'])\n\
             print('MLST', ftp.sendcmd('MLST /report.csv').replace('\\r\\n', '|'))\n\
             print('MDTM', ftp.sendcmd('MDTM report.csv'))\n\
             print('SIZE', ftp.size('report.csv'))\n\
             print('PWD', ftp.pwd())\n\
             print('CWD', ftp.cwd('Inbox'), ftp.pwd())\n\
             print('CDUP', ftp.sendcmd('CDUP'), ftp.pwd())\n\
             print('NLST', sorted(ftp.nlst()))\n\
             print('MISSING-SIZE', attempt(ftp.size, 'nope.txt'))\n\
             print('MISSING-CWD', attempt(ftp.cwd, 'nope'))\n\
             print('MISSING-LIST', attempt(ftp.retrlines, 'LIST nope', print))\n\
             print('MISSING-MLSD', attempt(lambda: list(ftp.mlsd('nope'))))\n\
             print('MISSING-MLST', attempt(ftp.sendcmd, 'MLST nope'))\n\
             print('MISSING-RETR', attempt(fetch, 'nope.txt'))\n\
             print('MKD', ftp.mkd('New'))\n\
             print('STOR', ftp.storbinary('STOR New/a.txt', io.BytesIO(b'hello')))\n\
             print('RMD-FULL', attempt(ftp.rmd, 'New'))\n\
             print('RENAME', ftp.rename('New/a.txt', 'New/b.txt'))\n\
             print('MFMT', attempt(ftp.sendcmd, 'SITE MFMT 20200102030405 /New/b.txt'))\n\
             print('MDTM-B', ftp.sendcmd('MDTM New/b.txt'))\n\
             print('DELE', ftp.delete('New/b.txt'))\n\
             print('RMD', ftp.rmd('New'))\n\
             print('BAD-NAME', attempt(ftp.storbinary, 'STOR a:b.txt', io.BytesIO(b'x')))\n\
             print('BAD-MKD', attempt(ftp.mkd, 'what?'))\n\
             print('FEAT', ftp.sendcmd('FEAT').replace('\\r\\n', '|'))\n\
             print('OPTS', ftp.sendcmd('OPTS UTF8 ON'))\n\
             print('TYPE', ftp.sendcmd('TYPE I'))\n\
             print('EPSV', ftp.sendcmd('EPSV'))\n\
             print('QUIT', ftp.quit())\n",
        )
        .await;
    let list = value(&out, "LIST");
    assert!(
        list.contains("report.csv") && list.contains(" 1234 "),
        "{out}"
    );
    assert!(
        list.contains("drwxr-xr-x") && list.contains("Inbox"),
        "{out}"
    );
    let report = gw.sim_item("report.csv").await.expect("report.csv");
    let modified = report["fileSystemInfo"]["lastModifiedDateTime"]
        .as_str()
        .or(report["lastModifiedDateTime"].as_str())
        .expect("modified");
    let stamp: String = modified
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let mlsd = value(&out, "MLSD-report");
    assert!(mlsd.starts_with("file 1234 "), "{out}");
    assert!(mlsd.ends_with(&stamp), "MLSD modify vs {modified}: {out}");
    assert_eq!(value(&out, "MLSD-inbox"), "dir", "{out}");
    assert!(out.contains("type=file;size=1234;"), "{out}");
    assert_eq!(value(&out, "MDTM"), format!("213 {stamp}"), "{out}");
    assert_eq!(value(&out, "SIZE"), "1234", "{out}");
    assert!(value(&out, "CWD").ends_with("/Inbox"), "{out}");
    assert!(value(&out, "CDUP").ends_with(" /"), "{out}");
    for missing in [
        "MISSING-SIZE",
        "MISSING-CWD",
        "MISSING-LIST",
        "MISSING-MLSD",
        "MISSING-MLST",
        "MISSING-RETR",
    ] {
        assert!(
            value(&out, missing).starts_with("ERR 550"),
            "{missing}: {out}"
        );
    }
    assert!(value(&out, "RMD-FULL").starts_with("ERR 550"), "{out}");
    assert!(value(&out, "MFMT").starts_with("213 "), "{out}");
    assert_eq!(value(&out, "MDTM-B"), "213 20200102030405", "{out}");
    assert!(value(&out, "BAD-NAME").starts_with("ERR 553"), "{out}");
    assert!(value(&out, "BAD-MKD").starts_with("ERR 553"), "{out}");
    assert!(out.contains("\n REST STREAM\n"), "{out}");
    assert!(out.contains("\n MLSD\n"), "{out}");
    assert!(value(&out, "EPSV").starts_with("229"), "{out}");
    gw.assert_absent("New").await;
    gw.assert_absent("a:b.txt").await;
    assert_eq!(gw.sim_names("").await, ["Inbox", "report.csv"]);

    // Wrong passwords are refused (530), a right one still works afterwards.
    let run = gw.python("alice", "wrong", "print('in')").await;
    assert!(!run.success && run.output.contains("530"), "{run}");
    gw.python_ok("alice", "wonderland", "print(ftp.pwd())")
        .await;
}

#[tokio::test]
async fn append_and_resume_on_a_local_mount() {
    let local = tempfile::tempdir().expect("tempdir");
    std::fs::write(local.path().join("log.txt"), b"first\n").expect("seed file");
    let user = User::new("bob")
        .password("builder")
        .local("/", local.path(), ALL);
    let gw = Gateway::start(&[user]).await;
    gw.python_ok(
        "bob",
        "builder",
        "ftp.storbinary('APPE log.txt', io.BytesIO(b'second\\n'))\n\
         ftp.storbinary('STOR part.bin', io.BytesIO(b'0123456789'))\n\
         ftp.storbinary('STOR part.bin', io.BytesIO(b'ABCDEFGHIJ'), rest=10)\n\
         print('SIZE', ftp.size('part.bin'))\n",
    )
    .await;
    assert_eq!(
        std::fs::read(local.path().join("log.txt")).expect("log.txt"),
        b"first\nsecond\n"
    );
    assert_eq!(
        std::fs::read(local.path().join("part.bin")).expect("part.bin"),
        b"0123456789ABCDEFGHIJ"
    );
}

#[tokio::test]
async fn a_failed_upload_leaves_nothing() {
    let gw = Gateway::start_with(
        Ctx::new().await,
        &[alice().commit("close")],
        "max_retries = 1",
    )
    .await;
    // A first session, so that the connection has its token and library before the faults.
    gw.python_ok("alice", "wonderland", "print(ftp.nlst())")
        .await;
    gw.faults(json!({"fail_5xx_every": 1})).await;
    let bytes = random(2 * 1024 * 1024);
    gw.write_local("big.bin", &bytes);
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "print('STOR', attempt(ftp.storbinary, 'STOR new.bin', open('big.bin', 'rb')))\n",
        )
        .await;
    gw.clear_faults().await;
    // Throttling / server errors beyond the retry budget: 451, a transient failure.
    assert!(value(&out, "STOR").starts_with("ERR 451"), "{out}");
    gw.assert_absent("new.bin").await;
    // Once SharePoint answers again, the same upload goes through.
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('STOR new.bin', open('big.bin', 'rb'))\n",
    )
    .await;
    gw.assert_stored("new.bin", &bytes).await;
}

#[tokio::test]
async fn repeated_failed_logins_block_the_user() {
    let gw = Gateway::start(&[alice()]).await;
    for _ in 0..5 {
        let run = gw.python("alice", "wrong", "print('in')").await;
        assert!(!run.success && run.output.contains("530"), "{run}");
    }
    // Blocked now (user and address), even with the right password.
    let run = gw.python("alice", "wonderland", "print('in')").await;
    assert!(!run.success && run.output.contains("530"), "{run}");
}

#[tokio::test]
async fn ftps_is_required_when_configured() {
    let gw = Gateway::start_tls(&[alice()], "all").await;
    let bytes = random(100_000);
    gw.write_local("tls.bin", &bytes);
    let url = format!("ftp://alice:wonderland@127.0.0.1:{}/tls.bin", gw.ftp_port);
    let mut put = tokio::process::Command::new("curl");
    put.args(["-sS", "--ssl-reqd", "-k", "-T", "tls.bin", &url]);
    let run = gw.run(put, "curl-ftps-put").await;
    assert!(run.success, "curl FTPS upload: {run}");
    gw.assert_stored("tls.bin", &bytes).await;
    let mut get = tokio::process::Command::new("curl");
    get.args(["-sS", "--ssl-reqd", "-k", "-o", "tls-got.bin", &url]);
    let run = gw.run(get, "curl-ftps-get").await;
    assert!(run.success, "curl FTPS download: {run}");
    assert_same(&gw.read_local("tls-got.bin"), &bytes, "FTPS RETR");
    // Plain FTP is refused before the password is sent.
    let run = gw.python("alice", "wonderland", "print('in')").await;
    assert!(!run.success, "plain FTP should be refused: {run}");
}

#[tokio::test]
async fn an_upload_cut_by_a_reset_leaves_nothing() {
    let gw = Gateway::start(&[alice()]).await;
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "import socket, struct\n\
             ftp.voidcmd('TYPE I')\n\
             conn = ftp.transfercmd('STOR cut.bin')\n\
             conn.sendall(b'x' * (4 * 1024 * 1024))\n\
             conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n\
             conn.close()\n\
             print('STOR', attempt(ftp.voidresp))\n",
        )
        .await;
    let reply = value(&out, "STOR");
    assert!(
        reply.starts_with("ERR 4") || reply.starts_with("ERR 5"),
        "{out}"
    );
    gw.assert_absent("cut.bin").await;
}

#[tokio::test]
async fn per_user_ftps_requirements_hold_at_login() {
    let carol = User::new("carol")
        .password("secure")
        .sharepoint("/", "/", ALL)
        .tls_required();
    let gw = Gateway::start_tls(&[alice(), carol], "per-user").await;
    gw.python_ok("alice", "wonderland", "print(ftp.pwd())")
        .await;
    let run = gw.python("carol", "secure", "print(ftp.pwd())").await;
    assert!(!run.success && run.output.contains("530"), "{run}");
    let url = format!("ftp://carol:secure@127.0.0.1:{}/", gw.ftp_port);
    let mut list = tokio::process::Command::new("curl");
    list.args(["-sS", "--ssl-reqd", "-k", &url]);
    let run = gw.run(list, "curl-ftps-list").await;
    assert!(run.success, "curl FTPS listing: {run}");
}

#[tokio::test]
async fn append_reaches_sharepoint() {
    let gw = Gateway::start(&[alice()]).await;
    gw.sim_put("log.txt", b"first\n").await;
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('APPE log.txt', io.BytesIO(b'second\\n'))\n",
    )
    .await;
    gw.assert_stored("log.txt", b"first\nsecond\n").await;
}

/// SIGTERM while one session uploads and another sits idle: the idle one is closed at once,
/// the upload goes on to its end and is stored (226), and then spgate exits.
#[tokio::test]
async fn a_shutdown_closes_idle_sessions_and_lets_an_upload_finish() {
    let mut gw = Gateway::start(&[alice().commit("close")]).await;
    let bytes = random(640 * 1024);
    gw.write_local("slow.bin", &bytes);
    let script = format!(
        r#"
import os, signal, time
idle = ftplib.FTP()
idle.connect('127.0.0.1', int(sys.argv[1]), timeout=60)
idle.login(sys.argv[2], sys.argv[3])
class Slow:
    def __init__(self, data):
        self.data, self.sent = data, 0
    def read(self, n):
        if self.sent == 128 * 1024:
            os.kill({pid}, signal.SIGTERM)
            self.stopped = time.monotonic()
        chunk = self.data[self.sent:self.sent + min(n, 64 * 1024)]
        self.sent += len(chunk)
        if chunk:
            time.sleep(0.2)
        return chunk
slow = Slow(open({local:?}, 'rb').read())
print('upload', ftp.storbinary('STOR slow.bin', slow, blocksize=64 * 1024))
print('upload took', f'{{time.monotonic() - slow.stopped:.1f}}', 's after SIGTERM')
try:
    idle.voidcmd('NOOP')
    print('idle session still open')
except (EOFError, OSError, ftplib.Error) as e:
    print('idle session closed')
"#,
        pid = gw.pid(),
        local = gw.client_dir().join("slow.bin").display().to_string(),
    );
    let run = gw.python("alice", "wonderland", &script).await;
    assert!(run.success, "{run}");
    assert!(run.output.contains("upload 226"), "{run}");
    assert!(run.output.contains("idle session closed"), "{run}");
    gw.assert_stored("slow.bin", &bytes).await;
    let status = gw.wait_exit(std::time::Duration::from_secs(20));
    assert!(
        status.success(),
        "spgate serve: {status:?}\n{}",
        gw.log_tail()
    );
}
