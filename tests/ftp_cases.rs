//! The FTP front-end through the same cases as the SFTP suites, with Python's `ftplib` (plain
//! and `FTP_TLS`) and curl, checked in the simulator: every command over FTP and over FTPS,
//! files of every size around Graph's upload rules and a 100 MiB file, names that need
//! encoding, names SharePoint refuses (553, nothing appears), a read-only user (550, nothing
//! changes), `..` and absolute paths that try to leave the virtual tree, symlinks leading out of
//! a local mount, renames over a file and case-only, uploads failing at close (quota: 552) or
//! upstream (451) that leave nothing and keep the file they were replacing, dropped fragments
//! and throttling that do not fail an upload, ten sessions at once, and `mget *.csv` (NLST and
//! LIST of wildcards and of files) by tnftp and ftplib.

mod common;
mod ftp_support;

use std::os::unix::fs::symlink;

use common::Ctx;
use ftp_support::{Gateway, Security, User, assert_same, random, value};
use futures_util::future::join_all;
use serde_json::json;

const ALL: &[&str] = &["*"];

/// A line of the host's /etc/passwd that must never reach a client.
const PASSWD_MARK: &str = "root:x:0:0";

fn alice() -> User {
    User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
}

/// Every command a client sends, in a session's order. `stor` is `storbinary` that accepts a
/// missing TLS `close_notify` from the server after an upload (libunftp sends none).
const EVERY_COMMAND: &str = r#"
import socket, ssl
tls = isinstance(ftp, ftplib.FTP_TLS)
def stor(cmd, data, rest=None):
    ftp.voidcmd('TYPE I')
    with ftp.transfercmd(cmd, rest) as conn:
        conn.sendall(data)
        if tls:
            try:
                conn.unwrap()
            except ssl.SSLError:
                pass
    return ftp.voidresp()
data = bytes(range(256)) * 4000
print('PWD', ftp.pwd())
print('MKD', ftp.mkd('Every'))
print('CWD', ftp.cwd('Every'))
print('STOR', stor('STOR a.bin', data[:600000]))
print('REST-STOR', stor('STOR a.bin', data[600000:], rest=600000))
print('APPE', stor('APPE log.txt', b'one\n'))
print('APPE-AGAIN', stor('APPE log.txt', b'two\n'))
print('SIZE', ftp.size('a.bin'))
print('RETR', fetch('a.bin') == data)
print('REST-RETR', fetch('a.bin', rest=1000) == data[1000:])
ftp.af = socket.AF_INET6  # ftplib asks for EPSV instead of PASV
print('EPSV-RETR', fetch('a.bin', rest=999999) == data[999999:])
ftp.af = socket.AF_INET
print('TYPE-A', ftp.sendcmd('TYPE A'))
lines = []
ftp.retrlines('LIST', lines.append)
print('LIST', ' | '.join(lines))
print('NLST', sorted(ftp.nlst()))
print('MLSD', sorted((n, f['type'], f.get('size')) for n, f in ftp.mlsd()))
print('MLST', ftp.sendcmd('MLST a.bin').splitlines()[1].strip())
print('MLST-DIR', ftp.sendcmd('MLST /Every').splitlines()[1].strip())
print('SITE-UTIME', ftp.sendcmd('SITE UTIME 20210203040506 a.bin'))
print('MDTM', ftp.sendcmd('MDTM a.bin'))
print('SITE-MFMT', ftp.sendcmd('SITE MFMT 20220304050607 log.txt'))
print('SITE-CHMOD', ftp.sendcmd('SITE CHMOD 644 a.bin'))
print('MFMT', attempt(ftp.sendcmd, 'MFMT 20220304050607 log.txt'))
print('MKD-SUB', ftp.mkd('sub'))
print('RNFR-RNTO', ftp.rename('a.bin', 'sub/b.bin'))
print('CWD-SUB', ftp.cwd('sub'), ftp.pwd())
print('CDUP', ftp.sendcmd('CDUP'), ftp.pwd())
print('CWD-FILE', attempt(ftp.cwd, 'log.txt'))
print('RNFR-MISSING', attempt(ftp.rename, 'nope', 'nope2'))
print('DELE', ftp.delete('sub/b.bin'))
print('RMD', ftp.rmd('sub'))
print('FEAT', ftp.sendcmd('FEAT').replace('\n', '|'))
print('OPTS', ftp.sendcmd('OPTS UTF8 ON'))
print('QUIT', ftp.quit())
"#;

