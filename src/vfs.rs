//! A user's virtual file system: the mounts of one login, resolved by longest prefix, with the
//! mount's permissions checked on every operation and every path contained.
//!
//! Client paths are normalised here (relative to a working directory; `.`, `..` and repeated
//! slashes resolved; `..` at the top stays at the top; NUL refused), so a user can never name
//! anything outside the virtual tree, and a backend only ever sees clean paths below its root.
//! The parents of mounts are listable, read-only virtual folders.
//!
//! What is created is checked here too, for every backend: a name with a control character
//! other than TAB is refused ([`crate::storage::unprintable`]), and so is a name that equals a
//! mount point or one of its virtual parents apart from case (the listing would hide it behind
//! the mount; SharePoint sees one name). A write handle refuses a write that would leave a gap of more than
//! [`MAX_GAP`] past the end written so far, or end past [`MAX_FILE`] (SharePoint's limit), so a
//! single far-off SFTP write cannot make spgate spool or send terabytes of zeros.
//!
//! Every operation that fails, refused here or failed below, is told to the vfs's
//! [`Failures`] observer with the action's name: the session layer audits them, so a refusal
//! leaves a trail whichever layer refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::config::{Permission, Permissions};
use crate::storage::{
    Backend, Entry, Error, ErrorKind, ReadHandle, Result, Space, WriteHandle, WriteMode,
};

/// The largest gap a write may leave past the end written so far (out-of-order SFTP writes
/// stay within a few MiB of it).
pub const MAX_GAP: u64 = 1 << 30;
/// The largest file: SharePoint's limit, 250 GB.
pub const MAX_FILE: u64 = 250_000_000_000;

/// One mount of a user's tree.
pub struct MountPoint {
    /// Normalised virtual path (`/`, `/inbox`).
    pub path: String,
    pub backend: Arc<dyn Backend>,
    pub permissions: Permissions,
}

pub struct Vfs {
    /// Longest path first, so the first match is the longest prefix.
    mounts: Vec<MountPoint>,
    failures: Option<Arc<dyn Failures>>,
    /// When this tree was made (the session's login): the time its virtual folders (a mount
    /// point listed in its parent, a folder holding only mounts) show, rather than 1970.
    made: DateTime<Utc>,
}

/// Told of every operation of a [`Vfs`] that fails, with its action (`download`, `upload`,
/// `mkdir`, `rmdir`, `delete`, `rename`, `list`, `stat`, `set_modified`), the virtual path,
/// a rename's new path, and the error the client is answered with.
pub trait Failures: Send + Sync {
    fn failed(&self, action: &'static str, vpath: &str, to: Option<&str>, error: &Error);
}

/// Where a virtual path lands.
enum Place<'a> {
    Mounted {
        mount: &'a MountPoint,
        path: String,
    },
    /// A folder that only exists because mounts lie below it.
    Virtual,
}

/// Resolves `path` against the working directory `cwd` into a clean absolute virtual path.
pub fn normalize(cwd: &str, path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            "a path cannot contain a NUL byte",
        ));
    }
    // Front-ends decode names leniently (invalid bytes become U+FFFD): such a name would be
    // stored under another name than the client sent, so it is refused.
    if path.contains(char::REPLACEMENT_CHARACTER) {
        return Err(Error::new(
            ErrorKind::InvalidName,
            "names must be valid UTF-8 (the name holds bytes that are not)",
        ));
    }
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn denied(what: Permission, path: &str) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{path}: permission denied ({} not allowed here)",
            what.name()
        ),
    )
}

fn read_only_virtual(path: &str) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        format!("{path}: permission denied (a virtual folder holding mounts is read-only)"),
    )
}

impl Vfs {
    pub fn new(mut mounts: Vec<MountPoint>) -> Vfs {
        mounts.sort_by_key(|m| std::cmp::Reverse(m.path.len()));
        Vfs {
            mounts,
            failures: None,
            made: Utc::now(),
        }
    }

    /// A virtual folder's entry.
    fn folder(&self, name: &str) -> Entry {
        Entry::new(name.to_string(), 0, true, self.made)
    }

