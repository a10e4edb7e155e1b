//! A backend decorator that counts transfers for the metrics: bytes and files up and down, by
//! protocol and connection, each file counted once when its handle ends (a download when the
//! client closes it, an upload when it is stored or fails).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use super::{Backend, Capabilities, Entry, ReadHandle, Result, Space, WriteHandle, WriteMode};
use crate::admin::metrics::Metrics;

/// Who is transferring, for the labels.
#[derive(Clone)]
pub struct Labels {
    pub protocol: &'static str,
    /// The connection's name, or `local`.
    pub connection: String,
    pub metrics: Arc<Metrics>,
}

pub struct Metered {
    inner: Arc<dyn Backend>,
    labels: Labels,
}

impl Metered {
    pub fn new(inner: Arc<dyn Backend>, labels: Labels) -> Metered {
        Metered { inner, labels }
    }
}

struct Reader {
    inner: Box<dyn ReadHandle>,
    labels: Labels,
    bytes: u64,
    failed: bool,
}

#[async_trait]
impl ReadHandle for Reader {
    fn size(&self) -> u64 {
        self.inner.size()
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
            .transfer(l.protocol, &l.connection, "down", self.bytes, !self.failed);
    }
}

struct Writer {
    inner: Option<Box<dyn WriteHandle>>,
    labels: Labels,
}

impl Writer {
    fn count(&self, bytes: u64, ok: bool) {
        let l = &self.labels;
        l.metrics
            .transfer(l.protocol, &l.connection, "up", bytes, ok);
    }
}

#[async_trait]
impl WriteHandle for Writer {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        match &mut self.inner {
            Some(inner) => inner.write_at(offset, data).await,
            None => Ok(()),
        }
    }

    fn size(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.size())
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
        self.count(size, stored.is_ok());
        stored
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            let size = inner.size();
            inner.abort().await;
            self.count(size, false);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped without close or abort: the backend discards it; a failed upload.
        if let Some(inner) = &self.inner {
            self.count(inner.size(), false);
        }
    }
}

#[async_trait]
impl Backend for Metered {
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
            bytes: 0,
            failed: false,
        }))
    }

    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let inner = self.inner.open_write(path, mode).await?;
        Ok(Box::new(Writer {
            inner: Some(inner),
            labels: self.labels.clone(),
        }))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.inner.mkdir(path).await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        self.inner.remove_file(path).await
    }

    async fn remove_dir(&self, path: &str) -> Result<()> {
        self.inner.remove_dir(path).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to).await
    }

    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        self.inner.set_modified(path, at).await
    }

    async fn space(&self) -> Result<Option<Space>> {
        self.inner.space().await
    }
}