async fn every_command(gw: &Gateway, security: Security) {
    let run = gw
        .python_as(security, "alice", "wonderland", EVERY_COMMAND)
        .await;
    assert!(run.success, "{run}");
    let out = &run.output;
    assert_eq!(value(out, "PWD"), "/", "{out}");
    for label in ["RETR", "REST-RETR", "EPSV-RETR"] {
        assert_eq!(value(out, label), "True", "{label}: {out}");
    }
    for label in ["STOR", "REST-STOR", "APPE", "APPE-AGAIN"] {
        assert!(value(out, label).starts_with("226"), "{label}: {out}");
    }
    assert_eq!(value(out, "SIZE"), "1024000", "{out}");
    assert!(value(out, "TYPE-A").starts_with("200"), "{out}");
    let list = value(out, "LIST");
    assert!(
        list.contains("-rw-r--r--") && list.contains(" 1024000 ") && list.contains("a.bin"),
        "{out}"
    );
    assert_eq!(value(out, "NLST"), "['a.bin', 'log.txt']", "{out}");
    assert_eq!(
        value(out, "MLSD"),
        "[('a.bin', 'file', '1024000'), ('log.txt', 'file', '8')]",
        "{out}"
    );
    assert!(
        value(out, "MLST").starts_with("type=file;size=1024000;"),
        "{out}"
    );
    assert!(value(out, "MLST-DIR").starts_with("type=dir;"), "{out}");
    assert!(value(out, "SITE-UTIME").starts_with("213 "), "{out}");
    assert_eq!(value(out, "MDTM"), "213 20210203040506", "{out}");
    assert!(value(out, "SITE-MFMT").starts_with("213 "), "{out}");
    assert!(value(out, "SITE-CHMOD").starts_with("200 "), "{out}");
    // libunftp 0.24 has no MFMT command: SITE MFMT stands in.
    assert!(value(out, "MFMT").starts_with("ERR 500"), "{out}");
    assert!(value(out, "RNFR-RNTO").starts_with("250"), "{out}");
    assert!(value(out, "CWD-SUB").ends_with(" /Every/sub"), "{out}");
    assert!(value(out, "CDUP").ends_with(" /Every"), "{out}");
    assert!(value(out, "CWD-FILE").starts_with("ERR 550"), "{out}");
    assert!(value(out, "RNFR-MISSING").starts_with("ERR 550"), "{out}");
    assert!(value(out, "DELE").starts_with("250"), "{out}");
    assert!(value(out, "RMD").starts_with("250"), "{out}");
    assert!(out.contains("|211 END") || out.contains("211 END"), "{out}");
    assert!(value(out, "OPTS").starts_with("200"), "{out}");
    assert!(value(out, "QUIT").starts_with("221"), "{out}");

    assert_eq!(gw.sim_names("Every").await, ["log.txt"]);
    let item = gw.assert_stored("Every/log.txt", b"one\ntwo\n").await;
    assert_eq!(
        item["fileSystemInfo"]["lastModifiedDateTime"], "2022-03-04T05:06:07Z",
        "SITE MFMT with a path relative to the working folder: {item}"
    );
}

#[tokio::test]
async fn every_command_over_ftp() {
    let gw = Gateway::start(&[alice()]).await;
    every_command(&gw, Security::Plain).await;
}

#[tokio::test]
async fn every_command_over_ftps_with_ftp_tls() {
    let gw = Gateway::start_tls(&[alice()], "all").await;
    every_command(&gw, Security::Tls).await;

    // ftplib's own storbinary waits for the server's TLS close_notify, which libunftp 0.24 does
    // not send: it raises, although the upload went through (226 follows).
    let out = gw
        .python_as(
            Security::Tls,
            "alice",
            "wonderland",
            "try:\n    ftp.storbinary('STOR own.bin', io.BytesIO(b'x' * 1000))\n    print('STORBINARY ok')\n\
             except ssl.SSLError as e:\n    print('STORBINARY', type(e).__name__)\n\
             print('REPLY', ftp.voidresp())\n",
        )
        .await;
    assert!(out.success, "{out}");
    assert_eq!(value(&out.output, "STORBINARY"), "SSLEOFError", "{out}");
    assert!(value(&out.output, "REPLY").starts_with("226"), "{out}");
    gw.assert_stored("own.bin", &[b'x'; 1000]).await;

    // A data connection closed without the client's close_notify may have been cut short: the
    // upload fails and nothing is stored.
    let out = gw
        .python_as(
            Security::Tls,
            "alice",
            "wonderland",
            "ftp.voidcmd('TYPE I')\nconn = ftp.transfercmd('STOR cut.bin')\n\
             conn.sendall(b'y' * 100000)\nconn.close()\nprint('REPLY', attempt(ftp.voidresp))\n",
        )
        .await;
    assert!(out.success, "{out}");
    assert!(
        value(&out.output, "REPLY").starts_with("ERR 4"),
        "a truncated upload was accepted: {out}"
    );
    gw.assert_absent("cut.bin").await;
}