    /// This vfs, telling `failures` of every operation that fails.
    pub fn observed(mut self, failures: Arc<dyn Failures>) -> Vfs {
        self.failures = Some(failures);
        self
    }

    /// Passes `done` through, telling the observer when it failed.
    fn noted<T>(
        &self,
        action: &'static str,
        vpath: &str,
        to: Option<&str>,
        done: Result<T>,
    ) -> Result<T> {
        if let (Err(e), Some(failures)) = (&done, &self.failures) {
            failures.failed(action, vpath, to, e);
        }
        done
    }

    fn place(&self, vpath: &str) -> Result<Place<'_>> {
        for mount in &self.mounts {
            let rest = if mount.path == "/" {
                Some(vpath)
            } else if vpath == mount.path {
                Some("/")
            } else {
                vpath
                    .strip_prefix(&mount.path)
                    .filter(|r| r.starts_with('/'))
            };
            if let Some(rest) = rest {
                return Ok(Place::Mounted {
                    mount,
                    path: rest.to_string(),
                });
            }
        }
        if self.children_of(vpath).is_empty() {
            return Err(Error::not_found(vpath));
        }
        Ok(Place::Virtual)
    }

    /// Names of mounts (or their virtual parents) directly below `vpath`.
    fn children_of(&self, vpath: &str) -> BTreeSet<String> {
        let prefix = if vpath == "/" {
            "/".to_string()
        } else {
            format!("{vpath}/")
        };
        self.mounts
            .iter()
            .filter_map(|m| m.path.strip_prefix(&prefix))
            .filter_map(|rest| {
                rest.split('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
            })
            .collect()
    }

    fn mounted(&self, vpath: &str, need: Permission) -> Result<(&MountPoint, String)> {
        match self.place(vpath)? {
            Place::Mounted { mount, path } if mount.permissions.allows(need) => Ok((mount, path)),
            Place::Mounted { .. } => Err(denied(need, vpath)),
            Place::Virtual => Err(read_only_virtual(vpath)),
        }
    }

    fn is_mount_point(&self, vpath: &str) -> bool {
        self.mounts.iter().any(|m| m.path == vpath) || !self.children_of(vpath).is_empty()
    }

    /// Whether creating `vpath` is refused for its name: see the module docs.
    fn refuses_to_create(&self, vpath: &str) -> Result<()> {
        let name = vpath.rsplit('/').next().unwrap_or_default();
        if crate::storage::unprintable(name) {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("{vpath:?}: a name cannot hold control characters"),
            ));
        }
        let wanted = vpath.to_lowercase();
        let below = format!("{wanted}/");
        let shadows = self.mounts.iter().any(|m| {
            let path = m.path.to_lowercase();
            path == wanted || path.starts_with(&below)
        });
        if shadows {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{vpath}: already exists (a mount point has this name)"),
            ));
        }
        Ok(())
    }

    pub async fn stat(&self, vpath: &str) -> Result<Entry> {
        let done = self.lookup(vpath).await;
        self.noted("stat", vpath, None, done)
    }

    /// What [`Vfs::stat`] answers, without telling the observer of a failure: for a front-end
    /// that only chooses what to do (an FTP `LIST` of a file or of a pattern); the operation it
    /// then does tells its own failure, once.
    pub async fn lookup(&self, vpath: &str) -> Result<Entry> {
        match self.place(vpath)? {
            Place::Virtual => Ok(self.folder(vpath.rsplit('/').next().unwrap_or(""))),
            Place::Mounted { mount, path } => {
                let perms = mount.permissions;
                if !perms.allows(Permission::List) && !perms.allows(Permission::Read) {
                    return Err(denied(Permission::Read, vpath));
                }
                let mut entry = mount.backend.stat(&path).await?;
                if path == "/" {
                    entry.name = vpath.rsplit('/').next().unwrap_or("").to_string();
                }
                Ok(entry)
            }
        }
    }

    /// The entries of a folder, in pages, with the mounts below it shown as folders.
    pub async fn list(&self, vpath: &str) -> Result<BoxStream<'static, Result<Vec<Entry>>>> {
        let done = async {
            let nested: Vec<Entry> = self
                .children_of(vpath)
                .iter()
                .map(|n| self.folder(n))
                .collect();
            match self.place(vpath)? {
                Place::Virtual => Ok(futures_util::stream::iter([Ok(nested)]).boxed()),
                Place::Mounted { mount, path } => {
                    if !mount.permissions.allows(Permission::List) {
                        return Err(denied(Permission::List, vpath));
                    }
                    let hide: BTreeSet<String> =
                        nested.iter().map(|e| e.name.to_lowercase()).collect();
                    let pages = mount.backend.list(&path).await?.map(move |page| {
                        page.map(|entries| {
                            entries
                                .into_iter()
                                .filter(|e| !hide.contains(&e.name.to_lowercase()))
                                .collect()
                        })
                    });
                    Ok(futures_util::stream::iter([Ok(nested)])
                        .chain(pages)
                        .boxed())
                }
            }
        }
        .await;
        self.noted("list", vpath, None, done)
    }

    pub async fn open_read(&self, vpath: &str) -> Result<Box<dyn ReadHandle>> {
        let done = async {
            let (mount, path) = self.mounted(vpath, Permission::Read)?;
            mount.backend.open_read(&path).await
        }
        .await;
        self.noted("download", vpath, None, done)
    }

    /// Opens for writing: creating a file needs `write`, replacing or changing one `overwrite`.
    /// Whether the file exists is not asked beforehand where the backend can settle it with the
    /// write itself (SharePoint: the upload's conflict behaviour, one request for a small file).
    pub async fn open_write(&self, vpath: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let done = async {
            self.refuses_to_create(vpath)?;
            let (inner, create_only) = self.open_backend_write(vpath, mode).await?;
            Ok::<Box<dyn WriteHandle>, Error>(Box::new(Writing {
                inner,
                vpath: vpath.to_string(),
                create_only,
            }))
        }
        .await;
        self.noted("upload", vpath, None, done)
    }

    /// The backend's write handle for `vpath`, and whether it was opened create-only for a
    /// user who may create but not replace.
    async fn open_backend_write(
        &self,
        vpath: &str,
        mode: WriteMode,
    ) -> Result<(Box<dyn WriteHandle>, bool)> {
        let (mount, path) =
            self.mounted(vpath, Permission::Write)
                .or_else(|e| match self.place(vpath) {
                    Ok(Place::Mounted { mount, path })
                        if mount.permissions.allows(Permission::Overwrite) =>
                    {
                        Ok((mount, path))
                    }
                    _ => Err(e),
                })?;
        let allows = |p| mount.permissions.allows(p);
        match mode {
            WriteMode::CreateNew if allows(Permission::Write) => {
                return Ok((mount.backend.open_write(&path, mode).await?, false));
            }
            WriteMode::Truncate if allows(Permission::Write) && allows(Permission::Overwrite) => {
                return Ok((mount.backend.open_write(&path, mode).await?, false));
            }
            // May create but not replace: create-only, an existing file refused as denied.
            WriteMode::Truncate if allows(Permission::Write) => {
                let refused = |e: Error| match e.kind {
                    ErrorKind::AlreadyExists => denied(Permission::Overwrite, vpath),
                    _ => e,
                };
                let writer = mount
                    .backend
                    .open_write(&path, WriteMode::CreateNew)
                    .await
                    .map_err(refused)?;
                return Ok((writer, true));
            }
            _ => {}
        }
        let exists = match mount.backend.stat(&path).await {
            Ok(_) => true,
            Err(e) if e.kind == ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let need = if exists && mode != WriteMode::CreateNew {
            Permission::Overwrite
        } else {
            Permission::Write
        };
        if !allows(need) {
            return Err(denied(need, vpath));
        }
        Ok((mount.backend.open_write(&path, mode).await?, false))
    }

    pub async fn mkdir(&self, vpath: &str) -> Result<()> {
        let done = async {
            self.refuses_to_create(vpath)?;
            let (mount, path) = self.mounted(vpath, Permission::Mkdir)?;
            mount.backend.mkdir(&path).await
        }
        .await;
        self.noted("mkdir", vpath, None, done)
    }

    pub async fn remove_file(&self, vpath: &str) -> Result<()> {
        let done = async {
            let (mount, path) = self.mounted(vpath, Permission::Delete)?;
            mount.backend.remove_file(&path).await
        }
        .await;
        self.noted("delete", vpath, None, done)
    }

    pub async fn remove_dir(&self, vpath: &str) -> Result<()> {
        let done = async {
            if self.is_mount_point(vpath) {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{vpath}: permission denied (a mount point cannot be removed)"),
                ));
            }
            let (mount, path) = self.mounted(vpath, Permission::Delete)?;
            mount.backend.remove_dir(&path).await
        }
        .await;
        self.noted("rmdir", vpath, None, done)
    }

    /// Renames within one mount; replacing an existing file also needs `overwrite`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let done = async {
            if self.is_mount_point(from) || self.is_mount_point(to) {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{from}: permission denied (mount points cannot be renamed)"),
                ));
            }
            self.refuses_to_create(to)?;
            let (source, from_path) = self.mounted(from, Permission::Rename)?;
            let (target, to_path) = self.mounted(to, Permission::Rename)?;
            if !std::ptr::eq(source, target) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{from}: cannot move between mounts; copy and delete instead"),
                ));
            }
            let case_only = from_path.to_lowercase() == to_path.to_lowercase();
            if !case_only
                && !target.permissions.allows(Permission::Overwrite)
                && target.backend.stat(&to_path).await.is_ok()
            {
                return Err(denied(Permission::Overwrite, to));
            }
            source.backend.rename(&from_path, &to_path).await
        }
        .await;
        self.noted("rename", from, Some(to), done)
    }

    pub async fn set_modified(&self, vpath: &str, at: DateTime<Utc>) -> Result<()> {
        let done = async {
            let (mount, path) = self
                .mounted(vpath, Permission::Overwrite)
                .or_else(|_| self.mounted(vpath, Permission::Write))?;
            mount.backend.set_modified(&path, at).await
        }
        .await;
        self.noted("set_modified", vpath, None, done)
    }

    pub async fn space(&self, vpath: &str) -> Result<Option<Space>> {
        match self.place(vpath)? {
            Place::Mounted { mount, .. } => mount.backend.space().await,
            Place::Virtual => Ok(None),
        }
    }
}

