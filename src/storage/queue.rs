//! The write-back upload queue (`upload_commit = "queued"`): a client's close is answered once
//! its file is durably in the queue, and the upload to SharePoint goes on in the background.
//!
//! - A queued file is a file in `<state dir>/queue/` (spooled there under its queued name,
//!   fsync'd with its directory) and a row in the state store (committed) saying where it
//!   goes. Both happen before the client hears the close succeeded, so a crash loses nothing.
//!   The rows are the state directory's own (its queue's owner id): on a store shared by
//!   several instances, each uploads the files of its own spool.
//! - Until it lands, the same mount sees the file ([`Queue::pending`], used by the SharePoint
//!   backend for stat, list and read); renaming, deleting or re-timing it changes the row, and a
//!   second upload to the same path supersedes the first.
//! - Every change is made in memory and written to the store in the order it was made
//!   ([`db::Op`]); whoever needs it durable (the client's close, a worker's progress) waits for
//!   the write.
//! - Workers (`deliver`) upload rows in order, a few at once per connection, never two that
//!   touch the same path. A large file's upload session URL is kept in its row: after a
//!   restart the session is resumed from its `nextExpectedRanges`, not started over.
//! - A transient failure is retried with growing pauses for [`GIVE_UP_AFTER`] (from the time
//!   the file was queued, or the end of a wait for its disabled connection); a final one (or
//!   one SharePoint refuses: quota, a folder of that name) moves the file to
//!   `queue/quarantine/`, raises an alert and reports a failed [`Delivery`]. While a connection
//!   is disabled (its credentials refused: the connection's own alert says why), its rows wait
//!   without attempts and go as soon as it is enabled again (a save, a reload, `enable`).
//!   `spgate queue retry` puts it back in line; `spgate queue discard` drops it.

mod db;
mod deliver;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use crate::connections::Connection;
use crate::connections::store::ensure_private_dir;
use crate::graph;
use db::Op;

/// Transient failures are retried this long after the file was queued, then it is quarantined.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Uploads of one connection in flight at once, unless its `upload_workers` says otherwise.
pub const DEFAULT_WORKERS: usize = 4;

/// Who queued a file, for the audit line of its delivery.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Origin {
    pub user: String,
    pub protocol: String,
    pub peer: Option<IpAddr>,
    /// The user's virtual path.
    pub vpath: String,
}

/// How a queued upload ended: delivered, or given up (quarantined). The gateway in force
/// writes it to the audit log.
pub struct Delivery<'a> {
    pub origin: &'a Origin,
    pub connection: &'a str,
    pub size: u64,
    /// The item SharePoint stored, when it said.
    pub item_id: Option<&'a str>,
    /// Why it was given up; `None` once delivered.
    pub error: Option<&'a str>,
}

/// Called with each [`Delivery`].
pub type OnDelivery = Arc<dyn Fn(&Delivery<'_>) + Send + Sync>;

/// One queued upload. Its `Debug` leaves out the upload URL (it carries its own credentials).
#[derive(Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub connection: String,
    /// The library path (stored names) the upload goes to.
    pub path: String,
    /// Where the file ends up: `path`, unless it was renamed while queued; `None` once it was
    /// deleted (or superseded) while its upload could no longer be called off.
    pub target: Option<String>,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    /// Replace an existing file (else the upload fails if the name is taken).
    pub replace: bool,
    /// The file, relative to the queue directory.
    pub file: String,
    /// The open upload session (pre-authenticated: never shown).
    pub upload_url: Option<String>,
    /// The content is in SharePoint at `path`; only the rename, delete or time is left.
    pub uploaded: bool,
    /// Quarantined, with the reason.
    pub failed: Option<String>,
    pub attempts: u32,
    pub queued_at: DateTime<Utc>,
    pub origin: Origin,
}

impl Row {
    /// A row of `connection` still on its way (not quarantined).
    fn live(&self, connection: &str) -> bool {
        self.connection == connection && self.failed.is_none()
    }

    /// Where a live row of `connection` ends up.
    fn live_target(&self, connection: &str) -> Option<&str> {
        self.target.as_deref().filter(|_| self.live(connection))
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("id", &self.id)
            .field("connection", &self.connection)
            .field("path", &self.path)
            .field("target", &self.target)
            .field("size", &self.size)
            .field("modified", &self.modified)
            .field("replace", &self.replace)
            .field("file", &self.file)
            .field("upload_url", &self.upload_url.as_ref().map(|_| "***"))
            .field("uploaded", &self.uploaded)
            .field("failed", &self.failed)
            .field("attempts", &self.attempts)
            .field("queued_at", &self.queued_at)
            .field("origin", &self.origin)
            .finish()
    }
}

/// A queued file as the mount sees it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub file: PathBuf,
}

/// What a client waiting at close (`upload_commit = "close:N"`) hears: the stored item, or
/// why SharePoint refused it.
pub type Verdict = Result<graph::Entry, graph::Error>;