#[tokio::test]
async fn stor_and_retr_keep_files_of_every_size() {
    let gw = Gateway::start(&[alice()]).await;
    gw.sim_mkdirs("Transfers").await;
    let sizes = [
        0,
        1,
        327_679,
        327_680,
        327_681,
        4 * 1024 * 1024,
        4 * 1024 * 1024 + 1,
        10 * 1024 * 1024 + 1,
    ];
    let mut files = Vec::new();
    let mut script = String::from("ftp.cwd('Transfers')\n");
    std::fs::create_dir(gw.client_dir().join("back")).expect("back dir");
    for size in sizes {
        let name = format!("f{size}.bin");
        let bytes = random(size);
        gw.write_local(&name, &bytes);
        script += &format!(
            "ftp.storbinary('STOR {name}', open('{name}', 'rb'))\n\
             open('back/{name}', 'wb').write(fetch('{name}'))\n"
        );
        files.push((name, bytes));
    }
    gw.python_ok("alice", "wonderland", &script).await;
    for (name, bytes) in &files {
        gw.assert_stored(&format!("Transfers/{name}"), bytes).await;
        assert_same(&gw.read_local(&format!("back/{name}")), bytes, name);
    }
}

#[tokio::test]
async fn a_100_mib_file_goes_up_and_comes_back_with_curl() {
    let gw = Gateway::start(&[alice()]).await;
    let bytes = random(100 * 1024 * 1024);
    gw.write_local("big.bin", &bytes);
    let url = gw.ftp_url("alice", "wonderland", "big.bin");
    let started = std::time::Instant::now();
    let run = gw.curl(&["-T", "big.bin", &url]).await;
    assert!(run.success, "{run}");
    let up = started.elapsed();
    gw.assert_stored("big.bin", &bytes).await;
    let started = std::time::Instant::now();
    let run = gw.curl(&["-o", "back.bin", &url]).await;
    assert!(run.success, "{run}");
    let down = started.elapsed();
    assert_same(&gw.read_local("back.bin"), &bytes, "big.bin got back");
    eprintln!("100 MiB through spgate FTP: STOR {up:?}, RETR {down:?}");
}

#[tokio::test]
async fn names_that_need_encoding_round_trip() {
    let gw = Gateway::start(&[alice()]).await;
    let names = [
        "with space.txt",
        "hash#tag.txt",
        "100% sure.txt",
        "café é.txt",
        "日本語 ファイル.txt",
        "a+b=c&d;e@f,g'h(i)j[k]{l}$m!~.txt",
    ];
    let folder = "dir # 50% é 日本";
    let files: Vec<Vec<u8>> = (0..names.len()).map(|i| random(100 + i)).collect();
    for (i, bytes) in files.iter().enumerate() {
        gw.write_local(&format!("l{i}"), bytes);
    }
    let script = format!(
        "names = {names}\nfolder = {folder}\nftp.mkd(folder)\n\
         for i, name in enumerate(names):\n\
         \x20   ftp.storbinary('STOR ' + name, open('l%d' % i, 'rb'))\n\
         \x20   ftp.storbinary('STOR ' + folder + '/' + name, open('l%d' % i, 'rb'))\n\
         print('NLST', json.dumps(sorted(ftp.nlst(folder))))\n\
         print('MLSD', json.dumps(sorted(n for n, f in ftp.mlsd())))\n\
         lines = []\nftp.retrlines('LIST', lines.append)\nprint('LIST', json.dumps(lines))\n\
         ftp.cwd(folder)\n\
         for i, name in enumerate(names):\n\
         \x20   open('back%d' % i, 'wb').write(fetch(name))\n\
         \x20   print('SIZE', name, ftp.size(name))\n",
        names = json!(names),
        folder = json!(folder),
    );
    let out = gw
        .python_ok("alice", "wonderland", &format!("import json\n{script}"))
        .await;

    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(gw.sim_names(folder).await, want);
    let nlst: Vec<String> = serde_json::from_str(value(&out, "NLST")).expect("NLST json");
    let bare: Vec<String> = nlst
        .iter()
        .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
        .collect();
    assert_eq!(bare, want, "{out}");
    want.push(folder.to_string());
    want.sort();
    assert_eq!(gw.sim_names("").await, want);
    let mlsd: Vec<String> = serde_json::from_str(value(&out, "MLSD")).expect("MLSD json");
    assert_eq!(mlsd, want, "{out}");
    let list: Vec<String> = serde_json::from_str(value(&out, "LIST")).expect("LIST json");
    for name in &want {
        let suffix = format!(" {name}");
        assert!(
            list.iter().any(|l| l.ends_with(&suffix)),
            "{name}: {list:?}"
        );
    }
    for (i, (name, bytes)) in names.iter().zip(&files).enumerate() {
        gw.assert_stored(name, bytes).await;
        gw.assert_stored(&format!("{folder}/{name}"), bytes).await;
        assert_same(&gw.read_local(&format!("back{i}")), bytes, name);
    }
}

