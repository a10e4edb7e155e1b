//! Who may do what, and where paths can lead: a read-only user, `..` and absolute paths that
//! try to leave the virtual tree, symlinks in a local mount pointing outside it, and a local
//! mount doing its job (files on disk, no temp files left behind).

mod common;
mod sftp_support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sftp_support::{Gateway, User, assert_same, find_long_line, listed, long_line, random};

const ALL: &[&str] = &["*"];

/// A line of the host's /etc/passwd that must never reach a client.
const PASSWD_MARK: &str = "root:x:0:0";

/// Creates folder `name` in `parent` and answers its path.
fn folder(parent: &Path, name: &str) -> PathBuf {
    let path = parent.join(name);
    std::fs::create_dir(&path).unwrap();
    path
}

/// Every name in host folder `dir`.
fn disk_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_read_only_user_can_get_but_change_nothing() {
    let gw = Gateway::start(&[User::new("reader").sharepoint("/", "/", &["list", "read"])]).await;
    let bytes = random(50_000);
    gw.sim_put("Shared/report.pdf", &bytes).await;
    gw.sim_put("Shared/old.txt", b"old").await;
    gw.sim_mkdirs("Shared/Empty").await;
    let before = gw.sim_tree("").await;

    let out = gw
        .sftp_ok("reader", "ls -l Shared\nget Shared/report.pdf got.pdf\n")
        .await;
    long_line(&out, "report.pdf");
    assert_same(&gw.read_local("got.pdf"), &bytes, "report.pdf");

    gw.write_local("new.txt", b"new and longer than old.txt");
    for batch in [
        "put new.txt new.txt\n",
        "put new.txt Shared/old.txt\n",
        "reput new.txt Shared/old.txt\n",
        "mkdir Shared/Sub\n",
        "rm Shared/old.txt\n",
        "rmdir Shared/Empty\n",
        "rename Shared/old.txt Shared/renamed.txt\n",
        "rename Shared Elsewhere\n",
        "chmod 600 Shared/old.txt\n",
    ] {
        let run = gw.sftp("reader", batch).await;
        // chmod is a no-op anyway; everything else must be refused.
        if !batch.starts_with("chmod") {
            assert!(!run.success, "should be refused: {run}");
            assert!(
                run.output.contains("Permission denied"),
                "refused as a permission: {run}"
            );
        }
    }
    assert_eq!(gw.sim_tree("").await, before, "the library changed");
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_stay_inside_the_virtual_tree() {
    let gw = Gateway::start(&[User::new("alice").sharepoint("/", "/Partner", ALL)]).await;
    gw.sim_put("Partner/in.txt", b"inside").await;
    gw.sim_put("secret.txt", b"outside the mounted folder")
        .await;

    let out = gw
        .sftp_ok("alice", "cd ..\npwd\ncd ../../..\npwd\nls\n")
        .await;
    assert_eq!(
        out.matches("Remote working directory: /\n").count(),
        2,
        "{out}"
    );
    assert!(
        listed(&out, "in.txt") && !out.contains("secret.txt"),
        "{out}"
    );

    for batch in [
        "get ../../../../etc/passwd\n",
        "get /etc/passwd\n",
        "get ../secret.txt\n",
        "get /../secret.txt\n",
        "cd ..\nget secret.txt\n",
        "ls /etc\n",
        "ls ../../etc\n",
        "get /proc/self/environ\n",
    ] {
        let out = gw.sftp_fails("alice", batch).await;
        assert!(!out.contains(PASSWD_MARK), "{out}");
    }
    // `..` at the top stays at the top: this lands inside the mounted folder.
    gw.write_local("x.txt", b"x");
    gw.sftp_ok("alice", "put x.txt ../../escaped.txt\n").await;
    gw.assert_stored("Partner/escaped.txt", b"x").await;
    assert!(!gw.client_dir().join("passwd").exists());
    assert!(!gw.client_dir().join("secret.txt").exists());
    assert!(!gw.client_dir().join("environ").exists());
    assert_eq!(gw.sim_names("").await, ["Partner", "secret.txt"]);
    assert_eq!(gw.sim_names("Partner").await, ["escaped.txt", "in.txt"]);
}

#[tokio::test]
async fn a_local_root_mount_cannot_be_left() {
    let host = tempfile::tempdir().unwrap();
    let root = folder(host.path(), "root");
    let gw = Gateway::start(&[User::new("alice").local("/", &root, ALL)]).await;
    std::fs::write(root.join("in.txt"), b"inside").unwrap();
    for batch in [
        "get ../../../../etc/passwd\n",
        "get /etc/passwd\n",
        "cd ../../../etc\nget passwd\n",
        "ls /etc\n",
        "get /proc/self/environ\n",
    ] {
        let out = gw.sftp_fails("alice", batch).await;
        assert!(!out.contains(PASSWD_MARK), "{out}");
    }
    assert!(!gw.client_dir().join("passwd").exists());
    let out = gw.sftp_ok("alice", "cd ..\nls\nget in.txt\n").await;
    assert!(listed(&out, "in.txt"), "{out}");
    assert_eq!(gw.read_local("in.txt"), b"inside");
}

#[tokio::test]
async fn symlinks_leading_out_of_a_local_mount_are_refused() {
    let host = tempfile::tempdir().unwrap();
    let root = folder(host.path(), "mount");
    let outside = folder(host.path(), "outside");
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/inner.txt"), b"inner").unwrap();
    symlink("/etc", root.join("etc")).unwrap();
    symlink("/etc/passwd", root.join("pw")).unwrap();
    symlink(&outside, root.join("out")).unwrap();
    symlink("../outside", root.join("up")).unwrap();
    symlink("../outside/secret.txt", root.join("s.txt")).unwrap();
    symlink("sub", root.join("inside")).unwrap();
    symlink("sub/inner.txt", root.join("inner-link.txt")).unwrap();
    let gw = Gateway::start(&[User::new("alice")
        .sharepoint("/", "/", ALL)
        .local("/local", &root, ALL)])
    .await;

    // Listings leave the escaping links out; links that stay inside work.
    let out = gw
        .sftp_ok(
            "alice",
            "ls -l local\nget local/inside/inner.txt a.txt\nget local/inner-link.txt b.txt\n",
        )
        .await;
    for hidden in ["etc", "pw", "out", "up", "s.txt"] {
        let line = find_long_line(&out, hidden);
        assert!(line.is_none(), "{hidden} listed: {line:?}");
    }
    long_line(&out, "inside");
    long_line(&out, "sub");
    assert_eq!(gw.read_local("a.txt"), b"inner");
    assert_eq!(gw.read_local("b.txt"), b"inner");

    gw.write_local("x.txt", b"x");
    for batch in [
        "get local/pw\n",
        "get local/etc/passwd\n",
        "get local/out/secret.txt\n",
        "get local/up/secret.txt\n",
        "get local/s.txt\n",
        "ls local/etc\n",
        "ls local/out\n",
        "cd local/out\n",
        "put x.txt local/out/planted.txt\n",
        "put x.txt local/s.txt\n",
        "mkdir local/out/newdir\n",
        "rm local/out/secret.txt\n",
        "rename local/out/secret.txt local/stolen.txt\n",
    ] {
        let out = gw.sftp_fails("alice", batch).await;
        assert!(
            !out.contains(PASSWD_MARK) && !out.contains("secret\n"),
            "{out}"
        );
    }
    assert_eq!(disk_names(&outside), ["secret.txt"]);
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
    for leaked in ["pw", "passwd", "secret.txt", "s.txt"] {
        assert!(
            !gw.client_dir().join(leaked).exists(),
            "{leaked} was downloaded"
        );
    }
    assert!(!root.join("stolen.txt").exists());
}

#[tokio::test]
async fn a_local_mount_keeps_files_on_disk() {
    let host = tempfile::tempdir().unwrap();
    let dir = folder(host.path(), "local");
    let gw = Gateway::start(&[User::new("alice")
        .sharepoint("/", "/", ALL)
        .local("/local", &dir, ALL)])
    .await;
    let small = random(1000);
    let big = random(6 * 1024 * 1024 + 5);
    gw.write_local("small.bin", &small);
    gw.write_local("big.bin", &big);
    let out = gw
        .sftp_ok(
            "alice",
            "put small.bin local/small.bin\nmkdir local/sub\nput big.bin local/sub/big.bin\n\
             ls -l local\nls -l local/sub\nget local/sub/big.bin back.bin\n",
        )
        .await;
    let line = long_line(&out, "small.bin");
    assert!(line.split_whitespace().any(|w| w == "1000"), "{line}");
    let line = long_line(&out, "big.bin");
    let size = big.len().to_string();
    assert!(line.split_whitespace().any(|w| w == size), "{line}");
    assert_eq!(std::fs::read(dir.join("small.bin")).unwrap(), small);
    assert_same(
        &std::fs::read(dir.join("sub/big.bin")).unwrap(),
        &big,
        "on disk",
    );
    assert_same(&gw.read_local("back.bin"), &big, "got back");
    assert_eq!(disk_names(&dir), ["small.bin", "sub"], "temp files left");
    assert_eq!(disk_names(&dir.join("sub")), ["big.bin"], "temp files left");
    // Nothing went to SharePoint.
    assert!(gw.sim_names("").await.is_empty());

    // Resume both ways, rename, replace, remove.
    let cut = 1024 * 1024;
    std::fs::write(dir.join("part.bin"), &big[..cut]).unwrap();
    gw.write_local("partial.bin", &big[..cut]);
    gw.sftp_ok(
        "alice",
        "reput big.bin local/part.bin\nreget local/sub/big.bin partial.bin\n\
         rename local/small.bin local/renamed.bin\nput small.bin local/part2.bin\n\
         rename local/part2.bin local/renamed.bin\nrm local/sub/big.bin\nrmdir local/sub\n",
    )
    .await;
    assert_same(&std::fs::read(dir.join("part.bin")).unwrap(), &big, "reput");
    assert_same(&gw.read_local("partial.bin"), &big, "reget");
    assert_eq!(disk_names(&dir), ["part.bin", "renamed.bin"]);
    assert_eq!(std::fs::read(dir.join("renamed.bin")).unwrap(), small);

    // Moving between mounts is refused, and nothing is lost.
    gw.sftp_fails("alice", "rename local/renamed.bin renamed.bin\n")
        .await;
    assert!(dir.join("renamed.bin").exists());
    assert!(gw.sim_names("").await.is_empty());
}

/// Leaves a temp file as a crashed upload does, last written `age` ago; answers its path.
fn leftover(dir: &Path, name: &str, age: std::time::Duration) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
    path
}