/// A file written to the spool, to be queued.
pub struct NewUpload {
    pub connection: String,
    pub path: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub replace: bool,
    /// The spool file ([`Queue::spool`]).
    pub spooled: PathBuf,
    pub origin: Origin,
}

/// Counts for the metrics and the status page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Files waiting or being uploaded.
    pub depth: usize,
    pub bytes: u64,
    /// Age of the oldest waiting file, in seconds.
    pub oldest_seconds: u64,
    pub quarantined: usize,
}

pub struct Queue {
    dir: PathBuf,
    /// Where the rows are kept, and under which owner (this state directory's queue).
    store: Arc<crate::state::Store>,
    owner: String,
    /// Held while changes are written to the store, one batch at a time, in order.
    writing: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Wakes the dispatcher.
    wake: Notify,
    /// Wakes everyone waiting for a row to end ([`Queue::settled`]).
    done: Notify,
    attached: RwLock<Attached>,
}

struct State {
    rows: BTreeMap<i64, Row>,
    /// Changes made in memory, not yet written to the store, oldest first.
    ops: Vec<Op>,
    /// The id of the next queued file.
    next_id: i64,
    /// The store's queue counter as of the rows last read.
    seen: i64,
    in_flight: HashSet<i64>,
    /// Rows waiting out a pause after a transient failure.
    not_before: HashMap<i64, Instant>,
    /// When each row was last seen waiting for its disabled connection: the retry window
    /// ([`GIVE_UP_AFTER`]) counts from then, not from the time it was queued, so that a long
    /// hold does not leave it no retries once the connection is enabled.
    held_at: HashMap<i64, DateTime<Utc>>,
    waiters: HashMap<i64, oneshot::Sender<Verdict>>,
}

/// What the workers need from the gateway in force (replaced by a configuration reload).
#[derive(Default)]
struct Attached {
    connections: HashMap<String, Arc<Connection>>,
    workers: HashMap<String, usize>,
    on_delivery: Option<OnDelivery>,
}

fn io(e: crate::state::Error) -> std::io::Error {
    std::io::Error::other(format!("upload queue: {e}"))
}

impl Queue {
    /// `<state dir>/queue`.
    pub fn dir_in(state_dir: &Path) -> PathBuf {
        state_dir.join("queue")
    }

