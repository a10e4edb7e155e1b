//! One user, two protocols, one `spgate serve`: the same tree (names, folders, sizes) over FTP
//! (ftplib's MLSD) and SFTP (OpenSSH `sftp`'s `ls -l`) across a SharePoint mount and a local
//! mount, modification times set over one protocol read back over the other, and every change
//! made over one protocol seen at once over the other (the metadata cache is the gateway's, not
//! a protocol's).

mod common;
mod ftp_support;
mod sftp_support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use common::{Gateway, User, assert_same, random};
use ftp_support::value;
use sftp_support::listed;

const ALL: &[&str] = &["*"];

/// `(path, is_dir, size)` of every entry below a folder; sizes of folders are not compared.
type Tree = BTreeSet<(String, bool, u64)>;

/// Every entry below `/` over FTP: a recursive MLSD.
async fn ftp_tree(gw: &Gateway) -> Tree {
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "import json\n\
             def walk(folder):\n\
             \x20   for name, facts in ftp.mlsd(folder):\n\
             \x20       path = folder.rstrip('/') + '/' + name\n\
             \x20       is_dir = facts['type'] == 'dir'\n\
             \x20       print('ENTRY', json.dumps([path, is_dir, 0 if is_dir else int(facts['size'])]))\n\
             \x20       if is_dir:\n\
             \x20           walk(path)\n\
             walk('/')\n",
        )
        .await;
    out.lines()
        .filter_map(|l| l.strip_prefix("ENTRY "))
        .map(|json| serde_json::from_str(json).expect("an ENTRY line"))
        .collect()
}

/// The kind, size and name of an `ls -l` line (`-rw-r--r-- 1 owner group SIZE Mon DD HH:MM
/// name`; names may hold spaces).
fn parse_long_line(line: &str) -> Option<(bool, u64, &str)> {
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..8 {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ')?;
    let is_dir = fields[0].starts_with('d');
    let size = fields[4].parse().ok()?;
    Some((is_dir, if is_dir { 0 } else { size }, name))
}

/// Every entry below `/` over SFTP: `ls -l` of each folder, a level per `sftp` run.
async fn sftp_tree(gw: &Gateway) -> Tree {
    let mut tree = Tree::new();
    let mut level = vec![String::from("/")];
    while !level.is_empty() {
        let batch: String = level.iter().map(|f| format!("ls -l \"{f}\"\n")).collect();
        let out = gw.sftp_ok("alice", &batch).await;
        let mut next = Vec::new();
        let mut folder = String::new();
        for line in out.lines() {
            if let Some(listed) = line.strip_prefix("sftp> ls -l ") {
                folder = listed.trim_matches('"').trim_end_matches('/').to_string();
                continue;
            }
            let Some((is_dir, size, name)) = parse_long_line(line) else {
                continue;
            };
            let path = format!("{folder}/{name}");
            if is_dir {
                next.push(path.clone());
            }
            tree.insert((path, is_dir, size));
        }
        level = next;
    }
    tree
}

#[tokio::test]
async fn ftp_and_sftp_show_the_same_tree() {
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(host.path().join("sub")).expect("mkdir");
    std::fs::write(host.path().join("a.txt"), b"local a").expect("write");
    std::fs::write(host.path().join("sub/b b.bin"), random(3000)).expect("write");
    let user = User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
        .local("/local", host.path(), ALL);
    let gw = Gateway::start(&[user]).await;
    gw.sim_put("Reports/2024/q1.csv", &random(1234)).await;
    gw.sim_put("Reports/readme.txt", &random(77)).await;
    gw.sim_put("empty.txt", b"").await;
    gw.sim_put("café é.txt", &random(5)).await;
    gw.sim_mkdirs("Inbox").await;

    // An upload over each protocol, with a modification time set over each.
    let (by_ftp, by_sftp) = (random(5 * 1024 * 1024 + 1), random(4321));
    gw.write_local("by_ftp.bin", &by_ftp);
    let path = gw.write_local("by_sftp.bin", &by_sftp);
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000); // 2020-09-13T12:26:40Z
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('STOR Reports/by_ftp.bin', open('by_ftp.bin', 'rb'))\n\
         print(ftp.sendcmd('SITE MFMT 20190102030405 /Reports/by_ftp.bin'))\n",
    )
    .await;
    gw.sftp_ok(
        "alice",
        "put -p by_sftp.bin Reports/by_sftp.bin\nget -p Reports/by_ftp.bin back_ftp.bin\n",
    )
    .await;
    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "print('MDTM', ftp.sendcmd('MDTM Reports/by_sftp.bin'))\n",
        )
        .await;
    assert_eq!(value(&out, "MDTM"), "213 20200913122640", "{out}");
    let back = std::fs::metadata(gw.client_dir().join("back_ftp.bin"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(
        back,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_546_398_245), // 2019-01-02T03:04:05Z
        "the time set with SITE MFMT, read over SFTP"
    );
    assert_same(
        &gw.read_local("back_ftp.bin"),
        &by_ftp,
        "FTP upload over SFTP",
    );

    let over_ftp = ftp_tree(&gw).await;
    let over_sftp = sftp_tree(&gw).await;
    assert_eq!(over_ftp, over_sftp, "FTP and SFTP disagree");
    let want: Tree = [
        ("/Inbox", true, 0),
        ("/Reports", true, 0),
        ("/Reports/2024", true, 0),
        ("/Reports/2024/q1.csv", false, 1234),
        ("/Reports/by_ftp.bin", false, by_ftp.len() as u64),
        ("/Reports/by_sftp.bin", false, 4321),
        ("/Reports/readme.txt", false, 77),
        ("/café é.txt", false, 5),
        ("/empty.txt", false, 0),
        ("/local", true, 0),
        ("/local/a.txt", false, 7),
        ("/local/sub", true, 0),
        ("/local/sub/b b.bin", false, 3000),
    ]
    .into_iter()
    .map(|(p, d, s)| (p.to_string(), d, s))
    .collect();
    assert_eq!(over_ftp, want);
}