#[tokio::test]
async fn serve_sweeps_upload_leftovers_from_local_mounts() {
    let host = tempfile::tempdir().unwrap();
    let deep = folder(host.path(), "in");
    let day = std::time::Duration::from_secs(24 * 3600);
    let old = leftover(
        &deep,
        ".spgate.crashed.bin.00000000000000aa.partial",
        2 * day,
    );
    let young = leftover(
        &deep,
        ".spgate.writing.bin.00000000000000bb.partial",
        day / 24,
    );
    let kept = leftover(&deep, "old-but-ordinary.bin", 2 * day);
    let gw = Gateway::start(&[User::new("alice").local("/", host.path(), ALL)]).await;
    // The sweep runs at start, beside the listeners: wait (bounded) for it to get there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while old.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !old.exists(),
        "the day-old leftover is removed:\n{}",
        gw.log_tail()
    );
    assert!(
        young.exists(),
        "a temp file written an hour ago may be in use"
    );
    assert!(kept.exists(), "ordinary files are never touched");
    assert!(gw.log_tail().contains("removed a leftover temporary file"));
}

#[tokio::test]
async fn connections_that_do_not_log_in_are_closed_after_the_grace_time() {
    let users = [User::new("alice")
        .password("alice-pw")
        .sharepoint("/", "/", ALL)];
    let gw = Gateway::start_with_sftp(&users, "login_grace_time = \"2s\"").await;
    let timeout = std::time::Duration::from_secs(30);
    // One says nothing at all; one sends its SSH version and then stalls before logging in.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", gw.sftp_port)).unwrap();
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", gw.sftp_port)).unwrap();
    std::io::Write::write_all(&mut stalled, b"SSH-2.0-stalling_client\r\n").unwrap();
    let started = std::time::Instant::now();
    for stream in [&mut silent, &mut stalled] {
        stream.set_read_timeout(Some(timeout)).unwrap();
        let mut seen = Vec::new();
        // Read to the end: the server closes it (a timeout here would be an error).
        std::io::Read::read_to_end(stream, &mut seen).expect("closed by the server");
    }
    assert!(started.elapsed() < timeout);
    // A client that logs in stays connected past the grace time.
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args([
        "-c",
        "import paramiko, sys, time\n\
         t = paramiko.Transport(('127.0.0.1', int(sys.argv[1])))\n\
         t.connect(username='alice', password='alice-pw')\n\
         s = paramiko.SFTPClient.from_transport(t)\n\
         time.sleep(3)\n\
         print(s.listdir('/'))\n",
        &gw.sftp_port.to_string(),
    ]);
    let run = gw.run(cmd, "paramiko past the grace time").await;
    assert!(run.success, "{run}");
    assert!(
        gw.log_tail().contains("no login within the grace time"),
        "{}",
        gw.log_tail()
    );
}
