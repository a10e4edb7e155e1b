//! SFTP as client libraries use it beyond OpenSSH's batch mode, on a SharePoint mount and a
//! local mount alike: readdir past the end, read-write handles (`r+`, `w+`, `a+`) with seek
//! and readline, the APPEND flag, names that are not UTF-8 or hold control characters, OpenSSH's
//! status wording, the poisoned handle (a failed write stores nothing at close), and a write far
//! past the end (refused). Results are checked through the simulator's Graph API and on disk.

mod common;
mod sftp_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sftp_support::{Gateway, User, assert_same, random};

const ALL: &[&str] = &["*"];

/// paramiko's own behaviours; argv: port user password base (a mounted folder). Prints one
/// `ok NAME` line per check, raises (exit 1) on the first failure.
const PARAMIKO: &str = r#"
import errno, sys
import paramiko
from paramiko.sftp import (CMD_CLOSE, CMD_OPEN, CMD_OPENDIR, CMD_READDIR, CMD_HANDLE,
    CMD_WRITE, SFTP_FLAG_APPEND, SFTP_FLAG_WRITE, int64)
from paramiko.sftp_attr import SFTPAttributes

port, user, password, base = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t = paramiko.Transport(("127.0.0.1", port))
t.connect(username=user, password=password)
s = paramiko.SFTPClient.from_transport(t)

def put(path, data):
    with s.open(path, "wb") as f:
        f.write(data)

def get(path):
    with s.open(path, "rb") as f:
        return f.read()

def refused(what, call, words, code=None):
    try:
        call()
    except IOError as e:
        print(what, "->", e)
        assert words in str(e), (what, str(e))
        if code is not None:
            assert e.errno == code, (what, e.errno)
        return
    raise SystemExit(what + " was accepted")

# 1. readdir past the end answers EOF every time, on an empty folder and a full one.
s.mkdir(base + "/empty")
assert s.listdir(base + "/empty") == []
t_, msg = s._request(CMD_OPENDIR, base + "/empty")
handle = msg.get_binary()
names = []
for _ in range(5):
    try:
        t_, msg = s._request(CMD_READDIR, handle)
        names += [msg.get_text() for _ in range(msg.get_int())]
    except EOFError:
        pass
s._request(CMD_CLOSE, handle)
print("ok readdir-past-end")
s.mkdir(base + "/list")
for i in range(7):
    put("%s/list/f%d.txt" % (base, i), b"x" * i)
got = sorted(a.filename for a in s.listdir_iter(base + "/list"))
assert got == ["f%d.txt" % i for i in range(7)], got
print("ok listdir-iter")

# 2. read-write handles read what is there and what they wrote.
with s.open(base + "/wplus.txt", "w+") as f:
    f.write(b"hello world\nsecond line\n")
    f.seek(0)
    assert f.read() == b"hello world\nsecond line\n"
    f.seek(6)
    line = f.readline()  # text mode ("w+" without "b"): paramiko answers str
    assert line == "world\n", ("readline after seek", line)
print("ok w+")
put(base + "/rplus.txt", b"0123456789")
with s.open(base + "/rplus.txt", "r+") as f:
    assert f.read(4) == b"0123"
    f.seek(2)
    f.write(b"AB")
    f.seek(0)
    assert f.read() == b"01AB456789"
print("ok r+")
put(base + "/aplus.txt", b"line1\n")
with s.open(base + "/aplus.txt", "a+") as f:
    f.write(b"line2\n")
    f.seek(0)
    assert f.readline() == "line1\n"
    assert f.readline() == "line2\n"
print("ok a+")
put(base + "/read-only-use.txt", b"unchanged")
with s.open(base + "/read-only-use.txt", "r+") as f:
    assert f.read() == b"unchanged"
print("ok r+-without-writes")
refused("r+ of a missing file", lambda: s.open(base + "/missing.txt", "r+"),
        "No such file", errno.ENOENT)

# 3. APPEND: every write goes to the end, whatever offset the client sends.
put(base + "/append.log", b"first\n")
t_, msg = s._request(CMD_OPEN, base + "/append.log", SFTP_FLAG_WRITE | SFTP_FLAG_APPEND,
                     SFTPAttributes())
