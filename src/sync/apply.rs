//! Carrying out a plan's actions, one path at a time, each verified before its baseline row is
//! written (SYNC.md "Safety"): uploads go through the upload session (the file appears only when
//! complete) and are checked against the server's size and quickXorHash; downloads go to a
//! `.spgate.*.partial` temporary file, are checked, get the remote mtime, and are renamed over
//! the target only if the target did not change since the scan. A source is deleted after a
//! copy only once the copy is verified and the source is unchanged.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::local::{Root, Stat, temp_path};
use super::plan::{Action, Loser, Winner};
use super::remote::item;
use super::store::Store;
use super::{Baseline, Counts, Error, LocalEntry, RemoteEntry, Result, key};
use crate::config::{AfterCopy, Direction, SyncJob};
use crate::graph::{self, Drive, Entry, Kind};
use crate::wire::QuickXor;

/// Files SharePoint may rewrite after upload (GRAPH.md §7): their stored size and hash are
/// accepted as they come back.
const REWRITTEN: [&str; 6] = ["docx", "xlsx", "pptx", "pdf", "html", "htm"];

/// What one action did: a run's counts, summed into the run's with [`Counts::add`].
pub type Effect = Counts;

/// Everything the actions of one run share.
pub struct Context<'a> {
    pub job: &'a SyncJob,
    pub drive: &'a Drive,
    pub store: &'a Store,
    pub root_id: String,
    /// The scan, by key: what a local path looked like when the plan was made.
    pub local: HashMap<String, LocalEntry>,
    pub hashes: HashMap<String, String>,
    pub baseline: HashMap<String, Baseline>,
    /// The remote view, by key.
    pub remote: HashMap<String, RemoteEntry>,
    /// Remote folders known to exist (job-relative, by key).
    pub remote_dirs: tokio::sync::Mutex<HashSet<String>>,
    /// Host name for conflict names.
    pub host: String,
    /// The job's local folder: every local file is reached through it.
    pub root: Root,
}

fn rewritten(path: &str) -> bool {
    path.rsplit_once('.')
        .is_some_and(|(_, ext)| REWRITTEN.contains(&ext.to_ascii_lowercase().as_str()))
}

/// `report.pdf` -> `report (conflict 2026-11-28 1405 host).pdf`: no colons, a legal SharePoint
/// name.
pub fn conflict_name(path: &str, host: &str, at: DateTime<Utc>) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!(
        "{dir}{stem} (conflict {} {host}){ext}",
        at.format("%Y-%m-%d %H%M")
    )
}

