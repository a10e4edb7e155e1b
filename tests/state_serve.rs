//! `spgate serve` on its state store: SSH host keys an older spgate kept as files are imported
//! into the store on first start (the files renamed `.imported`), served from it, kept across
//! a crash and restart, and never readable in the database file.

mod common;

use common::{Gateway, User};

/// The server's host key of `kind` as paramiko sees it: `ALGORITHM BASE64`.
async fn served_key(gw: &Gateway, kind: &str) -> String {
    let script = r#"
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.get_security_options().key_types = [sys.argv[2]]
t.start_client(timeout=30)
key = t.get_remote_server_key()
print(key.get_name(), key.get_base64())
t.close()
"#;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", script, &gw.sftp_port.to_string(), kind]);
    let run = gw.run(cmd, "paramiko-hostkey").await;
    assert!(run.success, "{run}");
    run.output.trim().to_string()
}

/// The public half of the host key file `file` (its `.imported` copy once imported).
fn file_key(gw: &Gateway, file: &str) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(gw.dir.path().join("state").join(file))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut words = text.split_whitespace();
    format!("{} {}", words.next().unwrap(), words.next().unwrap())
}

#[tokio::test]
async fn host_key_files_are_imported_into_the_store_and_kept() {
    let alice = User::new("alice")
        .password("pw")
        .sharepoint("/", "/", &["*"]);
    let mut gw = Gateway::start(&[alice]).await;
    let state = gw.dir.path().join("state");
    for file in ["ssh_host_ed25519_key", "ssh_host_rsa_key"] {
        assert!(!state.join(file).exists(), "{file} left in place");
        assert!(
            state.join(format!("{file}.imported")).exists(),
            "{file} not kept"
        );
    }
    let ed25519 = file_key(&gw, "ssh_host_ed25519_key.imported");
    let rsa = file_key(&gw, "ssh_host_rsa_key.imported");
    assert_eq!(served_key(&gw, "ssh-ed25519").await, ed25519);
    assert_eq!(
        served_key(&gw, "rsa-sha2-256")
            .await
            .split_once(' ')
            .unwrap()
            .1,
        rsa.split_once(' ').unwrap().1
    );

    // The private halves are sealed in the store; the store's own key sits beside it.
    let private = std::fs::read_to_string(state.join("ssh_host_ed25519_key.imported")).unwrap();
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let mut raw = Vec::new();
    for suffix in ["", "-wal"] {
        raw.extend(std::fs::read(state.join(format!("spgate.db{suffix}"))).unwrap_or_default());
    }
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains(ed25519.split_once(' ').unwrap().1),
        "public key stored"
    );
    assert!(
        !raw.contains(&body[20..60]),
        "private host key readable in spgate.db"
    );
    assert!(state.join("secret.key").exists());

    // Nothing to import any more: the restarted server serves the stored keys.
    gw.crash_and_restart();
    assert_eq!(served_key(&gw, "ssh-ed25519").await, ed25519);
}