#[tokio::test]
async fn names_sharepoint_refuses_are_553_and_nothing_appears() {
    // With names = "refuse"; tests/names_encode.rs has the default, "encode".
    let gw = Gateway::start(&[alice().names("refuse")]).await;
    gw.sim_put("ok.txt", b"payload").await;
    let mut script = String::new();
    for name in [
        "a:b.txt",
        "CON.txt",
        "con",
        "what?.txt",
        "pipe|.txt",
        "trailing.",
        "desktop.ini",
        "~$lock.docx",
        "_vti_x.txt",
    ] {
        script += &format!(
            "print('STOR {name}', attempt(ftp.storbinary, 'STOR {name}', io.BytesIO(b'x')))\n"
        );
    }
    for name in ["a:b", "a*b", "forms"] {
        script += &format!("print('MKD {name}', attempt(ftp.mkd, '{name}'))\n");
    }
    for name in ["CON.txt", "a:b.txt"] {
        script += &format!("print('RNTO {name}', attempt(ftp.rename, 'ok.txt', '{name}'))\n");
    }
    let out = gw.python_ok("alice", "wonderland", &script).await;
    let refused: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(refused.len(), 14, "{out}");
    for line in refused {
        assert!(line.contains(" ERR 553 "), "{line}\n{out}");
    }
    assert_eq!(gw.sim_names("").await, ["ok.txt"]);
    gw.assert_stored("ok.txt", b"payload").await;
}

/// Names that are not UTF-8 (a Latin-1 client's `r\xfeport.csv`) are refused on every
/// command and store nothing; they would otherwise be stored under another name (U+FFFD).
#[tokio::test]
async fn names_that_are_not_utf8_are_refused() {
    let gw = Gateway::start(&[alice()]).await;
    gw.sim_put("ok.txt", b"payload").await;
    let script = r#"
ftp.encoding = 'latin-1'
name = 'r\xfeport.csv'
print('STOR', attempt(ftp.storbinary, 'STOR ' + name, io.BytesIO(b'x')))
print('MKD', attempt(ftp.mkd, 'd\xfe'))
print('RNTO', attempt(ftp.rename, 'ok.txt', name))
print('RETR', attempt(fetch, name))
print('DELE', attempt(ftp.delete, name))
"#;
    let out = gw.python_ok("alice", "wonderland", script).await;
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 5, "{out}");
    for line in lines {
        assert!(line.contains(" ERR 5"), "{line}\n{out}");
    }
    assert_eq!(gw.sim_names("").await, ["ok.txt"]);
}

#[tokio::test]
async fn a_read_only_user_can_retr_but_change_nothing() {
    let reader = User::new("reader")
        .password("reading")
        .sharepoint("/", "/", &["list", "read"]);
    let gw = Gateway::start(&[reader]).await;
    let bytes = random(50_000);
    gw.sim_put("Shared/report.pdf", &bytes).await;
    gw.sim_put("Shared/old.txt", b"old").await;
    gw.sim_mkdirs("Shared/Empty").await;
    let before = gw.sim_tree("").await;

    let out = gw
        .python_ok(
            "reader",
            "reading",
            "print('NLST', sorted(ftp.nlst('Shared')))\n\
             open('got.pdf', 'wb').write(fetch('Shared/report.pdf'))\n\
             new = b'new and longer than old.txt'\n\
             print('STOR-NEW', attempt(ftp.storbinary, 'STOR new.txt', io.BytesIO(new)))\n\
             print('STOR-OVER', attempt(ftp.storbinary, 'STOR Shared/old.txt', io.BytesIO(new)))\n\
             print('APPE', attempt(ftp.storbinary, 'APPE Shared/old.txt', io.BytesIO(new)))\n\
             print('REST-STOR', attempt(ftp.storbinary, 'STOR Shared/old.txt', io.BytesIO(new), rest=3))\n\
             print('MKD', attempt(ftp.mkd, 'Shared/Sub'))\n\
             print('DELE', attempt(ftp.delete, 'Shared/old.txt'))\n\
             print('RMD', attempt(ftp.rmd, 'Shared/Empty'))\n\
             print('RENAME', attempt(ftp.rename, 'Shared/old.txt', 'Shared/renamed.txt'))\n\
             print('RENAME-DIR', attempt(ftp.rename, 'Shared', 'Elsewhere'))\n\
             print('SITE-MFMT', attempt(ftp.sendcmd, 'SITE MFMT 20200101000000 /Shared/old.txt'))\n",
        )
        .await;
    assert!(value(&out, "NLST").contains("report.pdf"), "{out}");
    assert_same(&gw.read_local("got.pdf"), &bytes, "report.pdf");
    for label in [
        "STOR-NEW",
        "STOR-OVER",
        "APPE",
        "REST-STOR",
        "MKD",
        "DELE",
        "RMD",
        "RENAME",
        "RENAME-DIR",
        "SITE-MFMT",
    ] {
        assert!(value(&out, label).starts_with("ERR 550"), "{label}: {out}");
    }
    assert_eq!(gw.sim_tree("").await, before, "the library changed");
}