#[tokio::test]
async fn a_change_over_one_protocol_shows_at_once_in_the_other() {
    let user = User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL);
    let gw = Gateway::start(&[user]).await;
    gw.sim_put("seed.txt", b"seed").await;
    // Both protocols list first, so that whatever they cached is warm.
    gw.sftp_ok("alice", "ls -l\n").await;
    gw.python_ok("alice", "wonderland", "print(list(ftp.mlsd()))\n")
        .await;

    let bytes = random(10_000);
    gw.write_local("x.bin", &bytes);
    gw.python_ok(
        "alice",
        "wonderland",
        "ftp.storbinary('STOR x.bin', open('x.bin', 'rb'))\n",
    )
    .await;
    let out = gw
        .sftp_ok(
            "alice",
            "ls\nrename x.bin y.bin\nmkdir d\nput x.bin d/z.bin\n",
        )
        .await;
    assert!(listed(&out, "x.bin"), "an FTP upload, over SFTP: {out}");

    let out = gw
        .python_ok(
            "alice",
            "wonderland",
            "print('NLST', sorted(ftp.nlst()))\n\
             print('OLD', attempt(ftp.size, 'x.bin'))\n\
             print('NEW', ftp.size('y.bin'))\n\
             print('MLSD', sorted((n, f['size']) for n, f in ftp.mlsd('d')))\n\
             open('y.bin', 'wb').write(fetch('y.bin'))\n\
             print('DELE', ftp.delete('seed.txt'))\n",
        )
        .await;
    assert_eq!(value(&out, "NLST"), "['d', 'seed.txt', 'y.bin']", "{out}");
    assert!(value(&out, "OLD").starts_with("ERR 550"), "{out}");
    assert_eq!(value(&out, "NEW"), "10000", "{out}");
    assert_eq!(value(&out, "MLSD"), "[('z.bin', '10000')]", "{out}");
    assert_same(
        &gw.read_local("y.bin"),
        &bytes,
        "renamed over SFTP, read over FTP",
    );

    let run = gw.sftp("alice", "ls\nget seed.txt\n").await;
    assert!(
        !run.success,
        "deleted over FTP, still readable over SFTP: {run}"
    );
    assert!(!listed(&run.output, "seed.txt"), "{run}");
    assert_eq!(gw.sim_names("").await, ["d", "y.bin"]);
}
