//! The job's local folder as a capability (cap-std): every file the sync worker reads, writes,
//! renames or deletes is reached through it, by its job-relative path. No symlink, `..` or
//! absolute path leads out of the folder: such an operation fails with an error (the file is
//! left for the next run), where `std::fs` would have followed a symlinked folder that the scan
//! had skipped and written wherever it pointed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions};

/// The job's local folder, opened once per run.
#[derive(Clone)]
pub struct Root {
    dir: Arc<Dir>,
    path: PathBuf,
}

/// What a path is, without following a symlink at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub is_file: bool,
    pub len: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

impl Stat {
    fn of(meta: &Metadata) -> Stat {
        Stat {
            is_file: meta.is_file(),
            len: meta.len(),
            modified: meta
                .modified()
                .map(|t| seconds(t.into_std()))
                .unwrap_or_default(),
        }
    }

    /// The same facts from an open file's `std` metadata.
    pub fn of_std(meta: &std::fs::Metadata) -> Stat {
        Stat {
            is_file: meta.is_file(),
            len: meta.len(),
            modified: meta.modified().map(seconds).unwrap_or_default(),
        }
    }

    /// Whether this looks like the file `len` bytes long, modified at `modified` (within the
    /// second either way that file systems round to).
    pub fn matches(&self, len: u64, modified: i64) -> bool {
        self.is_file && self.len == len && (self.modified - modified).abs() <= 1
    }
}

fn seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            dir: Arc::new(Dir::open_ambient_dir(path, ambient_authority())?),
            path: path.to_path_buf(),
        })
    }

    /// `rel` as a full path, for messages.
    pub fn display(&self, rel: &str) -> String {
        self.path.join(rel).display().to_string()
    }

    /// Runs `f` on the folder on tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> io::Result<T> + Send + 'static,
    {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || f(&dir))
            .await
            .map_err(io::Error::other)?
    }

    /// Opens `rel` for reading.
    pub async fn open_read(&self, rel: &str) -> io::Result<tokio::fs::File> {
        let rel = rel.to_string();
        let file = self.run(move |dir| dir.open(rel)).await?;
        Ok(tokio::fs::File::from_std(file.into_std()))
    }

    /// Opens `rel` for reading on the calling thread (blocking code).
    pub fn open_read_blocking(&self, rel: &str) -> io::Result<std::fs::File> {
        Ok(self.dir.open(rel)?.into_std())
    }

    /// Creates `rel`, which must not exist yet, for writing.
    pub async fn create_new(&self, rel: &str) -> io::Result<tokio::fs::File> {
        let rel = rel.to_string();
        let file = self
            .run(move |dir| {
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                dir.open_with(rel, &options)
            })
            .await?;
        Ok(tokio::fs::File::from_std(file.into_std()))
    }

    /// What `rel` is, not following a symlink at its end.
    pub async fn stat(&self, rel: &str) -> io::Result<Stat> {
        let rel = rel.to_string();
        self.run(move |dir| dir.symlink_metadata(rel).map(|m| Stat::of(&m)))
            .await
    }

    pub async fn create_dir_all(&self, rel: &str) -> io::Result<()> {
        let rel = rel.to_string();
        self.run(move |dir| dir.create_dir_all(rel)).await
    }

    pub async fn remove_file(&self, rel: &str) -> io::Result<()> {
        let rel = rel.to_string();
        self.run(move |dir| dir.remove_file(rel)).await
    }

    /// Removes the folder `rel` if it is empty.
    pub async fn remove_dir(&self, rel: &str) -> io::Result<()> {
        let rel = rel.to_string();
        self.run(move |dir| dir.remove_dir(rel)).await
    }

    pub async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.run(move |dir| dir.rename(from, dir, to)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlinked folder inside the root leads out: nothing is written, read or deleted
    /// through it. Plain paths work.
    #[tokio::test]
    async fn nothing_leads_out_of_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let (inside, outside) = (tmp.path().join("job"), tmp.path().join("elsewhere"));
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("link")).unwrap();
        let root = Root::open(&inside).unwrap();

        assert!(root.create_new("link/new.txt").await.is_err());
        assert!(root.create_dir_all("link/deeper").await.is_err());
        assert!(root.open_read("link/secret.txt").await.is_err());
        assert!(root.open_read("../elsewhere/secret.txt").await.is_err());
        assert!(root.remove_file("link/secret.txt").await.is_err());
        assert!(root.rename("link/secret.txt", "taken.txt").await.is_err());
        assert!(outside.join("secret.txt").exists());
        assert!(!outside.join("new.txt").exists() && !outside.join("deeper").exists());

        root.create_dir_all("a/b").await.unwrap();
        drop(root.create_new("a/b/f.txt").await.unwrap());
        assert!(root.create_new("a/b/f.txt").await.is_err(), "create_new");
        root.rename("a/b/f.txt", "a/g.txt").await.unwrap();
        let stat = root.stat("a/g.txt").await.unwrap();
        assert!(stat.is_file && stat.len == 0);
        assert!(!root.stat("link").await.unwrap().is_file, "the link itself");
        root.remove_file("a/g.txt").await.unwrap();
        root.remove_dir("a/b").await.unwrap();
        assert!(inside.join("a").is_dir() && !inside.join("a/b").exists());
    }
}