/// What a script's `mget *.csv` sends (`NLST` of a pattern), by the BSD command-line client
/// of Debian's `ftp` package (tnftp) and by ftplib: the folder's matching names, bare, compared
/// as SharePoint compares names; a file lists itself (`NLST`, `LIST`); no match is an empty
/// listing, a missing file still 550.
#[tokio::test]
async fn wildcards_and_files_list_as_legacy_scripts_expect() {
    let gw = Gateway::start(&[alice()]).await;
    let files: [(&str, &[u8]); 4] = [
        ("Export-1.csv", b"one"),
        ("export-2.CSV", b"two"),
        ("[draft] a.csv", b"draft"),
        ("notes.txt", b"notes"),
    ];
    for (name, bytes) in files {
        gw.sim_put(&format!("Outbound/{name}"), bytes).await;
    }
    gw.sim_mkdirs("Empty").await;
    // A name with a wildcard in it that exists is itself (stored encoded in SharePoint).
    gw.sim_put("Outbound/what\u{FF1F}.csv", b"asked").await;

    let script = gw.client_dir().join("mget.ftp");
    std::fs::write(
        &script,
        "user alice wonderland\ncd Outbound\nmget *.csv\nbye\n",
    )
    .unwrap();
    let mut tnftp = tokio::process::Command::new("sh");
    tnftp
        .arg("-c")
        .arg("exec tnftp -n -i -v -p 127.0.0.1 \"$1\" < \"$2\"")
        .arg("tnftp")
        .arg(gw.ftp_port.to_string())
        .arg(&script);
    let run = gw.run(tnftp, "tnftp").await;
    for (name, bytes) in files[..3].iter().chain(&[("what?.csv", &b"asked"[..])]) {
        let got = gw.client_dir().join(name);
        assert_eq!(
            std::fs::read(&got).ok().as_deref(),
            Some(*bytes),
            "{name}: {run}"
        );
    }
    assert!(!gw.client_dir().join("notes.txt").exists(), "{run}");

    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "ftp.cwd('Outbound')\n\
             print('NLST', sorted(ftp.nlst('*.csv')))\n\
             print('ABSOLUTE', sorted(ftp.nlst('/Outbound/EXPORT-?.csv')))\n\
             print('NONE', ftp.nlst('*.pdf'))\n\
             print('EMPTY', ftp.nlst('/Empty/*'))\n\
             print('FILE', ftp.nlst('notes.txt'))\n\
             lines = []\n\
             ftp.retrlines('LIST notes.txt', lines.append)\n\
             print('LIST', len(lines), lines[0].split()[4], lines[0].split()[-1])\n\
             lines = []\n\
             ftp.retrlines('LIST *.txt', lines.append)\n\
             print('LIST-PATTERN', len(lines), lines[0].split()[-1])\n\
             print('MISSING', attempt(ftp.nlst, 'nope.txt'))\n\
             print('LITERAL', ftp.nlst('what?.csv'))\n",
        )
        .await;
    assert_eq!(
        value(&out, "NLST"),
        "['Export-1.csv', '[draft] a.csv', 'export-2.CSV', 'what?.csv']",
        "{out}"
    );
    assert_eq!(value(&out, "LITERAL"), "['what?.csv']", "{out}");
    assert_eq!(
        value(&out, "ABSOLUTE"),
        "['Export-1.csv', 'export-2.CSV']",
        "{out}"
    );
    assert_eq!(value(&out, "NONE"), "[]", "{out}");
    assert_eq!(value(&out, "EMPTY"), "[]", "{out}");
    assert_eq!(value(&out, "FILE"), "['notes.txt']", "{out}");
    assert_eq!(value(&out, "LIST"), "1 5 notes.txt", "{out}");
    assert_eq!(value(&out, "LIST-PATTERN"), "1 notes.txt", "{out}");
    assert!(value(&out, "MISSING").starts_with("ERR 550"), "{out}");
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_stay_inside_the_virtual_tree() {
    let user = User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/Partner", ALL);
    let gw = Gateway::start(&[user]).await;
    gw.sim_put("Partner/in.txt", b"inside").await;
    gw.sim_put("secret.txt", b"outside the mounted folder")
        .await;

    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "ftp.cwd('..')\nprint('NLST-UP', sorted(ftp.nlst()))\n\
             ftp.cwd('../../..')\nprint('MLSD-UP', sorted(n for n, f in ftp.mlsd()))\n\
             for p in ['../../../../etc/passwd', '/etc/passwd', '../secret.txt', '/../secret.txt',\n\
             \x20         '/proc/self/environ', '../../etc/shadow']:\n\
             \x20   print('RETR', p, repr(attempt(fetch, p))[:60])\n\
             for p in ['/etc', '../../etc', '/..']:\n\
             \x20   print('NLST', p, attempt(ftp.nlst, p))\n\
             print('CWD-ETC', attempt(ftp.cwd, '/etc'))\n\
             print('STOR', ftp.storbinary('STOR ../../escaped.txt', io.BytesIO(b'x')))\n",
        )
        .await;
    assert!(!out.contains(PASSWD_MARK), "{out}");
    assert!(!out.contains("outside the mounted folder"), "{out}");
    assert_eq!(value(&out, "NLST-UP"), "['in.txt']", "{out}");
    assert_eq!(value(&out, "MLSD-UP"), "['in.txt']", "{out}");
    for line in out.lines().filter(|l| l.starts_with("RETR ")) {
        assert!(line.contains("'ERR 550"), "{line}\n{out}");
    }
    for line in out
        .lines()
        .filter(|l| l.starts_with("NLST /etc") || l.starts_with("NLST ../"))
    {
        assert!(line.contains("ERR 550"), "{line}\n{out}");
    }
    assert!(value(&out, "CWD-ETC").starts_with("ERR 550"), "{out}");
    // `..` at the top stays at the top: this lands inside the mounted folder.
    gw.assert_stored("Partner/escaped.txt", b"x").await;
    assert_eq!(gw.sim_names("").await, ["Partner", "secret.txt"]);
    assert_eq!(gw.sim_names("Partner").await, ["escaped.txt", "in.txt"]);
}

