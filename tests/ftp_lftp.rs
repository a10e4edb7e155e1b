//! The FTP front-end with lftp, checked in the simulator: `mirror -R` of a tree of 50 files in
//! nested folders (four transfers in parallel, modification times carried by `SITE UTIME`, a
//! second run finding nothing to do) and `mirror` bringing it back; `get -c` and `put -c`
//! resuming (REST+RETR, REST+STOR) on SharePoint and on a local mount; file commands (`cd`,
//! `ls`, `mkdir`, `mv`, `rm`, `rmdir`, `chmod`, `quote`); and the same over FTPS.

mod common;
mod ftp_support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use ftp_support::{Gateway, Security, User, assert_same, random};

const ALL: &[&str] = &["*"];

fn alice() -> User {
    User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
}

/// A file of the test tree: path below the tree's root, content, modification time.
struct TreeFile {
    path: String,
    bytes: Vec<u8>,
    modified: SystemTime,
}

/// Writes 50 files in nested folders (names with spaces and accents; one empty, one exactly a
/// 320 KiB fragment, one above the 4 MiB simple-upload limit) under `root`, each with its own
/// modification time in 2020.
fn make_tree(root: &Path) -> Vec<TreeFile> {
    let folders = ["", "a", "a/b", "a/b/c", "d", "d/e f", "d/e f/g", "été"];
    let mut files = Vec::new();
    for i in 0..50 {
        let folder = folders[i % folders.len()];
        let name = format!("file {i:02}.bin");
        let path = if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        };
        let size = match i {
            0 => 0,
            7 => 327_680,
            13 => 5 * 1024 * 1024 + 3,
            _ => (i * 7919) % 60_000 + 1,
        };
        let bytes = random(size);
        let modified =
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + i as u64 * 3600);
        let local = root.join(&path);
        std::fs::create_dir_all(local.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&local, &bytes).expect("write tree file");
        let file = std::fs::File::options()
            .write(true)
            .open(&local)
            .expect("open tree file");
        file.set_modified(modified).expect("set mtime");
        files.push(TreeFile {
            path,
            bytes,
            modified,
        });
    }
    files
}

/// Seconds since the epoch of a Graph time.
fn epoch(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap_or_else(|e| panic!("{time:?}: {e}"))
        .timestamp()
}

