//! Durable private files under `[state] dir`: written to a temporary name, fsynced, renamed over
//! the old file, and the directory fsynced, with mode 0600 — so a crash leaves either the old
//! or the new content, never a torn file, and no other user can read secrets.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::fsio::{ensure_private_dir, write_private};

/// Reads JSON from `path`; `None` when the file does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
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

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_private(path, &bytes)
}

/// The saved delegated sign-in of a device-code connection.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedGrant {
    pub refresh_token: String,
    pub client_id: String,
    pub tenant: String,
    pub user: Option<String>,
    pub updated: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for SavedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedGrant")
            .field("refresh_token", &"***")
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("updated", &self.updated)
            .finish()
    }
}

/// Where a connection's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
}

impl Paths {
    /// The paths under a configuration's `[state] dir`.
    pub fn of(config: &crate::config::Config) -> Paths {
        Paths {
            state_dir: config.state.dir.clone(),
        }
    }

    pub fn grant(&self, connection: &str) -> PathBuf {
        self.state_dir
            .join("tokens")
            .join(format!("{connection}.json"))
    }

    pub fn health(&self, connection: &str) -> PathBuf {
        self.state_dir
            .join("connections")
            .join(format!("{connection}.json"))
    }

    pub fn alerts(&self) -> PathBuf {
        self.state_dir.join("alerts.jsonl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_replace_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
    }
}
