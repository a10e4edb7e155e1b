//! File operations over SFTP with OpenSSH's `sftp`, checked in the simulator: listings with
//! names and sizes, mkdir/rmdir, rename (also over an existing file and case-only), rm, chmod
//! and chown accepted as no-ops, `put -p`/`get -p` keeping modification times, names that need
//! encoding, and names SharePoint refuses.

mod common;
mod sftp_support;

use std::time::{Duration, SystemTime};

use sftp_support::{Gateway, User, assert_same, listed, long_line, random, replies};

const ALL: &[&str] = &["*"];

async fn gateway() -> Gateway {
    Gateway::start(&[User::new("alice").sharepoint("/", "/", ALL)]).await
}

#[tokio::test]
async fn ls_shows_names_and_sizes() {
    let gw = gateway().await;
    gw.sim_put("report.csv", &random(1234)).await;
    gw.sim_put("Inbox/deep/one.txt", &random(77)).await;
    gw.sim_put("Inbox/empty.txt", b"").await;

    let out = gw.sftp_ok("alice", "ls\n").await;
    assert!(listed(&out, "report.csv") && listed(&out, "Inbox"), "{out}");
    let out = gw.sftp_ok("alice", "ls -l\nls -l Inbox\n").await;

    let line = long_line(&out, "report.csv");
    assert!(line.starts_with("-rw-"), "{line}");
    assert!(line.split_whitespace().any(|f| f == "1234"), "{line}");
    assert!(long_line(&out, "Inbox").starts_with('d'), "{out}");
    assert!(long_line(&out, "deep").starts_with('d'), "{out}");
    let line = long_line(&out, "empty.txt");
    assert!(line.split_whitespace().any(|f| f == "0"), "{line}");

    // statvfs@openssh.com answers the library's quota (the simulator's default: 1 TiB).
    let out = gw.sftp_ok("alice", "df -h\n").await;
    assert!(out.contains("1.0TB"), "{out}");
}

#[tokio::test]
async fn mkdir_rmdir_rename_and_rm_change_the_library() {
    let gw = gateway().await;
    let bytes = random(4321);
    gw.write_local("a.bin", &bytes);

    gw.sftp_ok(
        "alice",
        "mkdir Outbox\nmkdir Outbox/2024\nput a.bin Outbox/2024/a.bin\n",
    )
    .await;
    let folder = gw.sim_item("Outbox/2024").await.expect("Outbox/2024");
    assert!(folder.get("folder").is_some(), "{folder}");
    gw.assert_stored("Outbox/2024/a.bin", &bytes).await;

    // Rename within a folder, then move to another folder.
    gw.sftp_ok(
        "alice",
        "rename Outbox/2024/a.bin Outbox/2024/b.bin\nrename Outbox/2024/b.bin Outbox/b.bin\n",
    )
    .await;
    assert_eq!(gw.sim_names("Outbox").await, ["2024", "b.bin"]);
    assert!(gw.sim_names("Outbox/2024").await.is_empty());
    gw.assert_stored("Outbox/b.bin", &bytes).await;

    // A folder that is not empty is not removed.
    gw.sftp_fails("alice", "rmdir Outbox\n").await;
    assert!(gw.sim_item("Outbox/b.bin").await.is_some());

    gw.sftp_ok(
        "alice",
        "rmdir Outbox/2024\nrm Outbox/b.bin\nrmdir Outbox\n",
    )
    .await;
    assert!(
        gw.sim_names("").await.is_empty(),
        "{:?}",
        gw.sim_names("").await
    );

    // Removing what does not exist fails.
    gw.sftp_fails("alice", "rm nothing.txt\n").await;
    gw.sftp_fails("alice", "rmdir nothing\n").await;
}

#[tokio::test]
async fn rename_replaces_an_existing_file() {
    let gw = gateway().await;
    let (old, new) = (random(1000), random(2000));
    gw.sim_put("target.txt", &old).await;
    gw.write_local("new.bin", &new);
    // What WinSCP and FileZilla do: upload to a temporary name, rename over the target.
    gw.sftp_ok(
        "alice",
        "put new.bin target.txt.filepart\nrename target.txt.filepart target.txt\n",
    )
    .await;
    assert_eq!(gw.sim_names("").await, ["target.txt"]);
    gw.assert_stored("target.txt", &new).await;
}

#[tokio::test]
async fn a_case_only_rename_shows_the_new_case() {
    let gw = gateway().await;
    let bytes = random(100);
    gw.sim_put("a.txt", &bytes).await;
    gw.sim_put("Docs/readme.md", b"x").await;
    gw.sftp_ok("alice", "rename a.txt A.txt\nrename Docs DOCS\n")
        .await;
    assert_eq!(gw.sim_names("").await, ["A.txt", "DOCS"]);
    gw.assert_stored("A.txt", &bytes).await;
    let out = gw.sftp_ok("alice", "ls -l\n").await;
    long_line(&out, "A.txt");
    long_line(&out, "DOCS");
}