fn epoch_of(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn mirror_r_and_mirror_copy_a_tree_both_ways() {
    let gw = Gateway::start(&[alice()]).await;
    let files = make_tree(&gw.client_dir().join("tree"));

    gw.lftp_ok("alice", "wonderland", "mirror -R --parallel=4 tree /Tree\n")
        .await;
    for file in &files {
        let item = gw
            .assert_stored(&format!("Tree/{}", file.path), &file.bytes)
            .await;
        let when = item["fileSystemInfo"]["lastModifiedDateTime"]
            .as_str()
            .unwrap_or_else(|| panic!("fileSystemInfo in {item}"));
        assert_eq!(
            epoch(when),
            epoch_of(file.modified),
            "{}: the time lftp set with SITE UTIME: {item}",
            file.path
        );
    }
    assert_eq!(
        gw.sim_names("Tree").await,
        [
            "a",
            "d",
            "file 00.bin",
            "file 08.bin",
            "file 16.bin",
            "file 24.bin",
            "file 32.bin",
            "file 40.bin",
            "file 48.bin",
            "été"
        ]
    );

    // A second run finds every file the same (sizes and times) and uploads nothing.
    let before = gw.sim_tree("Tree").await;
    assert_eq!(before.len(), 50 + 7, "{before:#?}");
    let out = gw
        .lftp_ok("alice", "wonderland", "mirror -R --verbose tree /Tree\n")
        .await;
    assert!(!out.contains("Transferring file"), "{out}");
    assert_eq!(gw.sim_tree("Tree").await, before, "the library changed");

    // And back: the same files, with their times.
    gw.lftp_ok("alice", "wonderland", "mirror --parallel=4 /Tree back\n")
        .await;
    for file in &files {
        let local = gw.client_dir().join("back").join(&file.path);
        let got = std::fs::read(&local).unwrap_or_else(|e| panic!("{}: {e}", file.path));
        assert_same(&got, &file.bytes, &file.path);
        let modified = std::fs::metadata(&local).and_then(|m| m.modified());
        assert_eq!(modified.ok(), Some(file.modified), "{}", file.path);
    }
}

/// The first `cut` bytes of `bytes` with one byte changed: what a resumed transfer keeps, so
/// that the result shows the transfer resumed instead of starting over.
fn marked_prefix(bytes: &[u8], cut: usize) -> Vec<u8> {
    let mut prefix = bytes[..cut].to_vec();
    prefix[cut / 2] ^= 0xff;
    prefix
}

#[tokio::test]
async fn get_c_and_put_c_resume_on_sharepoint_and_on_a_local_mount() {
    let host = tempfile::tempdir().expect("tempdir");
    let user = alice().local("/local", host.path(), ALL);
    let gw = Gateway::start(&[user]).await;

    // get -c: REST + RETR from where the local file ends.
    let bytes = random(3 * 1024 * 1024 + 999);
    gw.sim_put("remote.bin", &bytes).await;
    let cut = 1024 * 1024 + 3;
    let prefix = marked_prefix(&bytes, cut);
    gw.write_local("remote.bin", &prefix);
    gw.lftp_ok("alice", "wonderland", "get -c remote.bin -o remote.bin\n")
        .await;
    let want = [&prefix[..], &bytes[cut..]].concat();
    assert_same(&gw.read_local("remote.bin"), &want, "after get -c");
    gw.assert_stored("remote.bin", &bytes).await;

    // put -c: SIZE, then REST + STOR from where the remote file ends.
    let whole = random(5 * 1024 * 1024 + 12_345);
    let cut = 2 * 1024 * 1024 + 7;
    let prefix = marked_prefix(&whole, cut);
    gw.sim_put("data.bin", &prefix).await;
    std::fs::write(host.path().join("data.bin"), &prefix).expect("seed local");
    gw.write_local("whole.bin", &whole);
    gw.lftp_ok(
        "alice",
        "wonderland",
        "put -c whole.bin -o data.bin\nput -c whole.bin -o local/data.bin\n",
    )
    .await;
    let want = [&prefix[..], &whole[cut..]].concat();
    gw.assert_stored("data.bin", &want).await;
    assert_same(
        &std::fs::read(host.path().join("data.bin")).expect("local data.bin"),
        &want,
        "local mount after put -c",
    );
    let names: Vec<String> = std::fs::read_dir(host.path())
        .expect("read local mount")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data.bin"], "temp files left on the local mount");
}

#[tokio::test]
async fn file_commands_change_the_library() {
    let gw = Gateway::start(&[alice()]).await;
    gw.sim_put("Inbox/report.csv", &random(1234)).await;
    let bytes = random(4321);
    gw.write_local("a.bin", &bytes);
    let out = gw
        .lftp_ok(
            "alice",
            "wonderland",
            "cd Inbox\npwd\nls\nmkdir -p Out/2024\nput a.bin -o Out/2024/a.bin\n\
             mv Out/2024/a.bin Out/b.bin\nchmod 600 Out/b.bin\ncls -l Out\n\
             quote SIZE Out/b.bin\nquote MDTM report.csv\nrm report.csv\nrmdir Out/2024\n\
             cd ..\npwd\ncls\n",
        )
        .await;
    assert!(out.contains("/Inbox"), "{out}");
    assert!(out.contains("report.csv"), "{out}");
    assert!(out.contains("213 4321"), "SIZE: {out}");
    assert!(out.contains("b.bin"), "{out}");
    assert_eq!(gw.sim_names("").await, ["Inbox"]);
    assert_eq!(gw.sim_names("Inbox").await, ["Out"]);
    assert_eq!(gw.sim_names("Inbox/Out").await, ["b.bin"]);
    gw.assert_stored("Inbox/Out/b.bin", &bytes).await;

    // A failing command fails the script (and changes nothing).
    let run = gw
        .lftp_as(Security::Plain, "alice", "wonderland", "rm nothing.txt\n")
        .await;
    assert!(!run.success, "{run}");
    let run = gw
        .lftp_as(Security::Plain, "alice", "wonderland", "rmdir Inbox\n")
        .await;
    assert!(!run.success, "a folder that is not empty: {run}");
    assert_eq!(gw.sim_names("Inbox/Out").await, ["b.bin"]);
}

#[tokio::test]
async fn lftp_over_ftps() {
    let gw = Gateway::start_tls(&[alice()], "all").await;
    let files = make_tree(&gw.client_dir().join("tree"));
    let bytes = random(2 * 1024 * 1024 + 5);
    gw.write_local("big.bin", &bytes);
    let run = gw
        .lftp_as(
            Security::Tls,
            "alice",
            "wonderland",
            "put big.bin -o big.bin\nget big.bin -o back.bin\nmirror -R --parallel=2 tree /Tree\n\
             mv big.bin moved.bin\ncls -l\n",
        )
        .await;
    assert!(run.success, "lftp over FTPS: {run}");
    gw.assert_stored("moved.bin", &bytes).await;
    assert_same(&gw.read_local("back.bin"), &bytes, "FTPS get");
    for file in &files {
        gw.assert_stored(&format!("Tree/{}", file.path), &file.bytes)
            .await;
    }
    // Plain FTP is refused: FTPS is required for everyone.
    let run = gw
        .lftp_as(Security::Plain, "alice", "wonderland", "ls\n")
        .await;
    assert!(!run.success, "plain FTP should be refused: {run}");
}
