use std::os::unix::fs::symlink;
use std::path::Path;

use bytes::Bytes;
use chrono::TimeZone;
use futures_util::TryStreamExt;

use super::*;

fn setup() -> (tempfile::TempDir, Local) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let local = Local::new(tmp.path().join("root")).unwrap();
    (tmp, local)
}

/// Every name in `dir` on disk, temp files included.
fn on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn names(local: &Local, path: &str) -> Vec<String> {
    let pages: Vec<Vec<Entry>> = local.list(path).await.unwrap().try_collect().await.unwrap();
    let mut names: Vec<String> = pages.into_iter().flatten().map(|e| e.name).collect();
    names.sort();
    names
}

async fn put(local: &Local, path: &str, mode: WriteMode, data: &[u8]) -> Result<Entry> {
    let mut w = local.open_write(path, mode).await?;
    w.write_at(0, Bytes::copy_from_slice(data)).await?;
    w.close().await
}

async fn read_all(local: &Local, path: &str) -> Result<Vec<u8>> {
    let mut r = local.open_read(path).await?;
    Ok(r.read_at(0, 1 << 20).await?.to_vec())
}

fn error<T>(r: Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn kind<T>(r: Result<T>) -> ErrorKind {
    error(r).kind
}

#[tokio::test]
async fn upload_is_visible_only_after_close() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    std::fs::write(root.join("a.txt"), b"old").unwrap();
    let mut w = local
        .open_write("/a.txt", WriteMode::Truncate)
        .await
        .unwrap();
    w.write_at(3, Bytes::from_static(b"def")).await.unwrap();
    w.write_at(0, Bytes::from_static(b"abc")).await.unwrap();
    assert_eq!(w.size(), 6);
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"old");
    assert_eq!(names(&local, "/").await, ["a.txt"]);
    assert_eq!(
        on_disk(&root).len(),
        2,
        "the temp file sits beside the target"
    );
    let at = Utc.with_ymd_and_hms(2020, 5, 6, 7, 8, 9).unwrap();
    w.set_modified(at);
    let entry = w.close().await.unwrap();
    assert_eq!(
        (
            entry.name.as_str(),
            entry.size,
            entry.is_dir,
            entry.modified
        ),
        ("a.txt", 6, false, at)
    );
    assert_eq!(on_disk(&root), ["a.txt"]);
    assert_eq!(read_all(&local, "/a.txt").await.unwrap(), b"abcdef");
    assert_eq!(local.stat("/a.txt").await.unwrap().modified, at);
}

#[tokio::test]
async fn abort_and_drop_leave_nothing() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    let mut w = local
        .open_write("/a.txt", WriteMode::Truncate)
        .await
        .unwrap();
    w.write_at(0, Bytes::from_static(b"x")).await.unwrap();
    w.abort().await;
    assert!(on_disk(&root).is_empty());
    let mut w = local
        .open_write("/b.txt", WriteMode::CreateNew)
        .await
        .unwrap();
    w.write_at(0, Bytes::from_static(b"x")).await.unwrap();
    drop(w);
    assert!(on_disk(&root).is_empty());
}

#[tokio::test]
async fn create_new_never_replaces() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    std::fs::write(root.join("a.txt"), b"old").unwrap();
    assert_eq!(
        kind(local.open_write("/a.txt", WriteMode::CreateNew).await),
        ErrorKind::AlreadyExists
    );
    let mut w = local
        .open_write("/b.txt", WriteMode::CreateNew)
        .await
        .unwrap();
    w.write_at(0, Bytes::from_static(b"mine")).await.unwrap();
    std::fs::write(root.join("b.txt"), b"theirs").unwrap();
    assert_eq!(kind(w.close().await), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(root.join("b.txt")).unwrap(), b"theirs");
    assert_eq!(on_disk(&root), ["a.txt", "b.txt"]);
    put(&local, "/c.txt", WriteMode::CreateNew, b"new")
        .await
        .unwrap();
    assert_eq!(read_all(&local, "/c.txt").await.unwrap(), b"new");
}