/// Every write handle the vfs hands out: it refuses far-off writes (see the module docs); and
/// a file opened to replace by a user who may only create (`create_only`: stored with
/// create-only semantics) that exists by the time it is stored is refused as denied.
struct Writing {
    inner: Box<dyn WriteHandle>,
    vpath: String,
    create_only: bool,
}

#[async_trait]
impl WriteHandle for Writing {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        if end > MAX_FILE {
            return Err(Error::new(
                ErrorKind::QuotaExceeded,
                format!("{}: a file cannot be larger than 250 GB", self.vpath),
            ));
        }
        if offset > self.inner.size().saturating_add(MAX_GAP) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: a write at {offset} would leave a gap of more than 1 GiB after the {} bytes written",
                    self.vpath,
                    self.inner.size()
                ),
            ));
        }
        self.inner.write_at(offset, data).await
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        self.inner.read_at(offset, len).await
    }

    fn set_modified(&mut self, at: DateTime<Utc>) {
        self.inner.set_modified(at)
    }

    async fn close(self: Box<Self>) -> Result<Entry> {
        let (vpath, create_only) = (self.vpath, self.create_only);
        self.inner.close().await.map_err(|e| match e.kind {
            ErrorKind::AlreadyExists if create_only => denied(Permission::Overwrite, &vpath),
            _ => e,
        })
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_tree() {
        let cases = [
            ("/", "a/b", "/a/b"),
            ("/x", "../../../etc/passwd", "/etc/passwd"),
            ("/x", "/a/./b//c/", "/a/b/c"),
            ("/x/y", "..", "/x"),
            ("/", "..", "/"),
            ("/", "", "/"),
            ("/in", "a%2Fb", "/in/a%2Fb"),
        ];
        for (cwd, path, want) in cases {
            assert_eq!(normalize(cwd, path).unwrap(), want, "{cwd} + {path}");
        }
        assert!(normalize("/", "a\0b").is_err());
    }

    #[test]
    fn names_that_were_not_utf8_are_refused() {
        let lossy = String::from_utf8_lossy(b"/in/r\xfeport.csv").into_owned();
        let e = normalize("/", &lossy).unwrap_err();
        assert_eq!(e.kind, crate::storage::ErrorKind::InvalidName);
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }
}

