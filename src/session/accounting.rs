//! The session layer's accounting, as a decorator around each mount's backend: it counts
//! transfers for the metrics (bytes and files up and down, by protocol and connection, each
//! file once when its handle ends: a download when the client closes it, an upload when it is
//! stored or fails), writes the audit log (uploads, downloads, deletes, renames, mkdir and
//! rmdir as they succeed; what fails is audited by [`Failures`], which a user's vfs tells of
//! every failed operation, so a refusal is audited whichever layer refused it), and
//! publishes [`Event::Stored`] for each file stored (an upload closed, a rename landed): the
//! sync scheduler subscribes, so that a partner's upload into a pushed folder starts its job
//! soon instead of at its next interval. The backends themselves account for nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use super::metrics::Metrics;
use crate::audit::{Audit, event};
use crate::events::{Event, Events, Place};
use crate::storage::{
    Backend, Capabilities, Entry, Error, ErrorKind, ReadHandle, Result, Space, WriteHandle,
    WriteMode,
};

/// Who is transferring, for the metrics' labels and the audit log.
#[derive(Clone)]
pub struct Labels {
    pub protocol: &'static str,
    pub metrics: Arc<Metrics>,
    pub user: String,
    pub peer: Option<IpAddr>,
    /// The mount's virtual path, to report users' paths.
    pub mount: String,
    pub audit: Arc<Audit>,
    /// Where the mount's files are: names the connection, and the files stored.
    pub base: Place,
    pub events: Arc<Events>,
}

impl Labels {
    /// The connection's name, or `local` for a local mount.
    fn connection(&self) -> &str {
        match &self.base {
            Place::Local(_) => "local",
            Place::SharePoint { connection, .. } => connection,
        }
    }

    /// Announces that the file at the backend path `path` was stored.
    fn stored(&self, path: &str) {
        let relative = path.trim_start_matches('/');
        let place = match &self.base {
            Place::Local(dir) => Place::Local(dir.join(relative)),
            Place::SharePoint { connection, path } => Place::SharePoint {
                connection: connection.clone(),
                path: format!("{}/{relative}", path.trim_end_matches('/')),
            },
        };
        self.events.publish(Event::Stored(place));
    }

    fn vpath(&self, path: &str) -> String {
        match (self.mount.as_str(), path) {
            ("/", p) => p.to_string(),
            (m, "/") => m.to_string(),
            (m, p) => format!("{m}{p}"),
        }
    }

    fn audit(
        &self,
        action: &str,
        path: &str,
        size: Option<u64>,
        item_id: Option<&str>,
        started: Instant,
        error: Option<&str>,
    ) {
        let vpath = self.vpath(path);
        let mut e = event(
            action,
            &self.user,
            self.protocol,
            self.peer,
            &vpath,
            error.is_none(),
        )
        .duration(started.elapsed());
        e.size = size;
        e.item_id = item_id;
        e.connection = Some(self.connection());
        e.error = error;
        self.audit.record(&e);
        if let Some(bytes) = size {
            self.log_transfer(action, &vpath, bytes, started.elapsed(), error);
        }
    }

    /// One line per finished transfer, for both protocols: who, from where, what, how much and
    /// how fast; at info level, or warn when it failed.
    fn log_transfer(
        &self,
        action: &str,
        vpath: &str,
        bytes: u64,
        took: std::time::Duration,
        error: Option<&str>,
    ) {
        let seconds = took.as_secs_f64();
        let rate = if seconds > 0.0 {
            bytes as f64 / 1e6 / seconds
        } else {
            0.0
        };
        let (seconds, mb_per_s) = (format!("{seconds:.3}"), format!("{rate:.2}"));
        let (user, protocol, connection) = (&self.user, self.protocol, self.connection());
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        match error {
            None => tracing::info!(
                %protocol, %user, %peer, path = vpath, %connection, bytes, %seconds, %mb_per_s,
                "{action} completed"
            ),
            Some(error) => tracing::warn!(
                %protocol, %user, %peer, path = vpath, %connection, bytes, %seconds, %mb_per_s,
                error, "{action} failed"
            ),
        }
    }
}

pub struct Accounted {
    inner: Arc<dyn Backend>,
    labels: Labels,
}

impl Accounted {
    pub fn new(inner: Arc<dyn Backend>, labels: Labels) -> Accounted {
        Accounted { inner, labels }
    }

    /// The item id of `path` before it is deleted or renamed, for the audit line (SharePoint
    /// keeps an item's id across renames). The backend's metadata cache usually answers.
    async fn id_of(&self, path: &str) -> Option<String> {
        if !self.inner.capabilities().item_ids {
            return None;
        }
        self.inner.stat(path).await.ok().and_then(|e| e.id)
    }
}

struct Reader {
    inner: Box<dyn ReadHandle>,
    labels: Labels,
    path: String,
    started: Instant,
    bytes: u64,
    failed: bool,
}

#[async_trait]
impl ReadHandle for Reader {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn id(&self) -> Option<&str> {
        self.inner.id()
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let read = self.inner.read_at(offset, len).await;
        match &read {
            Ok(data) => self.bytes += data.len() as u64,
            Err(_) => self.failed = true,
        }
        read
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let l = &self.labels;
        l.metrics
            .transfer(l.protocol, l.connection(), "down", self.bytes, !self.failed);
        let error = self.failed.then_some("a read failed");
        l.audit(
            "download",
            &self.path,
            Some(self.bytes),
            self.inner.id(),
            self.started,
            error,
        );
    }
}