#[tokio::test]
async fn keep_writes_in_place() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    std::fs::write(root.join("a.txt"), b"hello").unwrap();
    let mut w = local.open_write("/a.txt", WriteMode::Keep).await.unwrap();
    assert_eq!(w.size(), 5);
    w.write_at(5, Bytes::from_static(b" world")).await.unwrap();
    w.write_at(0, Bytes::from_static(b"J")).await.unwrap();
    assert_eq!(w.size(), 11);
    assert_eq!(w.close().await.unwrap().size, 11);
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"Jello world");
    let mut w = local.open_write("/new.txt", WriteMode::Keep).await.unwrap();
    w.write_at(2, Bytes::from_static(b"z")).await.unwrap();
    w.abort().await;
    assert_eq!(std::fs::read(root.join("new.txt")).unwrap(), b"\0\0z");
    assert_eq!(
        kind(local.open_write("/", WriteMode::Keep).await),
        ErrorKind::PermissionDenied
    );
}

#[tokio::test]
async fn listing_hides_temp_files_and_pages() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    for i in 0..2500 {
        std::fs::write(root.join(format!("f{i}")), b"").unwrap();
    }
    std::fs::write(root.join(".spgate.x.1234.partial"), b"").unwrap();
    let _open = local.open_write("/f1", WriteMode::Truncate).await.unwrap();
    let pages: Vec<Vec<Entry>> = local.list("/").await.unwrap().try_collect().await.unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert!(
        pages
            .iter()
            .flatten()
            .all(|e| !e.name.starts_with(".spgate."))
    );
    assert_eq!(
        kind(local.stat("/.spgate.x.1234.partial").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(local.open_read("/.spgate.x.1234.partial").await),
        ErrorKind::NotFound
    );
    std::fs::create_dir(root.join("empty")).unwrap();
    let pages: Vec<Vec<Entry>> = local
        .list("/empty")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages, [Vec::<Entry>::new()]);
    assert_eq!(kind(local.list("/f1").await), ErrorKind::NotADirectory);
    assert_eq!(kind(local.list("/missing").await), ErrorKind::NotFound);
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    symlink("/etc", root.join("etc")).unwrap();
    symlink(&outside, root.join("out")).unwrap();
    symlink("../outside/secret", root.join("rel")).unwrap();
    symlink(outside.join("secret"), root.join("abs")).unwrap();
    for path in ["/etc", "/etc/passwd", "/out", "/out/secret", "/rel", "/abs"] {
        assert_eq!(
            kind(local.stat(path).await),
            ErrorKind::PermissionDenied,
            "stat {path}"
        );
        assert_eq!(
            kind(local.open_read(path).await),
            ErrorKind::PermissionDenied,
            "read {path}"
        );
        assert!(
            local.open_write(path, WriteMode::Keep).await.is_err(),
            "keep {path}"
        );
        assert!(
            local.open_write(path, WriteMode::Truncate).await.is_err(),
            "truncate {path}"
        );
        assert!(
            local.set_modified(path, Utc::now()).await.is_err(),
            "set_modified {path}"
        );
    }
    for path in ["/etc", "/out"] {
        assert_eq!(
            kind(local.list(path).await),
            ErrorKind::PermissionDenied,
            "list {path}"
        );
        let sub = format!("{path}/new");
        assert!(
            local.open_write(&sub, WriteMode::CreateNew).await.is_err(),
            "create {sub}"
        );
        assert!(local.mkdir(&sub).await.is_err(), "mkdir {sub}");
        assert!(local.rename("/x", &sub).await.is_err(), "rename to {sub}");
    }
    assert!(local.rename("/out/secret", "/stolen").await.is_err());
    assert!(
        names(&local, "/").await.is_empty(),
        "links leading outside are not listed"
    );
    assert_eq!(on_disk(&outside), ["secret"]);
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
}

#[tokio::test]
async fn symlinks_inside_the_root_are_followed() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/a.txt"), b"abc").unwrap();
    symlink("sub/a.txt", root.join("link")).unwrap();
    symlink("../sub", root.join("sub/up")).unwrap();
    assert_eq!(read_all(&local, "/link").await.unwrap(), b"abc");
    assert_eq!(local.stat("/sub/up/a.txt").await.unwrap().size, 3);
    assert_eq!(names(&local, "/sub/up").await, ["a.txt", "up"]);
    assert_eq!(names(&local, "/").await, ["link", "sub"]);
}