#[cfg(test)]
mod creation_tests {
    use super::*;
    use crate::config::Permissions;
    use crate::storage::local::Local;

    /// A user with a local mount at `/` and another at `/Inbox`, every permission.
    fn tree(dir: &std::path::Path) -> Vfs {
        let (top, inbox) = (dir.join("top"), dir.join("inbox"));
        std::fs::create_dir_all(&top).unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        let all = Permissions::all();
        Vfs::new(vec![
            MountPoint {
                path: "/".into(),
                backend: Arc::new(Local::new(top).unwrap()),
                permissions: all,
            },
            MountPoint {
                path: "/Inbox".into(),
                backend: Arc::new(Local::new(inbox).unwrap()),
                permissions: all,
            },
        ])
    }

    #[tokio::test]
    async fn virtual_folders_show_the_time_of_the_login_not_1970() {
        let dir = tempfile::tempdir().unwrap();
        let before = Utc::now();
        let vfs = tree(dir.path());
        let mut pages = vfs.list("/").await.unwrap();
        let mut listed = Vec::new();
        while let Some(page) = futures_util::StreamExt::next(&mut pages).await {
            listed.extend(page.unwrap());
        }
        let inbox = listed.iter().find(|e| e.name == "Inbox").unwrap();
        assert!(inbox.is_dir);
        assert!(
            inbox.modified >= before && inbox.modified <= Utc::now(),
            "{inbox:?}"
        );
    }