handle = msg.get_binary()
s._request(CMD_WRITE, handle, int64(0), b"second\n")
s._request(CMD_WRITE, handle, int64(3), b"third\n")
s._request(CMD_CLOSE, handle)
assert get(base + "/append.log") == b"first\nsecond\nthird\n", get(base + "/append.log")
print("ok append")

# 4. names that are not UTF-8 are refused and store nothing.
bad = base.encode() + b"/r\xfeport.csv"
refused("non-UTF-8 open", lambda: s.open(bad, "wb"), "UTF-8")
refused("non-UTF-8 mkdir", lambda: s.mkdir(base.encode() + b"/d\xfe"), "UTF-8")
print("ok non-utf8")

# 5. OpenSSH's wording, then the reason.
refused("stat missing", lambda: s.stat(base + "/nope.csv"), "No such file: " + base + "/nope.csv",
        errno.ENOENT)
refused("remove missing", lambda: s.remove(base + "/nope.csv"), "No such file", errno.ENOENT)
put(base + "/a.txt", b"a")
put(base + "/b.txt", b"b")
refused("rename over existing", lambda: s.rename(base + "/a.txt", base + "/b.txt"),
        "Failure: " + base + "/b.txt: already exists")
refused("mkdir existing", lambda: s.mkdir(base + "/list"), "Failure")
f = s.open(base + "/a.txt", "rb")
try:
    s._request(CMD_WRITE, f.handle, int64(0), b"x")
    raise SystemExit("a write on a read handle was accepted")
except IOError as e:
    assert "Permission denied" in str(e), str(e)
f.close()
print("ok status-texts")

# 7. names with control characters are refused; a write far past the end is refused, and the
#    file is not stored.
refused("control-character mkdir", lambda: s.mkdir(base + "/esc\x1b[31m"), "control characters")
refused("control-character open", lambda: s.open(base + "/bell\x07.txt", "wb"),
        "control characters")
f = s.open(base + "/sparse.bin", "wb")
f.write(b"head")
f.flush()
try:
    s._request(CMD_WRITE, f.handle, int64(5 * 2**30), b"x")
    raise SystemExit("a write 5 GiB past the end was accepted")
except IOError as e:
    assert "gap" in str(e), str(e)
try:
    f.close()
except IOError:
    pass
refused("the refused file", lambda: s.stat(base + "/sparse.bin"), "No such file")
print("ok far-off-write")
s.close()
t.close()
"#;

/// Runs the paramiko script against `base` as `user` (password `pw`); fails the test with its
/// output when a check fails. paramiko is installed by `.ci/run`: its absence is a failure.
async fn paramiko(gw: &Gateway, user: &str, base: &str) {
    gw.write_local("semantics.py", PARAMIKO.as_bytes());
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("semantics.py")
        .arg(gw.sftp_port.to_string())
        .args([user, "pw"])
        .arg(base);
    let run = gw.run(cmd, "paramiko-semantics").await;
    eprintln!("{}", run.output);
    assert!(run.success, "paramiko on {base}: {run}");
}

/// The files the paramiko script leaves, with their content.
const WRITTEN: &[(&str, &[u8])] = &[
    ("wplus.txt", b"hello world\nsecond line\n"),
    ("rplus.txt", b"01AB456789"),
    ("aplus.txt", b"line1\nline2\n"),
    ("read-only-use.txt", b"unchanged"),
    ("append.log", b"first\nsecond\nthird\n"),
];

/// Everything the paramiko script leaves in its folder, sorted: nothing else, no temp files,
/// no lossy names.
const LEFT: &[&str] = &[
    "a.txt",
    "aplus.txt",
    "append.log",
    "b.txt",
    "empty",
    "list",
    "read-only-use.txt",
    "rplus.txt",
    "wplus.txt",
];

#[tokio::test]
async fn paramiko_behaviours_on_a_sharepoint_mount() {
    let gw =
        Gateway::start(&[User::new("pat")
            .password("pw")
            .sharepoint("/sp", "/Semantics", ALL)])
        .await;
    gw.sim_mkdirs("Semantics").await;
    paramiko(&gw, "pat", "/sp").await;
    for (name, want) in WRITTEN {
        gw.assert_stored(&format!("Semantics/{name}"), want).await;
    }
    assert_eq!(gw.sim_names("Semantics").await, LEFT);
    assert_eq!(gw.sim_names("Semantics/empty").await, Vec::<String>::new());
}