#[tokio::test]
async fn dot_dot_and_nul_are_refused() {
    let (tmp, local) = setup();
    std::fs::write(tmp.path().join("secret"), b"secret").unwrap();
    for path in ["/../secret", "/a/../../secret", ".."] {
        assert_eq!(kind(local.stat(path).await), ErrorKind::PermissionDenied);
        assert_eq!(
            kind(local.open_read(path).await),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(local.open_write(path, WriteMode::Truncate).await),
            ErrorKind::PermissionDenied
        );
        assert_eq!(kind(local.list(path).await), ErrorKind::PermissionDenied);
    }
    assert_eq!(kind(local.stat("/a\0b").await), ErrorKind::InvalidName);
    assert_eq!(kind(local.mkdir("/a\0b").await), ErrorKind::InvalidName);
}

#[tokio::test]
async fn folders_and_renames() {
    let (tmp, local) = setup();
    let root = tmp.path().join("root");
    local.mkdir("/d").await.unwrap();
    assert_eq!(kind(local.mkdir("/d").await), ErrorKind::AlreadyExists);
    assert_eq!(kind(local.mkdir("/x/y").await), ErrorKind::NotFound);
    put(&local, "/d/a.txt", WriteMode::Truncate, b"a")
        .await
        .unwrap();
    put(&local, "/b.txt", WriteMode::Truncate, b"b")
        .await
        .unwrap();
    assert_eq!(
        kind(local.remove_dir("/d").await),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(kind(local.remove_file("/d").await), ErrorKind::IsADirectory);
    assert_eq!(
        kind(local.remove_dir("/").await),
        ErrorKind::PermissionDenied
    );
    local.rename("/b.txt", "/d/a.txt").await.unwrap();
    assert_eq!(read_all(&local, "/d/a.txt").await.unwrap(), b"b");
    assert_eq!(kind(local.stat("/b.txt").await), ErrorKind::NotFound);
    local.remove_file("/d/a.txt").await.unwrap();
    local.remove_dir("/d").await.unwrap();
    assert!(on_disk(&root).is_empty());
    let stat = local.stat("/").await.unwrap();
    assert!(stat.is_dir);
}

#[tokio::test]
async fn reads_and_metadata() {
    let (tmp, local) = setup();
    std::fs::write(tmp.path().join("root/a.txt"), b"abcdef").unwrap();
    let mut r = local.open_read("/a.txt").await.unwrap();
    assert_eq!(r.size(), 6);
    assert_eq!(&r.read_at(4, 10).await.unwrap()[..], b"ef");
    assert_eq!(&r.read_at(1, 2).await.unwrap()[..], b"bc");
    assert!(r.read_at(6, 10).await.unwrap().is_empty());
    assert!(r.read_at(u64::MAX, 10).await.unwrap().is_empty());
    local.mkdir("/d").await.unwrap();
    assert_eq!(kind(local.open_read("/d").await), ErrorKind::IsADirectory);
    assert_eq!(
        kind(local.open_write("/d", WriteMode::Truncate).await),
        ErrorKind::IsADirectory
    );
    let at = Utc.with_ymd_and_hms(2001, 2, 3, 4, 5, 6).unwrap();
    local.set_modified("/a.txt", at).await.unwrap();
    local.set_modified("/d", at).await.unwrap();
    assert_eq!(local.stat("/a.txt").await.unwrap().modified, at);
    assert_eq!(local.stat("/d").await.unwrap().modified, at);
    let space = local.space().await.unwrap().unwrap();
    assert!(space.total > 0 && space.free <= space.total);
    assert!(local.capabilities().random_write && local.capabilities().set_modified);
}

#[tokio::test]
async fn messages_show_backend_paths_only() {
    let (tmp, local) = setup();
    let err = error(local.stat("/missing/a.txt").await);
    assert_eq!(err.message, "/missing/a.txt: no such file or folder");
    symlink("/etc", tmp.path().join("root/etc")).unwrap();
    let err = error(local.open_read("/etc/passwd").await);
    assert_eq!(err.message, "/etc/passwd: permission denied");
    assert!(Local::new(tmp.path().join("nope")).is_err());
    std::fs::write(tmp.path().join("file"), b"").unwrap();
    assert_eq!(
        kind(Local::new(tmp.path().join("file"))),
        ErrorKind::NotADirectory
    );
}