    #[tokio::test]
    async fn names_with_control_characters_or_of_a_mount_point_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = tree(dir.path());
        let e = vfs.mkdir("/a\u{1b}[31m").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidName);
        assert!(e.message.contains("\\u{1b}"), "escaped: {}", e.message);
        let e = vfs
            .open_write("/bell\u{7}.txt", WriteMode::Truncate)
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidName);
        for shadow in ["/inbox", "/INBOX"] {
            assert_eq!(
                vfs.mkdir(shadow).await.unwrap_err().kind,
                ErrorKind::AlreadyExists
            );
            let refused = vfs.open_write(shadow, WriteMode::Truncate).await.err();
            assert_eq!(refused.unwrap().kind, ErrorKind::AlreadyExists);
        }
        vfs.mkdir("/plain").await.unwrap();
        vfs.mkdir("/tab\there").await.expect("TAB is allowed");
        assert!(vfs.rename("/plain", "/inBox").await.is_err());
        vfs.mkdir("/Inbox/inside").await.unwrap();
        assert!(dir.path().join("inbox/inside").is_dir());
        assert!(!dir.path().join("top/inbox").exists() && !dir.path().join("top/INBOX").exists());
    }

    #[tokio::test]
    async fn far_off_writes_are_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = tree(dir.path());
        let mut handle = vfs.open_write("/f.bin", WriteMode::Truncate).await.unwrap();
        handle
            .write_at(0, Bytes::from_static(b"head"))
            .await
            .unwrap();
        handle
            .write_at(4 + MAX_GAP, Bytes::from_static(b"x"))
            .await
            .expect("a gap of 1 GiB at most");
        let e = handle
            .write_at(2 * MAX_GAP + 10, Bytes::from_static(b"y"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = handle
            .write_at(MAX_FILE - 1, Bytes::from_static(b"zz"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
        handle.abort().await;
        assert!(!dir.path().join("top/f.bin").exists());
    }
}