#[tokio::test]
async fn symlinks_leading_out_of_a_local_mount_are_refused() {
    let host = tempfile::tempdir().expect("tempdir");
    let root = host.path().join("mount");
    let outside = host.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), b"secret").expect("write");
    std::fs::write(root.join("sub/inner.txt"), b"inner").expect("write");
    symlink("/etc", root.join("etc")).expect("symlink");
    symlink("/etc/passwd", root.join("pw")).expect("symlink");
    symlink(&outside, root.join("out")).expect("symlink");
    symlink("../outside/secret.txt", root.join("s.txt")).expect("symlink");
    symlink("sub", root.join("inside")).expect("symlink");
    let user = alice().local("/local", &root, ALL);
    let gw = Gateway::start(&[user]).await;

    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "print('NLST', sorted(n.rsplit('/', 1)[-1] for n in ftp.nlst('local')))\n\
             print('INSIDE', fetch('local/inside/inner.txt'))\n\
             for p in ['local/pw', 'local/etc/passwd', 'local/out/secret.txt', 'local/s.txt']:\n\
             \x20   print('RETR', p, repr(attempt(fetch, p))[:60])\n\
             print('CWD-OUT', attempt(ftp.cwd, 'local/out'))\n\
             print('NLST-OUT', attempt(ftp.nlst, 'local/out'))\n\
             print('STOR-OUT', attempt(ftp.storbinary, 'STOR local/out/planted.txt', io.BytesIO(b'x')))\n\
             print('STOR-LINK', attempt(ftp.storbinary, 'STOR local/s.txt', io.BytesIO(b'x')))\n\
             print('MKD-OUT', attempt(ftp.mkd, 'local/out/newdir'))\n\
             print('DELE-OUT', attempt(ftp.delete, 'local/out/secret.txt'))\n\
             print('RENAME-OUT', attempt(ftp.rename, 'local/out/secret.txt', 'local/stolen.txt'))\n",
        )
        .await;
    assert!(
        !out.contains(PASSWD_MARK) && !out.contains("b'secret'"),
        "{out}"
    );
    assert_eq!(value(&out, "NLST"), "['inside', 'sub']", "{out}");
    assert_eq!(value(&out, "INSIDE"), "b'inner'", "{out}");
    for line in out.lines().filter(|l| l.starts_with("RETR ")) {
        assert!(line.contains("'ERR 550"), "{line}\n{out}");
    }
    for label in [
        "CWD-OUT",
        "NLST-OUT",
        "STOR-OUT",
        "STOR-LINK",
        "MKD-OUT",
        "DELE-OUT",
        "RENAME-OUT",
    ] {
        assert!(value(&out, label).starts_with("ERR 5"), "{label}: {out}");
    }
    let outside_names: Vec<String> = std::fs::read_dir(&outside)
        .expect("read outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outside_names, ["secret.txt"]);
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).expect("secret"),
        b"secret"
    );
    assert!(!root.join("stolen.txt").exists());
}

