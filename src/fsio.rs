//! Local file helpers shared by the storage backends, the Graph client and the state: positioned
//! reads (spools, uploads straight from a file), background writeback of files being written,
//! and private files written atomically (mode 0600, in 0700 folders).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;

/// Bytes written after which a [`Writeback`] starts an `fdatasync` in the background.
const WRITEBACK: u64 = 16 << 20;

/// Writeback of a file being written: an `fdatasync` is started in the background after every
/// 16 MiB written (when none is running), so that the sync at close has little left to do and
/// the client is not kept waiting for the whole file to reach the disk.
#[derive(Default)]
pub struct Writeback {
    /// Bytes written since the last background `fdatasync` started.
    unsynced: u64,
    /// The background `fdatasync` started last, if any.
    running: Option<JoinHandle<std::io::Result<()>>>,
}

impl Writeback {
    /// Counts `written` bytes of `file`; starts an `fdatasync` when their turn has come.
    pub async fn wrote(&mut self, file: &Arc<std::fs::File>, written: u64) -> std::io::Result<()> {
        self.unsynced += written;
        if self.unsynced < WRITEBACK || self.running.as_ref().is_some_and(|w| !w.is_finished()) {
            return Ok(());
        }
        self.settle().await?; // finished: no wait
        self.unsynced = 0;
        let file = file.clone();
        self.running = Some(tokio::task::spawn_blocking(move || {
            rustix::fs::fdatasync(&*file).map_err(std::io::Error::from)
        }));
        Ok(())
    }

    /// Waits for the background `fdatasync`, if one was started. Its error must reach the
    /// caller: the kernel reports a writeback error to one sync only, so the `fsync` at close
    /// would not see it again.
    pub async fn settle(&mut self) -> std::io::Result<()> {
        match self.running.take() {
            None => Ok(()),
            Some(sync) => sync.await.map_err(std::io::Error::other)?,
        }
    }
}

/// `len` bytes at `offset` of `file`, read on the blocking pool.
pub async fn read_at(file: &Arc<std::fs::File>, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || read_exact_at(&file, offset, len))
        .await
        .map_err(std::io::Error::other)?
}

/// The bytes of `file` from `start` to `end` in pieces of at most `piece` bytes, each read on
/// the blocking pool straight into its own buffer (no piece is read before it is asked for).
pub fn pieces(
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
    piece: usize,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::try_unfold(start, move |at| {
        let file = file.clone();
        async move {
            if at >= end {
                return Ok(None);
            }
            let n = (end - at).min(piece as u64) as usize;
            let bytes = read_at(&file, at, n).await?;
            Ok(Some((bytes, at + n as u64)))
        }
    })
}

/// `len` bytes at `offset` of `file`, read into a buffer that is not zeroed first.
pub fn read_exact_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Bytes::from(buf))
}

/// Creates `dir` (mode 0700) if needed.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replaces `path` atomically with `bytes`, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
