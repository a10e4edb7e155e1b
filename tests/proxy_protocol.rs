//! Behind a TCP load balancer: `[sftp] proxy_protocol` takes the client's address from the
//! balancer's PROXY header, so `allow_from`, logs and the audit log see the partner, not the
//! balancer; `[ftp] proxy_protocol` (libunftp's mode) takes control and passive data
//! connections through the balancer. Python plays the balancer (it writes the headers the way
//! HAProxy does) and the client (paramiko, ftplib); results are checked through the simulator.

mod common;
mod sync_support;

use common::{Ctx, KillOnDrop, spawn_serve};
use sync_support::quote_toml;

/// The balancer's control port for FTP, as the headers name it (any number: it only has to
/// match between the configuration and the headers).
const CONTROL_PORT: u16 = 21;

struct Served {
    ctx: Ctx,
    dir: tempfile::TempDir,
    sftp_port: u16,
    ftp_port: u16,
    _child: KillOnDrop,
}

/// SFTP and FTP both expecting PROXY headers; `partner` is allowed from 203.0.113.0/24 only,
/// `scanner` from anywhere.
async fn serve() -> Served {
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    let base = 20000 + rand::random::<u16>() % 19800;
    // upload_commit "close": the tests read SharePoint as soon as the client's close returns.
    let config = format!(
        "[state]\ndir = {state}\n\n\
         [sftp]\nlisten = \"127.0.0.1:0\"\nproxy_protocol = true\n\n\
         [ftp]\nlisten = \"127.0.0.1:0\"\npassive_ports = \"{base}-{end}\"\n\
         proxy_protocol = true\nproxy_control_port = {CONTROL_PORT}\n\n\
         {connection}\n\
         [[users]]\nname = \"partner\"\npassword_hash = {hash}\nallow_from = [\"203.0.113.0/24\"]\n\
         [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/Partner\"\npermissions = \"*\"\nupload_commit = \"close\"\n\n\
         [[users]]\nname = \"scanner\"\npassword_hash = {hash}\n\
         [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\nremote = \"/Scans\"\npermissions = \"*\"\nupload_commit = \"close\"\n",
        connection = ctx.connection_toml("sp"),
        state = quote_toml(dir.path().join("state").to_str().unwrap()),
        end = base + 99,
        hash = quote_toml(&spgate::users::hash_password("partner-pass")),
    );
    ctx.mkdirs("Partner").await;
    ctx.mkdirs("Scans").await;
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("spgate.log");
    let (child, announced) = spawn_serve(&path, &log, &["sftp", "ftp"]);
    let port = |i: usize| -> u16 {
        let addr = announced[i]
            .as_deref()
            .unwrap_or_else(|| panic!("no addresses; log:\n{}", common::file_tail(&log, 4000)));
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    Served {
        sftp_port: port(0),
        ftp_port: port(1),
        ctx,
        dir,
        _child: KillOnDrop(child),
    }
}

impl Served {
    /// Runs `script` with python3 and `args`; its standard output, trimmed.
    async fn python(&self, script: &str, args: &[String]) -> String {
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "python: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("state/audit.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn log(&self) -> String {
        common::file_tail(&self.dir.path().join("spgate.log"), 20_000)
    }
}

/// argv: port, header (`v1:ADDR`, `v2:ADDR` or `none`), file name. Prints `stored` or
/// `refused <why>`.
const SFTP_CLIENT: &str = r#"
import socket, struct, sys, paramiko
port, header, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
kind, _, addr = header.partition(":")
if kind == "v1":
    s.sendall(f"PROXY TCP4 {addr} 192.0.2.10 40001 22\r\n".encode())
elif kind == "v2":
    body = socket.inet_aton(addr) + socket.inet_aton("192.0.2.10") + struct.pack("!HH", 40002, 22)
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body)
try:
    t = paramiko.Transport(s)
    t.connect(username="partner", password="partner-pass")
    sftp = paramiko.SFTPClient.from_transport(t)
    with sftp.open("/" + name, "w") as f:
        f.write("via the balancer")
    print("stored")
except Exception as e:
    print("refused", type(e).__name__)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn sftp_takes_the_client_address_from_the_proxy_header() {
    let served = serve().await;
    let s = &served;
    let port = s.sftp_port.to_string();
    let run = |header: &str, name: &str| {
        let args = vec![port.clone(), header.to_string(), name.to_string()];
        async move { s.python(SFTP_CLIENT, &args).await }
    };
    assert_eq!(run("v1:203.0.113.7", "v1.txt").await, "stored");
    assert_eq!(run("v2:203.0.113.8", "v2.txt").await, "stored");
    assert!(s.ctx.item_at("Partner/v1.txt").await.is_some());
    assert!(s.ctx.item_at("Partner/v2.txt").await.is_some());
    // allow_from is checked against the header's address, not the balancer's (127.0.0.1).
    let refused = run("v1:198.51.100.1", "outside.txt").await;
    assert!(refused.starts_with("refused"), "{refused}");
    assert!(s.ctx.item_at("Partner/outside.txt").await.is_none());
    // Without a header the connection is closed before SSH starts.
    let refused = run("none", "bare.txt").await;
    assert!(refused.starts_with("refused"), "{refused}");
    assert!(s.ctx.item_at("Partner/bare.txt").await.is_none());
    assert!(
        s.log()
            .contains("did not start with a PROXY protocol header"),
        "{}",
        s.log()
    );

    let audit = s.audit();
    for (peer, path) in [("203.0.113.7", "/v1.txt"), ("203.0.113.8", "/v2.txt")] {
        assert!(
            audit
                .iter()
                .any(|l| l["action"] == "upload" && l["path"] == path && l["peer"] == peer),
            "{audit:?}"
        );
    }
    assert!(
        audit.iter().any(|l| l["action"] == "login"
            && l["peer"] == "198.51.100.1"
            && l["outcome"] == "failed"),
        "{audit:?}"
    );
    assert!(!audit.iter().any(|l| l["peer"] == "127.0.0.1"), "{audit:?}");
}

/// argv: port, control port, client address, user, file name. The control connection and the
/// passive data connection both go to spgate's one port, each with a v1 header whose
/// destination port tells them apart (as HAProxy forwards them). Prints the final reply, or
/// `refused <reply>`.
const FTP_CLIENT: &str = r#"
import ftplib, socket, sys
port, control, addr, user, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def via_balancer(dest_port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"PROXY TCP4 {addr} 192.0.2.10 40003 {dest_port}\r\n".encode())
    return s
ftp = ftplib.FTP()
ftp.sock = via_balancer(control)
ftp.af = ftp.sock.family
ftp.file = ftp.sock.makefile("r", encoding="utf-8")
ftp.welcome = ftp.getresp()
try:
    ftp.login(user, "partner-pass")
except ftplib.error_perm as e:
    print("refused", e)
    sys.exit(0)
_, passive = ftplib.parse227(ftp.sendcmd("PASV"))
data = via_balancer(passive)
ftp.putcmd("STOR " + name)
ftp.getresp()
data.sendall(b"through the balancer over FTP")
data.close()
print(ftp.voidresp())
ftp.quit()
"#;

/// libunftp 0.24 hands spgate's authenticator the balancer's address even in PROXY mode (the
/// header's address reaches only libunftp's own log), so FTP behind a balancer cannot apply
/// `allow_from`: a restricted user is refused (failing closed), an unrestricted one works.
#[tokio::test(flavor = "multi_thread")]
async fn ftp_control_and_passive_data_go_through_the_balancer() {
    let served = serve().await;
    let s = &served;
    let run = |user: &str, name: &str| {
        let args = vec![
            s.ftp_port.to_string(),
            CONTROL_PORT.to_string(),
            "203.0.113.9".to_string(),
            user.to_string(),
            name.to_string(),
        ];
        async move { s.python(FTP_CLIENT, &args).await }
    };
    let stored = run("scanner", "ftp.txt").await;
    assert!(stored.starts_with("226"), "{stored}\n{}", s.log());
    let item = s.ctx.item_at("Scans/ftp.txt").await.expect("stored");
    assert_eq!(item["size"], 29);
    let refused = run("partner", "outside.txt").await;
    assert!(refused.starts_with("refused 530"), "{refused}");
    assert!(s.ctx.item_at("Partner/outside.txt").await.is_none());
    // A connection that does not start with a header is closed unanswered.
    let mut bare = std::net::TcpStream::connect(("127.0.0.1", s.ftp_port)).unwrap();
    bare.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    std::io::Write::write_all(&mut bare, b"USER scanner\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut bare, &mut answer).expect("closed, not timed out");
    assert_eq!(answer, "");
}