#[tokio::test]
async fn paramiko_behaviours_on_a_local_mount() {
    let folder = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&[User::new("pat")
        .password("pw")
        .local("/local", folder.path(), ALL)])
    .await;
    paramiko(&gw, "pat", "/local").await;
    for (name, want) in WRITTEN {
        let got = std::fs::read(folder.path().join(name)).unwrap();
        assert_same(&got, want, name);
    }
    let mut names: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, LEFT);
}

/// OpenSSH's `ls -la` of an empty folder reads the listing past its end (the session used to
/// drop on local mounts).
#[tokio::test]
async fn openssh_lists_empty_folders() {
    let folder = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&[User::new("pat").sharepoint("/", "/Empty", ALL).local(
        "/local",
        folder.path(),
        ALL,
    )])
    .await;
    gw.sim_mkdirs("Empty/inner").await;
    let out = gw
        .sftp_ok(
            "pat",
            "ls -la /local\nls -la /inner\nls -la /\nls -la /local\n",
        )
        .await;
    assert!(out.contains("sftp> ls -la /local"), "{out}");
}

/// A tmpfs of `mib` MiB mounted at `path` (created), unmounted (lazily) when dropped. The
/// tests run as root in CI; a failing mount fails the test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs (needs root): {out:?}"
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A.: the spool (SharePoint) or the local mount fills up half-way through an upload. The
/// client is told (`write remote ...: Failure`), and its close stores nothing: no truncated
/// file in SharePoint or on disk, no temp file left, the audit says failed.
#[tokio::test]
async fn a_write_failing_half_way_stores_nothing() {
    let folder = tempfile::tempdir().unwrap();
    let local = Tmpfs::mount(&folder.path().join("small"), 4);
    let gw = Gateway::start_prepared(
        &[User::new("pat")
            .sharepoint("/", "/Full", ALL)
            .local("/local", &local.0, ALL)],
        // Spools of both commits: "close" (state/spool) and "queued" (state/queue).
        |dir| {
            (
                Tmpfs::mount(&dir.join("state").join("spool"), 4),
                Tmpfs::mount(&dir.join("state").join("queue"), 4),
            )
        },
    )
    .await;
    gw.sim_mkdirs("Full").await;
    let bytes = random(10 << 20);
    gw.write_local("big.bin", &bytes);
    gw.write_local("small.bin", b"fits");

    let out = gw.sftp_fails("pat", "put big.bin /big.bin\n").await;
    assert!(out.contains("Failure"), "{out}");
    gw.assert_absent("Full/big.bin").await;
    let out = gw.sftp_fails("pat", "put big.bin /local/big.bin\n").await;
    assert!(out.contains("Failure"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&local.0).unwrap().collect();
    assert!(left.is_empty(), "nothing on the local mount: {left:?}");

    // paramiko: the same through its own writes; its close is refused.
    let script = r#"
import sys, os, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="pat", pkey=paramiko.Ed25519Key.from_private_key_file("id"))
s = paramiko.SFTPClient.from_transport(t)
for path in ("/py.bin", "/local/py.bin"):
    f = s.open(path, "wb")
    try:
        for _ in range(10):
            f.write(os.urandom(1 << 20))
        f.flush()
        raise SystemExit(path + ": every write succeeded")
    except IOError as e:
        print(path, "write failed:", e)
    try:
        s._request(paramiko.sftp.CMD_CLOSE, f.handle)
        raise SystemExit(path + ": close succeeded after a failed write")
    except IOError as e:
        print(path, "close failed:", e)
    f._closed = True
print("ok")
"#;
    gw.write_local("full.py", script.as_bytes());
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("full.py").arg(gw.sftp_port.to_string());
    let run = gw.run(cmd, "paramiko-full").await;
    assert!(run.success && run.output.contains("ok"), "{run}");
    gw.assert_absent("Full/py.bin").await;
    assert!(std::fs::read_dir(&local.0).unwrap().next().is_none());

    // The space is usable again: a small file goes through.
    gw.sftp_ok(
        "pat",
        "put small.bin /small.bin\nput small.bin /local/small.bin\n",
    )
    .await;
    gw.assert_stored("Full/small.bin", b"fits").await;
    assert_same(
        &std::fs::read(local.0.join("small.bin")).unwrap(),
        b"fits",
        "local",
    );
}
