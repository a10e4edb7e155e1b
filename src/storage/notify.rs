//! A backend decorator that reports stored files: after a write handle closes successfully, or
//! a rename lands, it calls `on_stored`. The gateway wraps local mounts inside a pushed sync
//! folder with it, so that a partner's upload starts the sync job soon instead of at its next
//! interval.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use super::{Backend, Capabilities, Entry, ReadHandle, Result, Space, WriteHandle, WriteMode};

/// Called with the backend path of a file that was just stored.
pub type OnStored = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Notify {
    inner: Arc<dyn Backend>,
    on_stored: OnStored,
}

impl Notify {
    pub fn new(inner: Arc<dyn Backend>, on_stored: OnStored) -> Notify {
        Notify { inner, on_stored }
    }
}

struct Writer {
    inner: Box<dyn WriteHandle>,
    path: String,
    on_stored: OnStored,
}

#[async_trait]
impl WriteHandle for Writer {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        self.inner.write_at(offset, data).await
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn set_modified(&mut self, at: DateTime<Utc>) {
        self.inner.set_modified(at)
    }

    async fn close(self: Box<Self>) -> Result<Entry> {
        let entry = self.inner.close().await?;
        (self.on_stored)(&self.path);
        Ok(entry)
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

#[async_trait]
impl Backend for Notify {
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
        self.inner.open_read(path).await
    }

    async fn open_write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn WriteHandle>> {
        let inner = self.inner.open_write(path, mode).await?;
        Ok(Box::new(Writer {
            inner,
            path: path.to_string(),
            on_stored: self.on_stored.clone(),
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
        self.inner.rename(from, to).await?;
        (self.on_stored)(to);
        Ok(())
    }

    async fn set_modified(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        self.inner.set_modified(path, at).await
    }

    async fn space(&self) -> Result<Option<Space>> {
        self.inner.space().await
    }
}
