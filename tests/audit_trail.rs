//! The audit trail of what a partner could not do, and the log lines of what they did: every
//! refused or failed operation is one audit line with outcome `denied` or `failed` and its
//! `reason` (permissions, a name SharePoint refuses, a missing file, a disabled connection),
//! mkdir and rmdir are audited, SFTP partners are told a disabled connection is unavailable (not
//! "Permission denied"), FTP partners get 451, and each transfer is one info line with user,
//! peer, path, bytes, seconds and MB/s, for both protocols. Driven with OpenSSH `sftp`,
//! paramiko and ftplib; the audit is read from the gateway's `audit.jsonl`.

mod common;
mod ftp_support;
mod sftp_support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Gateway, User};

const ALL: &[&str] = &["*"];

/// The audit lines so far.
fn audit(gw: &Gateway) -> Vec<Value> {
    gw.state_file("audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Waits (up to 20 s) for the audit line of `user`'s `action` on `path` with `outcome`, and
/// answers it.
async fn audited(gw: &Gateway, user: &str, action: &str, path: &str, outcome: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = audit(gw).into_iter().find(|e| {
            e["user"] == user
                && e["action"] == action
                && e["path"] == path
                && e["outcome"] == outcome
        });
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {outcome} {action} of {path} by {user} in the audit:\n{}",
            gw.state_file("audit.jsonl")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs paramiko logged in as `login` (user, password) over SFTP: each `(name, call)` of the
/// Python tuple `calls` (calls of the client `s`) must raise an IOError, which is printed as
/// `name -> error`; the run fails if one succeeds.
async fn refused_by_paramiko(gw: &Gateway, login: (&str, &str), calls: &str) -> common::Run {
    let script = format!(
        r#"
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username=sys.argv[2], password=sys.argv[3])
s = paramiko.SFTPClient.from_transport(t)
for what, call in {calls}:
    try:
        call()
        raise SystemExit(what + " succeeded")
    except IOError as e:
        print(what, "->", e)
"#
    );
    gw.write_local("refused.py", script.as_bytes());
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("refused.py")
        .arg(gw.sftp_port.to_string())
        .args([login.0, login.1]);
    let run = gw.run(cmd, "paramiko").await;
    assert!(run.success, "{run}");
    run
}

/// Asserts that `line` carries `reason` and an error text.
fn assert_reason(line: &Value, reason: &str) {
    assert_eq!(line["reason"], reason, "{line}");
    assert!(
        line["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{line}"
    );
}

#[tokio::test]
async fn refusals_and_folders_are_audited_with_their_reasons() {
    let gw = Gateway::start(&[
        User::new("reader")
            .password("reader-pass")
            .sharepoint("/", "/Shared", &["list", "read"]),
        User::new("pat")
            .sharepoint("/", "/Shared", ALL)
            .names("refuse"),
    ])
    .await;
    gw.sim_put("Shared/old.txt", b"old").await;
    gw.sim_mkdirs("Shared/Empty").await;
    gw.write_local("new.txt", b"new");

    for batch in [
        "put new.txt new.txt\n",
        "mkdir Sub\n",
        "rm old.txt\n",
        "rmdir Empty\n",
        "rename old.txt renamed.txt\n",
    ] {
        gw.sftp_fails("reader", batch).await;
    }
    let denied = [
        ("upload", "/new.txt"),
        ("mkdir", "/Sub"),
        ("delete", "/old.txt"),
        ("rmdir", "/Empty"),
        ("rename", "/old.txt"),
    ];
    for (action, path) in denied {
        let line = audited(&gw, "reader", action, path, "denied").await;
        assert_reason(&line, "permission_denied");
        assert_eq!(line["protocol"], "sftp", "{line}");
        assert_eq!(line["peer"], "127.0.0.1", "{line}");
    }
    let rename = audited(&gw, "reader", "rename", "/old.txt", "denied").await;
    assert_eq!(rename["to"], "/renamed.txt", "{rename}");

    // paramiko opens without asking first (OpenSSH's get stats, and stops there); a name
    // with a control character is refused by the gateway itself.
    let run = refused_by_paramiko(
        &gw,
        ("reader", "reader-pass"),
        r#"(("open", lambda: s.open("/missing.txt", "rb")), ("mkdir", lambda: s.mkdir("/bell\x07")))"#,
    )
    .await;
    assert_eq!(run.output.matches(" -> ").count(), 2, "{run}");
    let missing = audited(&gw, "reader", "download", "/missing.txt", "failed").await;
    assert_reason(&missing, "not_found");
    let bell = audited(&gw, "reader", "mkdir", "/bell\u{7}", "denied").await;
    assert_reason(&bell, "invalid_name");

    // A name SharePoint refuses, with names = "refuse".
    gw.sftp_fails("pat", "put new.txt con.txt\n").await;
    let name = audited(&gw, "pat", "upload", "/con.txt", "denied").await;
    assert_reason(&name, "invalid_name");

    // mkdir and rmdir that succeed are audited too.
    gw.sftp_ok("pat", "mkdir Made\nrmdir Made\n").await;
    for action in ["mkdir", "rmdir"] {
        let line = audited(&gw, "pat", action, "/Made", "ok").await;
        assert_eq!(line["connection"], "sp", "{line}");
        assert!(line.get("reason").is_none(), "{line}");
    }
    // A stat of a missing file is routine (clients ask before they upload): not audited.
    assert!(
        !audit(&gw)
            .iter()
            .any(|e| e["action"] == "stat" && e["reason"] == "not_found"),
        "{}",
        gw.state_file("audit.jsonl")
    );

    // The same over FTP: a refused STOR and MKD, and a successful MKD/RMD.
    let out = gw
        .python_ok(
            "reader",
            "reader-pass",
            "import io\nprint(attempt(ftp.storbinary, 'STOR ftp.txt', io.BytesIO(b'x')))\nprint(attempt(ftp.mkd, 'FtpSub'))\n",
        )
        .await;
    assert_eq!(out.matches("ERR 550").count(), 2, "{out}");
    for (action, path) in [("upload", "/ftp.txt"), ("mkdir", "/FtpSub")] {
        let line = audited(&gw, "reader", action, path, "denied").await;
        assert_eq!(line["protocol"], "ftp", "{line}");
        assert_reason(&line, "permission_denied");
    }
}

#[tokio::test]
async fn a_disabled_connection_is_unavailable_and_audited_and_transfers_are_logged() {
    let gw = Gateway::start(&[User::new("pat")
        .password("pat-pass")
        .sharepoint("/", "/Shared", ALL)])
    .await;
    gw.sim_mkdirs("Shared").await;

    // Transfers are logged at info level with who, from where, how much and how fast.
    gw.write_local("up.bin", &common::random(300_000));
    gw.sftp_ok("pat", "put up.bin sftp.bin\nget sftp.bin back.bin\n")
        .await;
    gw.python_ok(
        "pat",
        "pat-pass",
        "import io\nftp.storbinary('STOR ftp.bin', io.BytesIO(b'y' * 200000))\nprint(len(fetch('ftp.bin')))\n",
    )
    .await;
    audited(&gw, "pat", "download", "/ftp.bin", "ok").await;
    let log = std::fs::read_to_string(gw.dir.path().join("spgate.log")).unwrap();
    for (protocol, action, path, bytes) in [
        ("sftp", "upload", "/sftp.bin", 300_000),
        ("sftp", "download", "/sftp.bin", 300_000),
        ("ftp", "upload", "/ftp.bin", 200_000),
        ("ftp", "download", "/ftp.bin", 200_000),
    ] {
        let line = log
            .lines()
            .find(|l| {
                l.contains(" INFO ")
                    && l.contains(&format!("{action} completed"))
                    && l.contains(&format!("protocol={protocol} "))
                    && l.contains(&format!("path=\"{path}\""))
            })
            .unwrap_or_else(|| panic!("no {protocol} {action} line of {path}:\n{log}"));
        for field in [
            "user=pat ".to_string(),
            "peer=127.0.0.1 ".to_string(),
            format!("bytes={bytes} "),
            "seconds=".to_string(),
            "mb_per_s=".to_string(),
        ] {
            assert!(line.contains(&field), "{field} missing: {line}");
        }
    }

    // The app is revoked: the connection is disabled at its next token.
    gw.ctx
        .sim
        .control("/apps/spgate-demo/revoke", json!({}))
        .await;
    gw.ctx.sim.control("/tokens/expire", json!({})).await;
    let run = refused_by_paramiko(
        &gw,
        ("pat", "pat-pass"),
        r#"(("list", lambda: s.listdir("/")), ("download", lambda: s.open("/sftp.bin", "rb").read()))"#,
    )
    .await;
    let told = "SharePoint connection sp is unavailable (disabled by the administrator's alert)";
    assert_eq!(run.output.matches(told).count(), 2, "{run}");
    assert!(!run.output.contains("Permission denied"), "{run}");
    let list = audited(&gw, "pat", "list", "/", "failed").await;
    assert_reason(&list, "connection_disabled");
    assert!(list["error"].as_str().unwrap().contains(told), "{list}");
    // (An upload is taken into the upload queue, where it waits for the connection: see
    // tests/upload_queue.rs.)
    let download = audited(&gw, "pat", "download", "/sftp.bin", "failed").await;
    assert_reason(&download, "connection_disabled");

    // FTP keeps 451 (transient: clients try again later). (libunftp answers any failed NLST
    // with 550 "Directory not found"; LIST keeps the gateway's code.)
    let out = gw
        .python_ok(
            "pat",
            "pat-pass",
            "print(attempt(ftp.retrlines, 'LIST /'))\n",
        )
        .await;
    assert!(out.contains("ERR 451"), "{out}");
    // One LIST, one line: the lookup FTP makes first (a file? a pattern?) is not audited.
    let ftp: Vec<Value> = audit(&gw)
        .into_iter()
        .filter(|e| e["protocol"] == "ftp" && e["outcome"] == "failed")
        .collect();
    assert_eq!(ftp.len(), 1, "{}", gw.state_file("audit.jsonl"));
    assert_eq!(
        (&ftp[0]["action"], &ftp[0]["path"], &ftp[0]["reason"]),
        (&json!("list"), &json!("/"), &json!("connection_disabled")),
        "{}",
        gw.state_file("audit.jsonl")
    );

    // Every log line stays one readable line: no nested Debug dumps of the error chain.
    let log = std::fs::read_to_string(gw.dir.path().join("spgate.log")).unwrap();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        !warned.is_empty(),
        "the disabled connection is warned of:\n{log}"
    );
    for line in warned {
        assert!(
            !line.contains("Some(") && !line.contains(" {"),
            "a Debug dump: {line}"
        );
        assert_says_once(line);
    }
}

/// Asserts that no 40 characters of `line` appear in it twice: a message is never repeated.
fn assert_says_once(line: &str) {
    let chars: Vec<char> = line.chars().collect();
    for start in (0..chars.len().saturating_sub(40)).step_by(5) {
        let piece: String = chars[start..start + 40].iter().collect();
        assert_eq!(
            line.matches(&piece).count(),
            1,
            "{piece:?} repeated: {line}"
        );
    }
}