#[tokio::test]
async fn renames_replace_move_and_change_case() {
    let host = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&[alice().local("/local", host.path(), ALL)]).await;
    let (old, new) = (random(1000), random(2000));
    gw.sim_put("target.txt", &old).await;
    gw.sim_put("a.txt", b"case").await;
    gw.sim_put("Docs/readme.md", b"x").await;
    gw.write_local("new.bin", &new);
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            // What FileZilla and WinSCP do: upload to a temporary name, rename over the target.
            "ftp.storbinary('STOR target.txt.filepart', open('new.bin', 'rb'))\n\
             print('OVER', ftp.rename('target.txt.filepart', 'target.txt'))\n\
             print('CASE', ftp.rename('a.txt', 'A.txt'))\n\
             print('CASE-DIR', ftp.rename('Docs', 'DOCS'))\n\
             print('MOVE', ftp.rename('A.txt', 'DOCS/A.txt'))\n\
             print('ACROSS', attempt(ftp.rename, 'target.txt', 'local/target.txt'))\n",
        )
        .await;
    assert!(value(&out, "OVER").starts_with("250"), "{out}");
    // Moving between mounts is refused (the client must copy and delete).
    assert!(value(&out, "ACROSS").starts_with("ERR 502"), "{out}");
    assert_eq!(gw.sim_names("").await, ["DOCS", "target.txt"]);
    assert_eq!(gw.sim_names("DOCS").await, ["A.txt", "readme.md"]);
    gw.assert_stored("target.txt", &new).await;
    gw.assert_stored("DOCS/A.txt", b"case").await;
    assert!(
        std::fs::read_dir(host.path())
            .expect("read")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn an_upload_refused_at_close_is_552_and_leaves_nothing() {
    // A library with 4 MiB of space: the STOR is accepted and its bytes spooled, the upload
    // when the transfer ends is refused (507 quotaLimitReached).
    let gw = Gateway::start_with_quota(&[alice().commit("close")], 4 << 20).await;
    let old = random(1_500_000);
    gw.sim_put("existing.bin", &old).await;
    gw.write_local("session.bin", &random(6 * 1024 * 1024));
    gw.write_local("simple.bin", &random(3 * 1024 * 1024 + 5));
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "for local, remote in [('session.bin', 'session.bin'), ('simple.bin', 'simple.bin'),\n\
             \x20                     ('session.bin', 'existing.bin')]:\n\
             \x20   print('STOR', remote, attempt(ftp.storbinary, 'STOR ' + remote, open(local, 'rb')))\n",
        )
        .await;
    let replies: Vec<&str> = out.lines().filter(|l| l.starts_with("STOR ")).collect();
    assert_eq!(replies.len(), 3, "{out}");
    for line in replies {
        assert!(line.contains(" ERR 552"), "{line}\n{out}");
    }
    assert_eq!(gw.sim_names("").await, ["existing.bin"]);
    gw.assert_stored("existing.bin", &old).await;
}

#[tokio::test]
async fn a_replacement_failing_upstream_keeps_the_old_file() {
    let gw = Gateway::start_with(
        Ctx::new().await,
        &[alice().commit("close")],
        "max_retries = 1",
    )
    .await;
    let old = random(1000);
    gw.sim_put("existing.bin", &old).await;
    let bytes = random(5 * 1024 * 1024 + 17);
    gw.write_local("big.bin", &bytes);
    // A first session, so that the connection has its token and library before the faults.
    gw.python_ok("alice", "wonderland", "print(ftp.nlst())")
        .await;
    gw.faults(json!({"fail_5xx_every": 1})).await;
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            // Refused before the data is read, the data connection is reset under the
            // client's feet; the reply follows on the control connection.
            "def stor(cmd, f):\n\
             \x20   r = attempt(ftp.storbinary, cmd, f)\n\
             \x20   return attempt(ftp.voidresp) if r.startswith('ERR [Errno') else r\n\
             print('STOR', stor('STOR existing.bin', open('big.bin', 'rb')))\n\
             print('APPE', stor('APPE existing.bin', io.BytesIO(b'more')))\n",
        )
        .await;
    gw.clear_faults().await;
    assert!(value(&out, "STOR").starts_with("ERR 451"), "{out}");
    assert!(value(&out, "APPE").starts_with("ERR 451"), "{out}");
    assert_eq!(gw.sim_names("").await, ["existing.bin"]);
    gw.assert_stored("existing.bin", &old).await;
}