    /// Opens (creating) the queue of a state directory, its rows in `store`; the `queue.db` of
    /// an earlier version is imported first.
    pub async fn open(
        state_dir: &Path,
        store: Arc<crate::state::Store>,
    ) -> std::io::Result<Arc<Queue>> {
        let dir = Queue::dir_in(state_dir);
        ensure_private_dir(&dir.join("quarantine"))?;
        let owner = crate::state::dir_id(state_dir)?;
        db::import(&store, &owner, &dir).await?;
        let seen = store.counters().await.map_err(io)?.queue;
        let rows = db::load(&store, &owner).await.map_err(io)?;
        let next_id = (rows.iter().map(|r| r.id).max().unwrap_or(0) + 1)
            .max(db::next_id(&store, &owner).await.map_err(io)?);
        Ok(Arc::new(Queue {
            dir,
            store,
            owner,
            writing: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                rows: rows.into_iter().map(|r| (r.id, r)).collect(),
                ops: Vec::new(),
                next_id,
                seen,
                in_flight: HashSet::new(),
                not_before: HashMap::new(),
                held_at: HashMap::new(),
                waiters: HashMap::new(),
            }),
            wake: Notify::new(),
            done: Notify::new(),
            attached: RwLock::default(),
        }))
    }

    /// Removes what a crash left behind: spool files never queued, and files no row names.
    /// Only the server calls this (a `spgate queue` command must not touch a live spool).
    pub async fn recover(&self) -> std::io::Result<()> {
        let named: HashSet<String> = self
            .state
            .lock()
            .rows
            .values()
            .map(|r| r.file.clone())
            .collect();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(".spool-") || name.starts_with("u-");
            if ours && entry.file_type()?.is_file() && !named.contains(&name) {
                std::fs::remove_file(entry.path())?;
            }
        }
        // A row whose file is not where it says: a crash between quarantining's move of the
        // file and its row's update (the file is in quarantine/: it is tried again), or a file
        // removed by hand (nothing is left to upload).
        let queued = self.recheck_files()?;
        self.flush().await?;
        if queued > 0 {
            tracing::info!(
                queued,
                "upload queue: resuming the files queued before the restart"
            );
        }
        Ok(())
    }

    /// Puts back in line the rows whose file a crash left in `quarantine/`, and drops those
    /// whose file is gone; answers how many rows are queued.
    fn recheck_files(&self) -> std::io::Result<usize> {
        let mut state = self.state.lock();
        let mut missing = Vec::new();
        for row in state.rows.values() {
            if !self.dir.join(&row.file).try_exists()? {
                missing.push(row.id);
            }
        }
        for id in missing {
            match self.quarantined_file(id)? {
                Some(file) => {
                    let mut row = state.rows[&id].clone();
                    tracing::warn!(
                        id,
                        file,
                        "upload queue: a file moved to quarantine before a crash is tried again"
                    );
                    row.file = file;
                    row.failed = None;
                    state.ops.push(Op::Put(Box::new(row.clone())));
                    state.rows.insert(id, row);
                }
                None => {
                    tracing::error!(
                        id,
                        "upload queue: a queued file is gone (removed by hand?); its upload is dropped"
                    );
                    state.forget(id)?;
                }
            }
        }
        Ok(state.rows.len())
    }

    /// The file of row `id` in `quarantine/`, relative to the queue directory, if there is one.
    fn quarantined_file(&self, id: i64) -> std::io::Result<Option<String>> {
        let prefix = format!("{id}-");
        let found = match std::fs::read_dir(self.dir.join("quarantine")) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(&prefix)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(found.map(|n| format!("quarantine/{n}")))
    }

    /// A new spool file for an upload that may be queued, mode 0600.
    pub fn spool(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
        let path = self
            .dir
            .join(format!("u-{}", uuid::Uuid::new_v4().simple()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok((file, path))
    }

    /// Makes a spooled file durable and queues it; answers its id, and the verdict to wait
    /// for when `wait`.
    pub async fn enqueue(
        &self,
        new: NewUpload,
        wait: bool,
    ) -> std::io::Result<(i64, Option<oneshot::Receiver<Verdict>>)> {
        let file = new
            .spooled
            .strip_prefix(&self.dir)
            .ok()
            .and_then(|n| n.to_str())
            .filter(|n| n.starts_with("u-"))
            .ok_or_else(|| std::io::Error::other("not a spool file of this queue"))?
            .to_string();
        // The file's sync commits its directory entry with it (ext4, xfs): the directory's
        // own sync is then all but free, and it keeps the entry durable elsewhere.
        let (spooled, dir) = (new.spooled.clone(), self.dir.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&spooled)?.sync_data()?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut row = Row {
            id: 0,
            connection: new.connection,
            path: new.path.clone(),
            target: Some(new.path),
            size: new.size,
            modified: new.modified,
            replace: new.replace,
            file,
            upload_url: None,
            uploaded: false,
            failed: None,
            attempts: 0,
            queued_at: Utc::now(),
            origin: new.origin,
        };
        let (id, waiter) = {
            let mut state = self.state.lock();
            let target = row.path.clone();
            state.supersede(&row.connection, &target)?;
            row.id = state.next_id;
            state.next_id += 1;
            let id = row.id;
            state.ops.push(Op::Put(Box::new(row.clone())));
            state.rows.insert(id, row);
            let waiter = wait.then(|| {
                let (tx, rx) = oneshot::channel();
                state.waiters.insert(id, tx);
                rx
            });
            (id, waiter)
        };
        if let Err(e) = self.flush().await {
            // The client hears the failure. The row stays in memory, unstarted, and goes to the
            // store (then SharePoint) once the store answers; a crash before that drops it with
            // its file, as the client was told.
            self.state.lock().waiters.remove(&id);
            tracing::warn!(id, error = %crate::logging::chain(&e), "upload queue: a close was refused because the state store did not answer; the file stays queued until it does");
            return Err(e);
        }
        self.wake.notify_one();
        Ok((id, waiter))
    }

    /// The queued file at `path` of `connection`, as the mount sees it.
    pub fn pending(&self, connection: &str, path: &str) -> Option<Pending> {
        let state = self.state.lock();
        state.visible(connection, path).map(|r| self.view(r))
    }

    /// The queued files directly in `folder` (a library path without the trailing slash), by
    /// stored name.
    pub fn pending_children(&self, connection: &str, folder: &str) -> Vec<(String, Pending)> {
        let folder = folder.trim_end_matches('/');
        let state = self.state.lock();
        let mut found: BTreeMap<String, Pending> = BTreeMap::new();
        for row in state.rows.values() {
            let Some(target) = row.live_target(connection) else {
                continue;
            };
            if let Some((parent, name)) = target.rsplit_once('/')
                && parent == folder
            {
                found.insert(name.to_string(), self.view(row));
            }
        }
        found.into_iter().collect()
    }

    fn view(&self, row: &Row) -> Pending {
        Pending {
            size: row.size,
            modified: row.modified.unwrap_or(row.queued_at),
            file: self.dir.join(&row.file),
        }
    }

    /// A rename of `from`: when a queued file is there, it now goes to `to` (and whatever was
    /// queued for `to` is superseded); `vpath` is the user's path of `to`, for the audit.
    /// `None`: nothing is queued at `from`. `Some(stale)`: the queued file moved; `stale` is a
    /// path whose SharePoint item, if any, the caller must delete (an older version the queued
    /// file would have replaced).
    pub async fn rename(
        &self,
        connection: &str,
        from: &str,
        to: &str,
        vpath: &str,
    ) -> std::io::Result<Option<Option<String>>> {
        let stale = {
            let mut state = self.state.lock();
            let Some(id) = state.visible(connection, from).map(|r| r.id) else {
                return Ok(None);
            };
            state.supersede(connection, to)?;
            let movable = state.movable(id);
            let row = state.rows.get_mut(&id).expect("visible row");
            row.target = Some(to.to_string());
            row.origin.vpath = vpath.to_string();
            if movable {
                // Not started: upload straight to the new name.
                row.path = to.to_string();
                row.upload_url = None;
            }
            let stale = (row.path != from).then(|| from.to_string());
            let row = row.clone();
            state.ops.push(Op::Put(Box::new(row)));
            stale
        };
        self.flush().await?;
        Ok(Some(stale))
    }

    /// A delete of `path`: the queued file there is called off. `None`: nothing is queued there;
    /// `Some(stale)` as for [`Queue::rename`].
    pub async fn remove(
        &self,
        connection: &str,
        path: &str,
    ) -> std::io::Result<Option<Option<String>>> {
        let stale = {
            let mut state = self.state.lock();
            let Some(row) = state.visible(connection, path).cloned() else {
                return Ok(None);
            };
            let dropped = state.movable(row.id);
            state.drop_or_orphan(row.id)?;
            (dropped || row.path != path).then(|| path.to_string())
        };
        self.flush().await?;
        Ok(Some(stale))
    }

    /// A new modification time for the queued file at `path`; false when none is queued.
    pub async fn set_modified(
        &self,
        connection: &str,
        path: &str,
        at: DateTime<Utc>,
    ) -> std::io::Result<bool> {
        {
            let mut state = self.state.lock();
            let Some(id) = state.visible(connection, path).map(|r| r.id) else {
                return Ok(false);
            };
            let row = state.rows.get_mut(&id).expect("visible row");
            row.modified = Some(at);
            let row = row.clone();
            state.ops.push(Op::Put(Box::new(row)));
        }
        self.flush().await?;
        Ok(true)
    }

    /// Whether anything is queued below the folder `folder`.
    pub fn has_pending_below(&self, connection: &str, folder: &str) -> bool {
        let below = format!("{}/", folder.trim_end_matches('/'));
        let state = self.state.lock();
        state.rows.values().any(|r| {
            r.live_target(connection)
                .is_some_and(|t| t.starts_with(&below))
        })
    }

    /// Waits (at most a minute) until no upload still works below the folder `folder` in
    /// SharePoint: files deleted or renamed away while their upload could not be called off
    /// are in the folder there until their worker has deleted or moved them.
    pub async fn leave_folder(&self, connection: &str, folder: &str) {
        let below = format!("{}/", folder.trim_end_matches('/'));
        self.when_settled(|state, waited_out| {
            let busy = state
                .rows
                .values()
                .any(|r| r.live(connection) && r.path.starts_with(&below));
            (!busy || waited_out).then_some(())
        })
        .await
    }

    /// Answers what `ready` answers once it answers something: it is asked under the lock
    /// now and each time an upload ends, with whether a minute has passed (then it must).
    async fn when_settled<T>(&self, mut ready: impl FnMut(&mut State, bool) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.done.notified();
            if let Some(answer) = ready(&mut self.state.lock(), Instant::now() >= deadline) {
                return answer;
            }
            let _ = tokio::time::timeout_at(deadline.into(), notified).await;
        }
    }

    /// `from` (a SharePoint item, not a queued file) is about to be renamed to `to`: uploads
    /// to `to` or below `from` already under way are let finish (at most a minute), and the
    /// rest are held until [`Queue::release_rename`]. Answers the held rows.
    pub async fn hold_rename(&self, connection: &str, from: &str, to: &str) -> Vec<i64> {
        let below = format!("{}/", from.trim_end_matches('/'));
        let touches = |p: &str| p == to || p.starts_with(&below);
        self.when_settled(|state, waited_out| {
            let ours: Vec<i64> = state
                .rows
                .values()
                .filter(|r| r.live(connection))
                .filter(|r| touches(&r.path) || r.target.as_deref().is_some_and(touches))
                .map(|r| r.id)
                .collect();
            let busy = ours.iter().any(|id| !state.movable(*id));
            if busy && !waited_out {
                return None;
            }
            let held: Vec<i64> = ours.into_iter().filter(|id| state.movable(*id)).collect();
            let never = Instant::now() + Duration::from_secs(3600);
            for id in &held {
                state.not_before.insert(*id, never);
            }
            Some(held)
        })
        .await
    }

    /// Lets rows held by [`Queue::hold_rename`] go. When the rename was made, files queued
    /// for `to` were replaced by it (they are dropped) and those below `from` go below `to`.
    pub async fn release_rename(
        &self,
        held: &[i64],
        renamed: Option<(&str, &str)>,
    ) -> std::io::Result<()> {
        self.release(held, renamed)?;
        self.flush().await?;
        self.wake.notify_one();
        Ok(())
    }

    fn release(&self, held: &[i64], renamed: Option<(&str, &str)>) -> std::io::Result<()> {
        let mut state = self.state.lock();
        for id in held {
            state.not_before.remove(id);
            let Some((from, to)) = renamed else { continue };
            if state
                .rows
                .get(id)
                .is_some_and(|r| r.target.as_deref() == Some(to))
            {
                state.drop_or_orphan(*id)?;
                continue;
            }
            let Some(row) = state.rows.get_mut(id) else {
                continue;
            };
            let below = format!("{}/", from.trim_end_matches('/'));
            let moved = |p: &str| {
                p.strip_prefix(&below)
                    .map(|rest| format!("{}/{rest}", to.trim_end_matches('/')))
            };
            if let Some(path) = moved(&row.path) {
                row.path = path;
                row.upload_url = None;
            }
            if let Some(target) = row.target.as_deref().and_then(moved) {
                row.target = Some(target);
            }
            let row = row.clone();
            state.ops.push(Op::Put(Box::new(row)));
        }
        Ok(())
    }

    /// Every row, oldest first (re-read from the store: another process may have changed it).
    pub async fn list(&self) -> std::io::Result<Vec<Row>> {
        self.refresh().await?;
        Ok(self.state.lock().rows.values().cloned().collect())
    }

    /// The bytes still to go up for `connection`: not quarantined, not up already (counted in
    /// the quota as last heard), not deleted, not at `except` (a close there supersedes them).
    pub fn queued_bytes(&self, connection: &str, except: &str) -> u64 {
        let state = self.state.lock();
        state
            .rows
            .values()
            .filter(|r| !r.uploaded && r.live_target(connection).is_some_and(|t| t != except))
            .map(|r| r.size)
            .sum()
    }

    pub fn stats(&self) -> Stats {
        let state = self.state.lock();
        let mut stats = Stats::default();
        let now = Utc::now();
        for row in state.rows.values() {
            if row.failed.is_some() {
                stats.quarantined += 1;
                continue;
            }
            stats.depth += 1;
            stats.bytes += row.size;
            let age = (now - row.queued_at).num_seconds().max(0) as u64;
            stats.oldest_seconds = stats.oldest_seconds.max(age);
        }
        stats
    }

    /// Puts a quarantined upload back in line. False when there is no such quarantined row.
    pub async fn retry(&self, id: i64) -> std::io::Result<bool> {
        self.refresh().await?;
        {
            let mut state = self.state.lock();
            let Some(row) = state.rows.get_mut(&id).filter(|r| r.failed.is_some()) else {
                return Ok(false);
            };
            row.failed = None;
            row.attempts = 0;
            row.queued_at = Utc::now();
            let row = row.clone();
            state.ops.push(Op::Put(Box::new(row)));
        }
        self.announce().await?;
        crate::connections::health::clear(
            &self.store,
            &self.alert_source(id),
            "queued again (retry)",
        )
        .await?;
        self.wake.notify_one();
        Ok(true)
    }

    /// Drops a quarantined upload and its file. False when there is no such quarantined row.
    pub async fn discard(&self, id: i64) -> std::io::Result<bool> {
        self.refresh().await?;
        {
            let mut state = self.state.lock();
            if state.rows.get(&id).is_none_or(|r| r.failed.is_none()) {
                return Ok(false);
            }
            state.forget(id)?;
        }
        self.announce().await?;
        crate::connections::health::clear(&self.store, &self.alert_source(id), "discarded").await?;
        Ok(true)
    }

    /// The connections, their worker counts and the delivery report of the gateway in force.
    pub fn attach(&self, connections: &HashMap<String, Arc<Connection>>, on_delivery: OnDelivery) {
        let workers = connections
            .iter()
            .map(|(name, c)| (name.clone(), c.upload_workers()))
            .collect();
        *self.attached.write() = Attached {
            connections: connections.clone(),
            workers,
            on_delivery: Some(on_delivery),
        };
        self.wake.notify_one();
    }

    /// Runs the workers until `stop`: starts every row that may go, then waits for a change
    /// (a new row, an upload ending, a pause running out, or another process's commit).
    pub async fn run(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            if let Err(e) = self.refresh().await {
                tracing::error!(error = %crate::logging::chain(&e), "upload queue: reading the queue failed");
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %crate::logging::chain(&e), "upload queue: saving the queue failed (retried)");
            }
            let wait = match self.start_ready(&tasks) {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %crate::logging::chain(&e), "upload queue: reading the queue failed");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Uploads in flight stop where they are; their sessions are resumed after a restart.
        tasks.close();
    }

    /// Starts the rows that may go now; answers how long to wait before looking again.
    fn start_ready(
        self: &Arc<Self>,
        tasks: &tokio_util::task::TaskTracker,
    ) -> std::io::Result<Duration> {
        let attached = self.attached.read();
        let mut state = self.state.lock();
        let now = Instant::now();
        let mut wait = Duration::from_secs(2);
        let mut busy: HashMap<String, usize> = HashMap::new();
        let mut touched: HashSet<(String, String)> = HashSet::new();
        let mut refused: Vec<(i64, String)> = Vec::new();
        for row in state.in_flight.iter().filter_map(|id| state.rows.get(id)) {
            *busy.entry(row.connection.clone()).or_default() += 1;
            touched.extend(row_paths(row));
        }
        // Rows whose latest change is not in the store yet wait for it.
        let unsaved: HashSet<i64> = state
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(row) => row.id,
                Op::Delete(id, _) => *id,
            })
            .collect();
        let mut start = Vec::new();
        let mut held = Vec::new();
        for row in state.rows.values() {
            if row.failed.is_some()
                || state.in_flight.contains(&row.id)
                || unsaved.contains(&row.id)
            {
                continue;
            }
            if let Some(&at) = state.not_before.get(&row.id)
                && at > now
            {
                wait = wait.min(at - now);
                continue;
            }
            let Some(connection) = attached.connections.get(&row.connection) else {
                continue;
            };
            if connection.health.is_disabled() {
                if state.waiters.get(&row.id).is_some_and(|w| !w.is_closed()) {
                    // A client waits at close for SharePoint's verdict: it hears the refusal
                    // now, and nothing is kept (as for any refusal it hears).
                    refused.push((row.id, row.connection.clone()));
                    continue;
                }
                // Looked at again every second: enabling the connection lets the row go.
                wait = wait.min(Duration::from_secs(1));
                held.push(row.id);
                continue;
            }
            let limit = attached.workers.get(&row.connection).copied();
            let running = busy.entry(row.connection.clone()).or_default();
            let paths = row_paths(row);
            if *running >= limit.unwrap_or(DEFAULT_WORKERS)
                || paths.iter().any(|p| touched.contains(p))
            {
                // Later rows of other paths may still go; this path waits its turn.
                touched.extend(paths);
                continue;
            }
            *running += 1;
            touched.extend(paths);
            start.push((row.id, connection.clone()));
        }
        let seen = Utc::now();
        state.held_at.extend(held.into_iter().map(|id| (id, seen)));
        for (id, connection) in refused {
            if let Some(waiter) = state.waiters.remove(&id) {
                state.forget(id)?;
                let why = "its credentials were refused (see the connection's alert)";
                let _ = waiter.send(Err(graph::Error::disabled(&connection, why)));
            }
        }
        for (id, connection) in start {
            state.in_flight.insert(id);
            state.not_before.remove(&id);
            tasks.spawn(deliver::deliver(self.clone(), id, connection));
        }
        Ok(wait)
    }

    fn row(&self, id: i64) -> Option<Row> {
        self.state.lock().rows.get(&id).cloned()
    }

    /// Records a new upload session's URL before any fragment is sent.
    async fn set_url(&self, id: i64, url: &str) -> std::io::Result<()> {
        self.update(id, |row| row.upload_url = Some(url.to_string()))
            .await
    }

    /// Records that the row's content is in SharePoint.
    async fn set_uploaded(&self, id: i64) -> std::io::Result<()> {
        self.update(id, |row| {
            row.uploaded = true;
            row.upload_url = None;
        })
        .await
    }

    async fn update(&self, id: i64, change: impl FnOnce(&mut Row)) -> std::io::Result<()> {
        {
            let mut state = self.state.lock();
            let Some(row) = state.rows.get_mut(&id) else {
                return Ok(());
            };
            change(row);
            let row = row.clone();
            state.ops.push(Op::Put(Box::new(row)));
        }
        self.flush().await
    }

    /// Writes the changes made so far to the store, in order. A batch that fails is kept, to
    /// go with the next.
    async fn flush(&self) -> std::io::Result<()> {
        self.write(false).await
    }

    /// [`flush`](Self::flush), telling the server holding the queue (another process).
    async fn announce(&self) -> std::io::Result<()> {
        self.write(true).await
    }

    async fn write(&self, announce: bool) -> std::io::Result<()> {
        let _one = self.writing.lock().await;
        self.write_held(announce).await
    }

    /// [`write`](Self::write), with `writing` held. The changes leave memory only once they
    /// are committed (a write called off half-way loses none); files of deleted rows are
    /// removed then too, never before their rows are gone from the store.
    async fn write_held(&self, announce: bool) -> std::io::Result<()> {
        let (ops, next_id) = {
            let state = self.state.lock();
            (state.ops.clone(), state.next_id)
        };
        if ops.is_empty() && !announce {
            return Ok(());
        }
        db::write(&self.store, &self.owner, &ops, next_id, announce)
            .await
            .map_err(io)?;
        let done: Vec<Op> = self.state.lock().ops.drain(..ops.len()).collect();
        for op in done {
            if let Op::Delete(_, file) = op {
                match std::fs::remove_file(self.dir.join(&file)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(file, error = %crate::logging::chain(&e), "upload queue: removing a finished file failed");
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Re-reads the rows when another process changed them (`spgate queue retry|discard`);
    /// rows in flight keep their in-memory state.
    async fn refresh(&self) -> std::io::Result<()> {
        let counter = self.store.counters().await.map_err(io)?.queue;
        if counter == self.state.lock().seen {
            return Ok(());
        }
        // Held until the rows read are in place: no write lands between the read and the swap.
        let _one = self.writing.lock().await;
        self.write_held(false).await?;
        let stored = db::load(&self.store, &self.owner).await.map_err(io)?;
        let mut state = self.state.lock();
        if !state.ops.is_empty() {
            // Changed meanwhile: the next look reads again.
            return Ok(());
        }
        let mut rows: BTreeMap<i64, Row> = stored.into_iter().map(|r| (r.id, r)).collect();
        for id in &state.in_flight {
            if let Some(row) = state.rows.get(id) {
                rows.insert(*id, row.clone());
            }
        }
        state.rows = rows;
        state.seen = counter;
        Ok(())
    }

    /// Ends a delivered row if it is still as `seen` (no rename, delete or time change came in
    /// meanwhile): the row and its file go. False when it changed.
    async fn complete_if(&self, seen: &Row) -> std::io::Result<bool> {
        {
            let mut state = self.state.lock();
            if state.rows.get(&seen.id) != Some(seen) {
                return Ok(false);
            }
            state.forget(seen.id)?;
            state.in_flight.remove(&seen.id);
        }
        // Written before the worker ends: a row coming back after a crash would upload an old
        // copy again, over whatever became of the file since.
        self.flush().await?;
        Ok(true)
    }

    /// Ends an attempt: hands the verdict to a waiting client, schedules a retry, or
    /// quarantines. Reports deliveries and final failures.
    /// `None`: the row went away before the attempt began.
    async fn finish(&self, id: i64, outcome: Option<deliver::Outcome>) {
        let quarantined = match outcome {
            Some(outcome) => self.settle(id, outcome),
            None => {
                self.state.lock().in_flight.remove(&id);
                None
            }
        };
        if let Err(e) = self.flush().await {
            tracing::error!(error = %crate::logging::chain(&e), "upload queue: saving the outcome of an upload failed (retried with the next change)");
        }
        if let Some((message, action)) = quarantined {
            let source = self.alert_source(id);
            let raised = crate::connections::health::raise(
                &self.store,
                &source,
                "upload_failed",
                &message,
                &action,
            );
            if let Err(e) = raised.await {
                tracing::error!(error = %crate::logging::chain(&e), "upload queue: raising the alert failed");
            }
        }
        self.wake.notify_one();
        self.done.notify_waiters();
    }

    /// Settles an attempt (see [`Queue::finish`]); answers the alert to raise (message and
    /// action) when the file was quarantined.
    fn settle(&self, id: i64, outcome: deliver::Outcome) -> Option<(String, String)> {
        let attached = self.attached.read();
        let mut state = self.state.lock();
        state.in_flight.remove(&id);
        // A client that stopped waiting (close:N answered "queued") is no waiter any more.
        let waiter = state.waiters.remove(&id).filter(|w| !w.is_closed());
        let report = |row: &Row, item_id: Option<&str>, error: Option<&str>| {
            if let Some(on_delivery) = &attached.on_delivery {
                on_delivery(&Delivery {
                    origin: &row.origin,
                    connection: &row.connection,
                    size: row.size,
                    item_id,
                    error,
                });
            }
        };
        match outcome {
            deliver::Outcome::Delivered(row, entry) => {
                report(&row, entry.as_ref().map(|e| e.id.as_str()), None);
                if let (Some(waiter), Some(entry)) = (waiter, entry) {
                    let _ = waiter.send(Ok(entry));
                }
                None
            }
            deliver::Outcome::Failed(error) => {
                let mut row = state.rows.get(&id).cloned()?;
                let transient = deliver::transient(&error);
                let since = state
                    .held_at
                    .get(&id)
                    .map_or(row.queued_at, |held| row.queued_at.max(*held));
                let waited_out = (Utc::now() - since).to_std().unwrap_or_default();
                if deliver::held(&error) && waiter.is_none() {
                    state.held_at.insert(id, Utc::now());
                    // The connection is disabled: the row waits, without counting an attempt,
                    // until it is enabled again (the workers skip a disabled connection's rows).
                    tracing::warn!(connection = %row.connection, path = %row.origin.vpath, "upload queue: the connection is disabled; the upload waits until it is enabled");
                    state.ops.push(Op::Put(Box::new(row.clone())));
                    state.rows.insert(id, row);
                    return None;
                }
                if transient && waited_out < GIVE_UP_AFTER {
                    row.attempts += 1;
                    let pause =
                        Duration::from_secs(1 << row.attempts.min(8)).min(Duration::from_secs(300));
                    tracing::warn!(connection = %row.connection, path = %row.origin.vpath, error = %crate::logging::chain(&error), attempt = row.attempts, ?pause, "upload queue: upload failed; retrying");
                    state.not_before.insert(id, Instant::now() + pause);
                    if let Some(waiter) = waiter {
                        // The client stops waiting: the upload goes on from the queue.
                        drop(waiter);
                    }
                    state.ops.push(Op::Put(Box::new(row.clone())));
                    state.rows.insert(id, row);
                    return None;
                }
                if let Some(waiter) = waiter {
                    // The client is still waiting and hears the refusal: nothing to keep.
                    let _ = state.forget(id);
                    let _ = waiter.send(Err(error));
                    return None;
                }
                let reason = error.to_string();
                report(&row, None, Some(&reason));
                if let Err(e) = state.quarantine(&self.dir, &mut row, &reason) {
                    tracing::error!(error = %crate::logging::chain(&e), "upload queue: quarantining failed");
                }
                let message = format!(
                    "the upload of {} ({} bytes, user {}) to connection {} failed: {reason}",
                    row.origin.vpath, row.size, row.origin.user, row.connection
                );
                let action = format!(
                    "fix the cause, then `spgate queue retry {id}` (or `spgate queue discard {id}`); the file is kept in {}",
                    self.dir.join(&row.file).display()
                );
                Some((message, action))
            }
        }
    }
}

impl Queue {
    /// The alert source of quarantined upload `id`: `queue:ID@OWNER` (the owner's first eight
    /// characters: instances sharing a store number their uploads alike).
    pub fn alert_source(&self, id: i64) -> String {
        let owner: String = self.owner.chars().take(8).collect();
        format!("queue:{id}@{owner}")
    }
}

/// The (connection, path) pairs a row's worker touches.
fn row_paths(row: &Row) -> Vec<(String, String)> {
    let mut paths = vec![(row.connection.clone(), row.path.clone())];
    if let Some(target) = row.target.as_ref().filter(|t| **t != row.path) {
        paths.push((row.connection.clone(), target.clone()));
    }
    paths
}

impl State {
    /// The newest row that shows at `path`.
    fn visible(&self, connection: &str, path: &str) -> Option<&Row> {
        self.rows
            .values()
            .rev()
            .find(|r| r.live_target(connection) == Some(path))
    }

    /// Whether the row can still change where it uploads to: not started, nothing sent.
    fn movable(&self, id: i64) -> bool {
        !self.in_flight.contains(&id) && !self.rows[&id].uploaded
    }

    /// Everything queued to end at `path` gives way to a newer file.
    fn supersede(&mut self, connection: &str, path: &str) -> std::io::Result<()> {
        let older: Vec<i64> = self
            .rows
            .values()
            .filter(|r| r.live_target(connection) == Some(path))
            .map(|r| r.id)
            .collect();
        for id in older {
            self.drop_or_orphan(id)?;
        }
        Ok(())
    }

    /// Drops a row not started yet; one already under way is let finish and then deleted.
    fn drop_or_orphan(&mut self, id: i64) -> std::io::Result<()> {
        if self.movable(id) {
            return self.forget(id);
        }
        let row = self.rows.get_mut(&id).expect("row");
        row.target = None;
        let row = row.clone();
        self.ops.push(Op::Put(Box::new(row)));
        Ok(())
    }

    /// Removes a row and its file.
    fn forget(&mut self, id: i64) -> std::io::Result<()> {
        if let Some(row) = self.rows.remove(&id) {
            // The file goes once the row's deletion is committed (see `Queue::write_held`).
            self.ops.push(Op::Delete(id, row.file));
        }
        self.not_before.remove(&id);
        self.held_at.remove(&id);
        Ok(())
    }

    /// Moves a row's file to `quarantine/` and marks it failed.
    fn quarantine(&mut self, dir: &Path, row: &mut Row, reason: &str) -> std::io::Result<()> {
        let name = row
            .target
            .as_deref()
            .unwrap_or(&row.path)
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .to_string();
        let moved = format!("quarantine/{}-{name}", row.id);
        match std::fs::rename(dir.join(&row.file), dir.join(&moved)) {
            Ok(()) => row.file = moved,
            // Gone (removed by hand): the row is marked failed all the same, not tried again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        row.failed = Some(reason.to_string());
        row.upload_url = None;
        self.ops.push(Op::Put(Box::new(row.clone())));
        self.rows.insert(row.id, row.clone());
        Ok(())
    }
}
