//! Where a connection's state lives ([`Paths`]): the state store (sign-ins, health, alerts) and
//! `[state] dir` (where earlier versions kept it in files, imported into the store once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::state::Store;
use crate::state::grants::Grant;

pub use crate::fsio::{ensure_private_dir, read_json, write_private};

/// A device-code connection's sign-in as earlier versions of spgate saved it, in
/// `<state dir>/tokens/NAME.json`: read once, imported into the state store, then left as
/// `NAME.json.imported`.
#[derive(Deserialize)]
struct OldGrant {
    refresh_token: String,
    client_id: String,
    tenant: String,
    user: Option<String>,
    updated: chrono::DateTime<chrono::Utc>,
}

/// Where a connection's state lives: files under `[state] dir`, and the state store (opened on
/// first need when not given).
#[derive(Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    state: crate::config::State,
    store: Arc<OnceCell<Arc<Store>>>,
    /// Only a store that exists, opened without changes, and no import of earlier versions'
    /// files (`spgate check`).
    existing_only: bool,
}

impl std::fmt::Debug for Paths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Paths({})", self.state_dir.display())
    }
}

impl Paths {
    /// The places a configuration's `[state]` names; the store is opened when first needed.
    pub fn of(config: &crate::config::Config) -> Paths {
        Paths::in_state(&config.state)
    }

    /// The places `[state]` names; the store is opened when first needed.
    pub fn in_state(state: &crate::config::State) -> Paths {
        Paths {
            state_dir: state.dir.clone(),
            state: state.clone(),
            store: Arc::default(),
            existing_only: false,
        }
    }

    /// The places of `config` for a look that changes nothing: the store is opened only if it
    /// exists, with [`Store::open_existing`], and files of earlier versions are left alone.
    pub fn existing(config: &crate::config::Config) -> Paths {
        Paths {
            existing_only: true,
            ..Paths::of(config)
        }
    }

    /// The places under `dir`, with the default state store (SQLite in `dir`).
    pub fn in_dir(dir: &Path) -> Paths {
        Paths::in_state(&crate::config::State {
            dir: dir.to_path_buf(),
            database: crate::config::Database::in_dir(dir),
            secret_key: None,
        })
    }

    /// The places of a configuration whose state store is open already.
    pub fn with_store(config: &crate::config::Config, store: Arc<Store>) -> Paths {
        Paths {
            store: Arc::new(OnceCell::new_with(Some(store))),
            ..Paths::of(config)
        }
    }

    /// The state store.
    /// The state store, opened on first need; the files an earlier version kept under
    /// `[state] dir` are imported into it then (see [`import_files`]).
    pub async fn store(&self) -> crate::state::Result<Arc<Store>> {
        self.store
            .get_or_try_init(|| async {
                if self.existing_only {
                    let store = Store::open_existing(&self.state).await?;
                    return store.map(Arc::new).ok_or_else(|| {
                        crate::state::Error::Refused(format!(
                            "there is no state store in {} yet: nobody has signed in",
                            self.state_dir.display()
                        ))
                    });
                }
                let store = Store::of(&self.state).await?;
                import_files(&store, &self.state_dir).await?;
                Ok(Arc::new(store))
            })
            .await
            .cloned()
    }

    /// Whether an earlier version's file still holds `connection`'s sign-in (imported into the
    /// store when a server or a command that may change the state next needs it).
    pub fn old_grant_exists(&self, connection: &str) -> bool {
        self.old_grant(connection).exists()
    }

    /// Closes the state store if it was opened: an SQLite store's write-ahead log is folded
    /// into its file, and its `-wal` and `-shm` files go.
    pub async fn close(&self) {
        if let Some(store) = self.store.get() {
            store.close().await;
        }
    }

    /// Where earlier versions saved a device-code connection's sign-in.
    fn old_grant(&self, connection: &str) -> PathBuf {
        self.state_dir
            .join("tokens")
            .join(format!("{connection}.json"))
    }

    /// The saved sign-in of device-code connection `connection`, from the store; a sign-in
    /// saved by an earlier version is imported into the store first (its file then left as
    /// `.imported`).
    pub async fn grant(&self, connection: &str) -> crate::state::Result<Option<Grant>> {
        let store = self.store().await?;
        if let Some(grant) = store.grant(connection).await? {
            return Ok(Some(grant));
        }
        if self.existing_only {
            return Ok(None);
        }
        let file = self.old_grant(connection);
        let Some(old) = read_json::<OldGrant>(&file)? else {
            return Ok(None);
        };
        let grant = Grant {
            refresh_token: crate::config::Secret::new(old.refresh_token),
            client_id: old.client_id,
            tenant: old.tenant,
            account: old.user,
            updated_at: old.updated.timestamp(),
            access: None,
        };
        // Another process may import it at the same moment: the first one stored is kept (a
        // later write could put back a token the first one has spent since).
        if store.add_grant(connection, &grant).await? {
            tracing::info!(connection, file = %file.display(), "imported the saved sign-in into the state store");
        }
        let mut imported = file.clone().into_os_string();
        imported.push(".imported");
        std::fs::rename(&file, &imported)?;
        store.grant(connection).await
    }

    /// Saves the sign-in of `connection` in the store.
    pub async fn save_grant(&self, connection: &str, grant: &Grant) -> crate::state::Result<()> {
        self.store().await?.put_grant(connection, grant).await
    }
}

/// Imports into `store` the connections' state an earlier version kept in files under
/// `state_dir` (alerts and connection health; sign-ins are imported one by one, when first
/// needed), leaving the files as `.imported`. Done at every start; it finds nothing to do once
/// done.
pub async fn import_files(store: &Store, state_dir: &Path) -> crate::state::Result<()> {
    super::health::import(store, state_dir).await
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