#[tokio::test]
async fn dropped_fragments_and_throttling_do_not_fail_an_upload() {
    let gw = Gateway::start_with(Ctx::new().await, &[alice()], "upload_chunk_mib = 2").await;
    let bytes = random(9 * 1024 * 1024 + 3);
    gw.write_local("big.bin", &bytes);
    gw.faults(json!({"drop_fragment_every": 2})).await;
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('STOR dropped.bin', open('big.bin', 'rb'))\n",
    )
    .await;
    gw.clear_faults().await;
    gw.assert_stored("dropped.bin", &bytes).await;

    gw.faults(json!({"throttle_every": 4, "retry_after_s": 1}))
        .await;
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('STOR throttled.bin', open('big.bin', 'rb'))\nprint(ftp.nlst())\n",
    )
    .await;
    gw.clear_faults().await;
    gw.assert_stored("throttled.bin", &bytes).await;
    let stats = gw.ctx.sim.stats().await;
    assert!(stats["throttled"].as_u64() > Some(0), "{stats}");
}

#[tokio::test]
async fn ten_sessions_at_once_all_succeed() {
    const SESSIONS: usize = 10;
    let gw = Gateway::start(&[alice()]).await;
    let files: Vec<Vec<u8>> = (0..SESSIONS).map(|i| random(500_000 * (i + 1))).collect();
    for (i, bytes) in files.iter().enumerate() {
        gw.write_local(&format!("up{i}.bin"), bytes);
    }
    let scripts: Vec<String> = (0..SESSIONS)
        .map(|i| {
            format!(
                "ftp.mkd('s{i}')\nftp.storbinary('STOR s{i}/f.bin', open('up{i}.bin', 'rb'))\n\
                 print(ftp.nlst('s{i}'))\nopen('down{i}.bin', 'wb').write(fetch('s{i}/f.bin'))\n"
            )
        })
        .collect();
    let runs = join_all(scripts.iter().map(|s| gw.python("alice", "wonderland", s))).await;
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.success)
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    for (i, bytes) in files.iter().enumerate() {
        gw.assert_stored(&format!("s{i}/f.bin"), bytes).await;
        assert_same(&gw.read_local(&format!("down{i}.bin")), bytes, "got back");
    }
}

/// B.: a client killed in the middle of a STOR (`kill -9` once 5 MiB went out) closes its
/// data connection like a finished upload. spgate commits only while the control connection
/// is open: nothing is stored, on SharePoint or on a local mount, and the audit says failed.
#[tokio::test]
async fn a_client_killed_mid_stor_stores_nothing() {
    use tokio::io::AsyncBufReadExt;
    let folder = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&[User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
        .local("/local", folder.path(), ALL)])
    .await;
    // Sends 5 MiB of a STOR, says so, and waits to be killed.
    let script = r#"
import ftplib, os, sys, time
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=60)
ftp.login("alice", "wonderland")
data = ftp.transfercmd("STOR " + sys.argv[2])
for _ in range(5):
    data.sendall(os.urandom(1 << 20))
print("sent", flush=True)
time.sleep(600)
"#;
    gw.write_local("killed.py", script.as_bytes());
    for remote in ["killed.bin", "local/killed.bin"] {
        let mut client = tokio::process::Command::new("python3")
            .arg("killed.py")
            .arg(gw.ftp_port.to_string())
            .arg(remote)
            .current_dir(gw.client_dir())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(client.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line.trim(), "sent");
        client.kill().await.unwrap(); // SIGKILL: the kernel closes both connections
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !audited_failed(&gw, remote) {
            assert!(
                std::time::Instant::now() < deadline,
                "no failed upload of /{remote} in the audit:\n{}\n{}",
                std::fs::read_to_string(gw.dir.path().join("state/audit.jsonl"))
                    .unwrap_or_default(),
                gw.log_tail()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    gw.assert_absent("killed.bin").await;
    let left: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing on the local mount: {left:?}");
    assert!(gw.log_tail().contains("control connection closed"));
}

/// Whether the audit log has a failed upload of the virtual path `/remote`.
fn audited_failed(gw: &Gateway, remote: &str) -> bool {
    let audit = std::fs::read_to_string(gw.dir.path().join("state").join("audit.jsonl"))
        .unwrap_or_default();
    audit.lines().any(|l| {
        l.contains("\"upload\"")
            && l.contains(&format!("\"/{remote}\""))
            && l.contains("\"outcome\":\"failed\"")
    })
}