#[tokio::test]
async fn chmod_and_chown_are_accepted() {
    let gw = gateway().await;
    let bytes = random(10);
    gw.sim_put("f.txt", &bytes).await;
    gw.sim_put("d/x.txt", &bytes).await;
    gw.sftp_ok(
        "alice",
        "chmod 600 f.txt\nchmod 700 d\nchown 0 f.txt\nchgrp 0 f.txt\n",
    )
    .await;
    gw.assert_stored("f.txt", &bytes).await;
}

#[tokio::test]
async fn put_and_get_with_p_keep_the_modification_time() {
    let gw = gateway().await;
    // Small (simple upload) and large (upload session) files.
    let files = [("small.txt", random(3000)), ("large.bin", random(5 << 20))];
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000); // 2020-09-13T12:26:40Z
    for (name, bytes) in &files {
        let path = gw.write_local(name, bytes);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(when).unwrap();
    }
    gw.sftp_ok("alice", "put -p small.txt\nput -p large.bin\n")
        .await;
    for (name, bytes) in &files {
        let item = gw.assert_stored(name, bytes).await;
        let got = item["fileSystemInfo"]["lastModifiedDateTime"]
            .as_str()
            .unwrap_or_else(|| panic!("fileSystemInfo in {item}"));
        let got = chrono::DateTime::parse_from_rfc3339(got).expect("a time");
        assert_eq!(got.timestamp(), 1_600_000_000, "{name}: {item}");
    }

    // And back: get -p sets the local time from the server's.
    std::fs::create_dir(gw.client_dir().join("back")).unwrap();
    gw.sftp_ok("alice", "get -p small.txt back/small.txt\n")
        .await;
    let meta = std::fs::metadata(gw.client_dir().join("back/small.txt")).unwrap();
    assert_eq!(meta.modified().unwrap(), when);

    // Listings show the kept time (older than six months: the year).
    let out = gw.sftp_ok("alice", "ls -l small.txt\n").await;
    assert!(long_line(&out, "small.txt").contains("2020"), "{out}");
}

#[tokio::test]
async fn names_that_need_encoding_round_trip() {
    let gw = gateway().await;
    let names = [
        "with space.txt",
        "hash#tag.txt",
        "100% sure.txt",
        "café é.txt",
        "日本語 ファイル.txt",
        "a+b=c&d;e@f,g'h(i)j[k]{l}$m!~.txt",
    ];
    let folder = "dir # 50% é 日本";
    let mut batch = format!("mkdir \"{folder}\"\n");
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let bytes = random(100 + i);
        gw.write_local(&format!("l{i}"), &bytes);
        batch += &format!("put l{i} \"{name}\"\nput l{i} \"{folder}/{name}\"\n");
        files.push((name, bytes));
    }
    batch += &format!("ls -l\nls -l \"{folder}\"\n");
    let out = gw.sftp_ok("alice", &batch).await;

    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.push(folder.to_string());
    want.sort();
    assert_eq!(gw.sim_names("").await, want);
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(gw.sim_names(folder).await, want);
    for (name, bytes) in &files {
        long_line(&out, name);
        gw.assert_stored(name, bytes).await;
        gw.assert_stored(&format!("{folder}/{name}"), bytes).await;
    }

    let mut batch = String::new();
    for (i, name) in names.iter().enumerate() {
        batch += &format!("get \"{folder}/{name}\" back{i}\n");
    }
    gw.sftp_ok("alice", &batch).await;
    for (i, (name, bytes)) in files.iter().enumerate() {
        assert_same(&gw.read_local(&format!("back{i}")), bytes, name);
    }
}

#[tokio::test]
async fn names_sharepoint_refuses_are_refused_and_nothing_appears() {
    // With names = "refuse"; tests/names_encode.rs has the default, "encode".
    let alice = User::new("alice").sharepoint("/", "/", ALL).names("refuse");
    let gw = Gateway::start(&[alice]).await;
    gw.write_local("x.txt", b"payload");
    gw.sftp_ok("alice", "put x.txt ok.txt\n").await;
    for batch in [
        "put x.txt a:b.txt\n",
        "put x.txt CON.txt\n",
        "put x.txt con\n",
        "put x.txt \"what?.txt\"\n",
        "put x.txt \"pipe|.txt\"\n",
        "put x.txt \"trailing.\"\n",
        "put x.txt desktop.ini\n",
        "put x.txt ~$lock.docx\n",
        "mkdir a:b\n",
        "mkdir \"a*b\"\n",
        "rename ok.txt CON.txt\n",
        "rename ok.txt a:b.txt\n",
    ] {
        let out = gw.sftp_fails("alice", batch).await;
        assert_eq!(gw.sim_names("").await, ["ok.txt"], "after {batch}{out}");
    }
    // OpenSSH's sftp shows only the status code; paramiko (sftp_clients) shows the message.
    let out = gw.sftp_fails("alice", "put x.txt a:b.txt\n").await;
    let errors = replies(&out).join("\n");
    assert!(
        errors.contains("a:b.txt") && errors.contains("Failure"),
        "{out}"
    );
    gw.assert_stored("ok.txt", b"payload").await;
}