impl Context<'_> {
    /// Local `path` as a full path, for messages (files are reached through [`Context::root`]).
    pub fn local_path(&self, path: &str) -> String {
        self.root.display(path)
    }

    pub fn remote_path(&self, path: &str) -> String {
        super::remote_path(&self.job.remote, self.job.names, path)
    }

    fn keep_rows(&self) -> bool {
        self.job.after_copy == AfterCopy::Keep
    }

    /// Carries out one action.
    pub async fn apply(&self, action: &Action) -> Result<Effect> {
        match action {
            Action::Upload {
                path,
                remote,
                delete_source,
            } => {
                let _ = remote;
                let (local, effect) = self.upload(path, path).await?;
                if *delete_source {
                    self.delete_local_source(&local).await?;
                }
                Ok(effect)
            }
            Action::Download {
                path,
                remote,
                delete_source,
            } => {
                let expected = self.local.get(&key(path)).cloned();
                let effect = self.download(path, remote, expected.as_ref()).await?;
                if *delete_source {
                    self.delete_remote_source(path, remote).await?;
                }
                Ok(effect)
            }
            Action::DeleteRemote { path, remote } => {
                self.drive
                    .delete_item(&remote.item.id, remote.item.etag.as_deref())
                    .await?;
                self.store
                    .remove_remote(&self.job.name, std::slice::from_ref(&remote.item.id))
                    .await?;
                self.store
                    .remove_baseline(&self.job.name, std::slice::from_ref(path))
                    .await?;
                Ok(Effect {
                    deleted_remote: 1,
                    ..Effect::default()
                })
            }
            Action::DeleteLocal { path } => {
                let base = self.baseline.get(&key(path));
                let unchanged = match (self.root.stat(path).await, base) {
                    (Ok(stat), Some(b)) => stat.matches(b.local_size, b.local_modified),
                    (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => true,
                    _ => false,
                };
                if !unchanged {
                    return Err(Error::io(
                        format!("{path} changed locally since the scan; not deleted"),
                        std::io::Error::other("changed"),
                    ));
                }
                match self.root.remove_file(path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::io(format!("deleting {}", self.local_path(path)), e));
                    }
                }
                self.store
                    .remove_baseline(&self.job.name, std::slice::from_ref(path))
                    .await?;
                Ok(Effect {
                    deleted_local: 1,
                    ..Effect::default()
                })
            }
            Action::Record {
                path,
                remote,
                delete_source,
            } => {
                self.record(path, remote).await?;
                if *delete_source {
                    match self.job.direction {
                        Direction::Pull => self.delete_remote_source(path, remote).await?,
                        _ => {
                            if let Some(local) = self.local.get(&key(path)).cloned() {
                                self.delete_local_source(&local).await?
                            }
                        }
                    }
                }
                Ok(Effect::default())
            }
            Action::Forget { path } => {
                self.store
                    .remove_baseline(&self.job.name, std::slice::from_ref(path))
                    .await?;
                Ok(Effect::default())
            }
            Action::Conflict {
                path,
                remote,
                winner,
                loser,
            } => self.conflict(path, remote, *winner, *loser).await,
            Action::MkdirRemote { path } => {
                let entry = self.ensure_remote_dir(path).await?;
                if self.keep_rows() {
                    let local = self.local.get(&key(path)).cloned();
                    self.put_row(path, true, &entry, local.as_ref(), None)
                        .await?;
                }
                Ok(Effect::default())
            }
            Action::MkdirLocal { path } => {
                self.root
                    .create_dir_all(path)
                    .await
                    .map_err(|e| Error::io(format!("creating {}", self.local_path(path)), e))?;
                if let Some(remote) = self.remote_entry(path)
                    && self.keep_rows()
                {
                    self.put_row(path, true, &self.entry_of(&remote), None, None)
                        .await?;
                }
                Ok(Effect::default())
            }
            Action::RemoveDirRemote { path, remote } => {
                if self
                    .drive
                    .list_all(&self.remote_path(path))
                    .await?
                    .is_empty()
                {
                    self.drive.delete_item(&remote.item.id, None).await?;
                    self.store
                        .remove_remote(&self.job.name, std::slice::from_ref(&remote.item.id))
                        .await?;
                }
                self.store
                    .remove_baseline(&self.job.name, std::slice::from_ref(path))
                    .await?;
                Ok(Effect::default())
            }
            Action::RemoveDirLocal { path } => {
                // Fails (and keeps the folder) when something is still in it.
                let _ = self.root.remove_dir(path).await;
                self.store
                    .remove_baseline(&self.job.name, std::slice::from_ref(path))
                    .await?;
                Ok(Effect::default())
            }
        }
    }

    fn remote_entry(&self, path: &str) -> Option<RemoteEntry> {
        self.remote.get(&key(path)).cloned()
    }

    fn entry_of(&self, remote: &RemoteEntry) -> Entry {
        Entry {
            id: remote.item.id.clone(),
            name: remote.item.name.clone(),
            size: remote.item.size,
            is_dir: remote.item.is_dir,
            modified: DateTime::from_timestamp(remote.item.modified, 0).unwrap_or_default(),
            etag: remote.item.etag.clone(),
            ctag: remote.item.ctag.clone(),
            quick_xor_hash: remote.item.hash.clone(),
            parent_id: Some(remote.item.parent_id.clone()),
        }
    }

    /// Writes the baseline row of `path` from the remote `entry` and the local state.
    async fn put_row(
        &self,
        path: &str,
        is_dir: bool,
        entry: &Entry,
        local: Option<&LocalEntry>,
        local_hash: Option<String>,
    ) -> Result<()> {
        let row = Baseline {
            path: path.to_string(),
            is_dir,
            remote_id: entry.id.clone(),
            remote_etag: entry.etag.clone(),
            remote_ctag: entry.ctag.clone(),
            remote_size: if is_dir { 0 } else { entry.size },
            remote_hash: entry.quick_xor_hash.clone(),
            remote_modified: entry.modified.timestamp(),
            local_size: local.map(|l| l.size).unwrap_or(0),
            local_modified: local.map(|l| l.modified).unwrap_or(0),
            local_hash,
        };
        self.store.put_baseline(&self.job.name, &[row]).await?;
        Ok(())
    }

    /// Both sides hold the same content already.
    async fn record(&self, path: &str, remote: &RemoteEntry) -> Result<()> {
        let k = key(path);
        let local = self.local.get(&k);
        let hash = self
            .hashes
            .get(path)
            .cloned()
            .or_else(|| self.baseline.get(&k).and_then(|b| b.local_hash.clone()));
        self.put_row(
            path,
            remote.item.is_dir,
            &self.entry_of(remote),
            local,
            hash,
        )
        .await
    }

    /// Creates the remote folder `path` (job-relative) and its missing parents, starting below
    /// the deepest folder known to exist.
    async fn ensure_remote_dir(&self, path: &str) -> Result<Entry> {
        let mut known = self.remote_dirs.lock().await;
        let mut at = String::new();
        let mut last = None;
        for part in path.split('/') {
            at = if at.is_empty() {
                part.to_string()
            } else {
                format!("{at}/{part}")
            };
            if known.contains(&key(&at)) && at != path {
                continue;
            }
            let full = self.remote_path(&at);
            let entry = match self.drive.mkdir(&full).await {
                Ok(entry) => entry,
                Err(e) if e.kind == Kind::AlreadyExists => self.drive.stat(&full).await?,
                Err(e) => return Err(e.into()),
            };
            self.store
                .upsert_remote(
                    &self.job.name,
                    &[item(&entry, entry.parent_id.as_deref().unwrap_or_default())],
                )
                .await?;
            known.insert(key(&at));
            last = Some(entry);
        }
        last.ok_or_else(|| Error::Aborted("an empty folder path".into()))
    }

    async fn ensure_remote_parent(&self, path: &str) -> Result<()> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        if self.remote_dirs.lock().await.contains(&key(parent)) {
            return Ok(());
        }
        self.ensure_remote_dir(parent).await.map(|_| ())
    }

    /// Uploads local `path` to remote `to` (job-relative), verifies it, records the row.
    /// Returns the local file as it was sent.
    async fn upload(&self, path: &str, to: &str) -> Result<(LocalEntry, Effect)> {
        let opened = self
            .root
            .open_read(path)
            .await
            .map_err(|e| Error::io(format!("opening {}", self.local_path(path)), e))?;
        let before = opened
            .metadata()
            .await
            .map(|meta| Stat::of_std(&meta))
            .map_err(|e| Error::io(format!("reading {}", self.local_path(path)), e))?;
        let len = before.len;
        self.ensure_remote_parent(to).await?;
        // Hash what is sent, as it is read.
        let hasher = std::sync::Arc::new(parking_lot::Mutex::new(QuickXor::new()));
        let reader = Hashing {
            inner: opened,
            hasher: hasher.clone(),
        };
        let modified = DateTime::from_timestamp(before.modified, 0);
        // Small files go in one simple upload (one request); their SharePoint modification
        // time is the upload time. Larger ones carry the local mtime in the session.
        let modified = modified.filter(|_| len > graph::upload::SIMPLE_UPLOAD_MAX);
        let entry = self
            .drive
            .upload(&self.remote_path(to), reader, len, modified)
            .await?;
        let sent = hasher.lock().finish();
        let verified = entry.size == len && entry.quick_xor_hash.as_deref() == Some(sent.as_str());
        if !verified && !rewritten(to) {
            return Err(graph::Error::new(
                Kind::Io,
                format!(
                    "{to}: SharePoint holds {} bytes (hash {:?}) after sending {len} bytes (hash {sent})",
                    entry.size, entry.quick_xor_hash
                ),
            )
            .into());
        }
        let local = LocalEntry {
            path: path.to_string(),
            is_dir: false,
            size: len,
            modified: before.modified,
        };
        self.put_row(to, false, &entry, Some(&local), Some(sent))
            .await?;
        self.store
            .upsert_remote(
                &self.job.name,
                &[item(&entry, entry.parent_id.as_deref().unwrap_or_default())],
            )
            .await?;
        tracing::info!(job = %self.job.name, path = to, bytes = len, "uploaded");
        Ok((
            local,
            Effect {
                uploaded: 1,
                bytes_up: len,
                ..Effect::default()
            },
        ))
    }

    /// Downloads `remote` to local `path` through a temporary file; `expected` is what the scan
    /// saw at `path` (the target is replaced only if it still looks like that).
    async fn download(
        &self,
        path: &str,
        remote: &RemoteEntry,
        expected: Option<&LocalEntry>,
    ) -> Result<Effect> {
        if let Some((dir, _)) = path.rsplit_once('/') {
            self.root
                .create_dir_all(dir)
                .await
                .map_err(|e| Error::io(format!("creating {}", self.local_path(dir)), e))?;
        }
        let temp = temp_path(path);
        let result = self.fetch(&temp, remote).await;
        let (len, hash) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = self.root.remove_file(&temp).await;
                return Err(e);
            }
        };
        let still = match self.root.stat(path).await {
            Ok(stat) => expected.is_some_and(|e| stat.matches(e.size, e.modified)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => expected.is_none(),
            Err(_) => false,
        };
        if !still {
            let _ = self.root.remove_file(&temp).await;
            return Err(Error::io(
                format!("{path} changed locally during the download; left for the next run"),
                std::io::Error::other("changed"),
            ));
        }
        self.root
            .rename(&temp, path)
            .await
            .map_err(|e| Error::io(format!("renaming into {}", self.local_path(path)), e))?;
        let stat = self
            .root
            .stat(path)
            .await
            .map_err(|e| Error::io(format!("reading {}", self.local_path(path)), e))?;
        let local = LocalEntry {
            path: path.to_string(),
            is_dir: false,
            size: len,
            modified: stat.modified,
        };
        self.put_row(
            path,
            false,
            &self.entry_of(remote),
            Some(&local),
            Some(hash),
        )
        .await?;
        tracing::info!(job = %self.job.name, path, bytes = len, "downloaded");
        Ok(Effect {
            downloaded: 1,
            bytes_down: len,
            ..Effect::default()
        })
    }

    /// Streams the remote file into local `temp` (job-relative), verifies size and hash, sets
    /// the remote mtime.
    async fn fetch(&self, temp: &str, remote: &RemoteEntry) -> Result<(u64, String)> {
        let shown = self.local_path(temp);
        let mut file = self
            .root
            .create_new(temp)
            .await
            .map_err(|e| Error::io(format!("creating {shown}"), e))?;
        let mut hasher = QuickXor::new();
        let mut len = 0u64;
        if remote.item.size > 0 {
            let mut download = self
                .drive
                .download(&self.remote_path(&remote.path), 0, None)
                .await?;
            while let Some(chunk) = download
                .body
                .try_next()
                .await
                .map_err(|e| Error::io("downloading", e))?
            {
                hasher.update(&chunk);
                len += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("writing {shown}"), e))?;
            }
        }
        file.sync_all()
            .await
            .map_err(|e| Error::io(format!("writing {shown}"), e))?;
        let hash = hasher.finish();
        let hash_ok = remote.item.hash.as_deref().is_none_or(|h| h == hash);
        if len != remote.item.size || !hash_ok {
            return Err(graph::Error::new(
                Kind::Io,
                format!(
                    "{}: received {len} bytes (hash {hash}), SharePoint lists {} (hash {:?})",
                    remote.path, remote.item.size, remote.item.hash
                ),
            )
            .into());
        }
        let at = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(remote.item.modified.max(0) as u64);
        file.into_std()
            .await
            .set_modified(at)
            .map_err(|e| Error::io(format!("setting the time of {shown}"), e))?;
        Ok((len, hash))
    }

    /// After a verified push: delete the local source if it did not change during the copy.
    async fn delete_local_source(&self, sent: &LocalEntry) -> Result<()> {
        let path = sent.path.as_str();
        let stat = match self.root.stat(path).await {
            Ok(stat) => stat,
            Err(_) => return Ok(()),
        };
        if !stat.matches(sent.size, sent.modified) {
            tracing::warn!(job = %self.job.name, path, "source changed during the copy; kept");
            return Ok(());
        }
        self.root
            .remove_file(path)
            .await
            .map_err(|e| Error::io(format!("deleting {}", self.local_path(path)), e))?;
        self.store
            .remove_baseline(&self.job.name, &[path.to_string()])
            .await?;
        tracing::info!(job = %self.job.name, path, "source deleted after a verified copy");
        Ok(())
    }

    /// After a verified pull: delete the remote source if it did not change during the copy.
    async fn delete_remote_source(&self, path: &str, remote: &RemoteEntry) -> Result<()> {
        match self
            .drive
            .delete_item(&remote.item.id, remote.item.etag.as_deref())
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == Kind::Modified => {
                tracing::warn!(job = %self.job.name, path, "source changed during the copy; kept");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.store
            .remove_remote(&self.job.name, std::slice::from_ref(&remote.item.id))
            .await?;
        self.store
            .remove_baseline(&self.job.name, &[path.to_string()])
            .await?;
        tracing::info!(job = %self.job.name, path, "SharePoint source deleted after a verified copy");
        Ok(())
    }

    async fn conflict(
        &self,
        path: &str,
        remote: &RemoteEntry,
        winner: Winner,
        loser: Loser,
    ) -> Result<Effect> {
        let aside = conflict_name(path, &self.host, Utc::now());
        tracing::warn!(job = %self.job.name, path, ?winner, ?loser, aside, "conflict: both sides changed");
        let mut effect = Effect {
            conflicts: 1,
            ..Effect::default()
        };
        let mut add = |e: Effect| effect.add(&e);
        match (winner, loser) {
            (Winner::Local, Loser::KeepBoth) => {
                // The SharePoint version moves aside, then both travel.
                let moved = self
                    .drive
                    .rename(&self.remote_path(path), &self.remote_path(&aside), false)
                    .await?;
                let moved = RemoteEntry {
                    path: aside.clone(),
                    item: item(&moved, &remote.item.parent_id),
                };
                add(self.upload(path, path).await?.1);
                add(self.download(&aside, &moved, None).await?);
            }
            (Winner::Local, Loser::Replace) => {
                add(self.upload(path, path).await?.1);
            }
            (Winner::Remote, loser) => {
                // The local version moves aside (it has no version history).
                self.root
                    .rename(path, &aside)
                    .await
                    .map_err(|e| Error::io(format!("renaming {}", self.local_path(path)), e))?;
                if loser == Loser::KeepBoth {
                    add(self.upload(&aside, &aside).await?.1);
                }
                add(self.download(path, remote, None).await?);
            }
        }
        Ok(effect)
    }
}

/// An `AsyncRead` that feeds what it reads to a quickXorHash.
struct Hashing<R> {
    inner: R,
    hasher: std::sync::Arc<parking_lot::Mutex<QuickXor>>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            let fresh = &buf.filled()[before..];
            self.hasher.lock().update(fresh);
        }
        poll
    }
}
