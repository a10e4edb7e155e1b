//! Backups of an SQLite store, and who may replace the store's file.
//!
//! - [`Store::backup`]: a consistent copy of the database while spgate runs (`VACUUM INTO`: one
//!   read transaction, writers go on), secrets still sealed;
//! - [`restore`]: the store replaced by a backup, with every spgate on it stopped: the backup is
//!   copied in, checked (its schema brought up to date and its key check opened with the key in
//!   force) and only then put in place; the store it replaces is kept beside it.
//! - [`Users`]: `spgate serve` holds a shared lock on `<state dir>/spgate.lock` while it runs;
//!   restore and rekey take it exclusively, so they refuse while any server uses the directory.
//!
//! A PostgreSQL store is backed up and restored with PostgreSQL's own tools (`pg_dump`,
//! `pg_restore`); both commands say so.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Engine, Error, Result, Store};
use crate::config::{Database, Secret};

/// A lock on a state directory's store, held while it lives.
#[derive(Debug)]
pub struct Users(#[allow(dead_code)] File);

fn lock_file(state_dir: &Path) -> Result<File> {
    crate::fsio::ensure_private_dir(state_dir)?;
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("spgate.lock"))?)
}

impl Users {
    /// Held by `spgate serve` for as long as it runs; any number of servers may hold it.
    pub fn shared(state_dir: &Path) -> Result<Users> {
        let file = lock_file(state_dir)?;
        file.lock_shared()?;
        Ok(Users(file))
    }

    /// Held by a command that replaces what a running server holds in memory (restore, rekey):
    /// refused while a server runs on `state_dir`.
    pub fn alone(state_dir: &Path) -> Result<Users> {
        let file = lock_file(state_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Users(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Refused(format!(
                "spgate serve is running on {}: stop it first",
                state_dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// Why PostgreSQL stores are backed up with PostgreSQL's tools.
fn postgres_tools(what: &str) -> Error {
    Error::Refused(format!(
        "a PostgreSQL store is {what} with PostgreSQL's own tools: `pg_dump --format=custom \
         --file=FILE URL` and `pg_restore --clean --dbname=URL FILE` (see README, Backups)"
    ))
}

impl Store {
    /// Writes a consistent copy of an SQLite store to `to` (a new file, mode 0600).
    pub async fn backup(&self, to: &Path) -> Result<()> {
        if self.engine() == Engine::Postgres {
            return Err(postgres_tools("backed up"));
        }
        if to.exists() {
            return Err(Error::Refused(format!(
                "{} exists: give a new file",
                to.display()
            )));
        }
        let text = to
            .to_str()
            .ok_or_else(|| Error::Refused(format!("{}: not a UTF-8 path", to.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(text)
            .execute(self.pool())
            .await?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's schema version before it was brought up to date.
    pub version: i64,
    /// Where the store it replaced was kept.
    pub kept: PathBuf,
}

/// Replaces the SQLite store of `state` with the backup `from` (see the module docs).
pub async fn restore(state: &crate::config::State, from: &Path) -> Result<Restored> {
    let Database::Sqlite(db) = &state.database else {
        return Err(postgres_tools("restored"));
    };
    let _alone = Users::alone(&state.dir)?;
    let incoming = sidecar(db, ".restoring");
    std::fs::copy(from, &incoming)
        .map_err(|e| Error::Refused(format!("reading {}: {e}", from.display())))?;
    let checked = check(&incoming, state.secret_key.as_ref(), &state.dir).await;
    let version = match checked {
        Ok(version) => version,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let kept = sidecar(db, &format!(".before-restore-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let live = sidecar(db, suffix);
        if live.exists() {
            std::fs::rename(&live, sidecar(&kept, suffix))?;
        }
    }
    std::fs::rename(&incoming, db)?;
    if let Some(dir) = db.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(Restored { version, kept })
}

/// Opens the copy at `path` as a store (bringing its schema up to date, opening its key check
/// with the key in force) and closes it again: the backup's schema version.
async fn check(path: &Path, key: Option<&Secret>, state_dir: &Path) -> Result<i64> {
    let store = Store::open(&Database::Sqlite(path.to_path_buf()), key, state_dir).await?;
    store.close().await;
    match store.found_version() {
        0 => Err(Error::Refused(format!(
            "{}: not a backup of spgate's state store",
            path.display()
        ))),
        found => Ok(found),
    }
}

/// `path` with `suffix` appended to its name.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