struct Writer {
    inner: Option<Box<dyn WriteHandle>>,
    labels: Labels,
    path: String,
    started: Instant,
}

impl Writer {
    fn count(&self, bytes: u64, item_id: Option<&str>, error: Option<&str>) {
        let l = &self.labels;
        l.metrics
            .transfer(l.protocol, l.connection(), "up", bytes, error.is_none());
        l.audit(
            "upload",
            &self.path,
            Some(bytes),
            item_id,
            self.started,
            error,
        );
    }
}

#[async_trait]
impl WriteHandle for Writer {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        match &mut self.inner {
            Some(inner) => inner.write_at(offset, data).await,
            None => Ok(()),
        }
    }

    fn size(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.size())
    }

    async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        match &mut self.inner {
            Some(inner) => inner.read_at(offset, len).await,
            None => Ok(Bytes::new()),
        }
    }

    fn set_modified(&mut self, at: DateTime<Utc>) {
        if let Some(inner) = &mut self.inner {
            inner.set_modified(at)
        }
    }

    async fn close(mut self: Box<Self>) -> Result<Entry> {
        let inner = self.inner.take().expect("closed once");
        let size = inner.size();
        let stored = inner.close().await;
        match &stored {
            Ok(entry) => {
                self.count(size, entry.id.as_deref(), None);
                self.labels.stored(&self.path);
            }
            Err(e) => self.count(size, None, Some(&e.to_string())),
        }
        stored
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            let size = inner.size();
            inner.abort().await;
            self.count(size, None, Some("the upload was abandoned"));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped without close or abort: the backend discards it; a failed upload.
        if let Some(inner) = &self.inner {
            self.count(inner.size(), None, Some("the upload was abandoned"));
        }
    }
}

#[async_trait]
impl Backend for Accounted {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.inner.stat(path).await
    }

    async fn list(&self, path: &str) -> Result<BoxStream<'static, Result<Vec<Entry>>>> {
        self.inner.list(path).await
    }

    async fn open_read(&self, path: &str) -> Result<Box<dyn ReadHandle>> {
        let inner = self.inner.open_read(path).await?;
        Ok(Box::new(Reader {
            inner,
            labels: self.labels.clone(),
            path: path.to_string(),
            started: Instant::now(),
            bytes: 0,
            failed: false,
        }))
    }

    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let inner = self.inner.open_write(path, mode).await?;
        Ok(Box::new(Writer {
            inner: Some(inner),
            labels: self.labels.clone(),
            path: path.to_string(),
            started: Instant::now(),
        }))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let started = Instant::now();
        self.inner.mkdir(path).await?;
        self.labels.audit("mkdir", path, None, None, started, None);
        Ok(())
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        let started = Instant::now();
        let id = self.id_of(path).await;
        self.inner.remove_file(path).await?;
        self.labels
            .audit("delete", path, None, id.as_deref(), started, None);
        Ok(())
    }

    async fn remove_dir(&self, path: &str) -> Result<()> {
        let started = Instant::now();
        self.inner.remove_dir(path).await?;
        self.labels.audit("rmdir", path, None, None, started, None);
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let started = Instant::now();
        let id = self.id_of(from).await;
        self.inner.rename(from, to).await?;
        let l = &self.labels;
        let (from_v, to_v) = (l.vpath(from), l.vpath(to));
        let mut e =
            event("rename", &l.user, l.protocol, l.peer, &from_v, true).duration(started.elapsed());
        e.to = Some(&to_v);
        e.item_id = id.as_deref();
        e.connection = Some(l.connection());
        l.audit.record(&e);
        l.stored(to);
        Ok(())
    }

    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        self.inner.set_modified(path, at).await
    }

    async fn space(&self) -> Result<Option<Space>> {
        self.inner.space().await
    }
}

/// Audits what a user's vfs tells of failed operations: each refused or failed operation is
/// one line with outcome `denied` (the gateway's rules refused it: permissions, names) or
/// `failed`, its `reason` (the error's kind, as [`ErrorKind::code`] names it) and the error
/// the client was answered with. A `stat` of a missing file, or of one the user may not see,
/// is routine for clients (they ask before they upload) and is left out.
pub struct Failures {
    pub user: String,
    pub protocol: &'static str,
    pub peer: Option<IpAddr>,
    pub audit: Arc<Audit>,
}

impl crate::vfs::Failures for Failures {
    fn failed(&self, action: &'static str, vpath: &str, to: Option<&str>, error: &Error) {
        let routine = matches!(
            error.kind,
            ErrorKind::NotFound | ErrorKind::PermissionDenied
        );
        if action == "stat" && routine {
            return;
        }
        let mut e = event(action, &self.user, self.protocol, self.peer, vpath, false);
        if error.kind.is_refusal() {
            e.outcome = "denied";
        }
        e.reason = Some(error.kind.code());
        e.to = to;
        e.error = Some(&error.message);
        self.audit.record(&e);
    }
}
