//! Other SFTP clients than OpenSSH: curl (libssh2) uploading and downloading one file, and
//! paramiko (when python3 can import it; skipped otherwise) with password login, prefetching
//! reads, SETSTAT of times, the server's error messages, stat while a file is being written,
//! reads past the end, and an upload that fails when its handle closes.

mod common;
mod sftp_support;

use common::Ctx;
use sftp_support::{Gateway, User, assert_same, has_paramiko, random};

const ALL: &[&str] = &["*"];

#[tokio::test]
async fn curl_uploads_and_downloads_a_file() {
    let gw = Gateway::start(&[User::new("alice").sharepoint("/", "/Curl", ALL)]).await;
    gw.sim_mkdirs("Curl").await;
    let bytes = random(5 * 1024 * 1024 + 123);
    gw.write_local("up.bin", &bytes);
    let curl = |args: &[&str], remote: &str| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--fail",
            "--insecure",
            "--key",
            "id",
            "--pubkey",
            "id.pub",
        ])
        .args(["-u", "alice:"])
        .args(args)
        .arg(format!("sftp://127.0.0.1:{}/{remote}", gw.sftp_port));
        cmd
    };

    let run = gw
        .run(curl(&["-T", "up.bin"], "curl%20up.bin"), "curl-put")
        .await;
    assert!(run.success, "curl upload: {run}");
    gw.assert_stored("Curl/curl up.bin", &bytes).await;

    let run = gw
        .run(curl(&["-o", "down.bin"], "curl%20up.bin"), "curl-get")
        .await;
    assert!(run.success, "curl download: {run}");
    assert_same(&gw.read_local("down.bin"), &bytes, "curl download");

    // A missing file is an error, not an empty download.
    let run = gw
        .run(curl(&["-o", "none.bin"], "missing.bin"), "curl-missing")
        .await;
    assert!(!run.success, "{run}");
    assert_eq!(gw.sim_names("Curl").await, ["curl up.bin"]);
}

/// The paramiko session; argv: port user password sim_base. Prints one `ok NAME` line per
/// check, raises (exit 1) on the first failure.
const PARAMIKO: &str = r#"
import json, os, sys, time, urllib.request
import paramiko

port, user, password, sim = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def faults(method, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim + "/_sim/faults", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()

transport = paramiko.Transport(("127.0.0.1", port))
transport.connect(username=user, password=password)
sftp = paramiko.SFTPClient.from_transport(transport)

# put (pipelined writes, then a stat to confirm the size) and get (prefetched reads).
attrs = sftp.put("up.bin", "/py/up.bin")
assert attrs.st_size == os.path.getsize("up.bin"), attrs
sftp.get("/py/up.bin", "back.bin")
print("ok put-get")

names = {a.filename: a.st_size for a in sftp.listdir_attr("/py")}
assert names == {"up.bin": os.path.getsize("up.bin")}, names
print("ok listdir")

# SETSTAT by path: times go to SharePoint, permissions are accepted.
sftp.utime("/py/up.bin", (1500000000, 1500000000))
sftp.chmod("/py/up.bin", 0o600)
assert sftp.stat("/py/up.bin").st_mtime == 1500000000
print("ok setstat")

# Reads past the end answer EOF (an empty read), not an error.
with sftp.open("/py/up.bin", "rb") as f:
    f.seek(os.path.getsize("up.bin") + 10)
    assert f.read(10) == b""
print("ok eof")

# The server's message says what is wrong with a name.
try:
    sftp.open("/py/a:b.txt", "wb").close()
    raise SystemExit("a:b.txt was accepted")
except IOError as e:
    print("refused a:b.txt:", e)
    assert "':' is not allowed" in str(e), e
print("ok refused-name")

# Clients stat a file while writing it (from the handle) and right after (paramiko's put).
with sftp.open("/py/during.bin", "wb") as f:
    f.write(b"x" * 1000)
    assert f.stat().st_size == 1000
    if os.environ.get("STAT_BY_PATH"):
        assert sftp.stat("/py/during.bin").st_size == 1000
assert sftp.stat("/py/during.bin").st_size == 1000
print("ok stat-while-writing")

# A failure when the handle closes reaches the client, and nothing is stored. (paramiko's
# SFTPFile.close() swallows errors, so the CLOSE request is sent by hand.)
f = sftp.open("/py/fail.bin", "wb")
f.write(os.urandom(5 * 1024 * 1024))
f.flush()
faults("POST", {"fail_5xx_every": 1})
try:
    sftp._request(paramiko.sftp.CMD_CLOSE, f.handle)
    failed = None
except IOError as e:
    failed = e
finally:
    f._closed = True
    faults("DELETE")
assert failed is not None, "close succeeded while SharePoint failed every request"
print("close failed:", failed)
print("ok close-failure")

sftp.close()
transport.close()
"#;

#[tokio::test]
async fn paramiko_works_with_password_login() {
    paramiko_session(false).await;
}

/// CLIENTS.md: clients STAT a file by path while uploading it; the answer must come from the
/// open handle (SFTPGo #2010). spgate answers "no such file" (src/sftp/files.rs `stat`).
#[tokio::test]

async fn paramiko_stat_by_path_while_writing() {
    paramiko_session(true).await;
}

async fn paramiko_session(stat_by_path: bool) {
    assert!(
        has_paramiko(),
        "paramiko is not installed for python3 (.ci/run installs it: pip install paramiko)"
    );
    let gw = Gateway::start_with(
        Ctx::new().await,
        &[User::new("bob")
            .password("s3cret pw")
            .sharepoint("/", "/", ALL)
            .names("refuse")
            // The script checks that a close hears SharePoint failing.
            .commit("close")],
        "max_retries = 1",
    )
    .await;
    gw.sim_mkdirs("py").await;
    let bytes = random(3 * 1024 * 1024 + 77);
    gw.write_local("up.bin", &bytes);
    gw.write_local("session.py", PARAMIKO.as_bytes());

    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("session.py")
        .arg(gw.sftp_port.to_string())
        .args(["bob", "s3cret pw"])
        .arg(&gw.ctx.sim.base);
    if stat_by_path {
        cmd.env("STAT_BY_PATH", "1");
    }
    let run = gw.run(cmd, "paramiko").await;
    eprintln!("{}", run.output);
    assert!(run.success, "paramiko: {run}");

    let item = gw.assert_stored("py/up.bin", &bytes).await;
    let when = item["fileSystemInfo"]["lastModifiedDateTime"].as_str();
    assert_eq!(when, Some("2017-07-14T02:40:00Z"), "{item}");
    assert_same(&gw.read_local("back.bin"), &bytes, "paramiko get");
    gw.assert_stored("py/during.bin", &[b'x'; 1000]).await;
    gw.assert_absent("py/fail.bin").await;
    assert_eq!(gw.sim_names("py").await, ["during.bin", "up.bin"]);
}
