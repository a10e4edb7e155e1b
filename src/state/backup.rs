//! Backups of an SQLite store, and who may replace the store's file.
//!
//! - [`backup`]: a consistent copy of the database while spgate runs (`VACUUM INTO`: one read
//!   transaction, writers go on), secrets still sealed;
//! - [`restore`]: the store replaced by a backup, with every spgate on it stopped: the backup is
//!   copied in, checked (its schema brought up to date and its key check opened with the key in
//!   force) and only then put in place; the store it replaces is kept beside it.
//! - [`Users`]: `spgate serve` holds a shared lock on `<state dir>/spgate.lock` while it runs;
//!   restore and rekey take it exclusively, so they refuse while any server uses the directory.
//!
//! A PostgreSQL store is backed up and restored with PostgreSQL's own tools (`pg_dump`,
//! `pg_restore`); both commands say so.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Error, Result, Store};
use crate::config::Database;

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

/// What [`backup`] wrote.
#[derive(Debug)]
pub struct BackedUp {
    /// The store's schema version.
    pub version: i64,
    /// The id of the key its secrets are sealed with, if it holds any.
    pub key_id: Option<String>,
}

/// Writes a consistent copy of the SQLite store `state` names to `to`: a new file, made here
/// empty with mode 0600 before anything is copied into it (never readable by others, never
/// over an existing file). The store is read as it is: no migration, no key needed, so a
/// backup taken by a newer binary before an upgrade still suits the older one.
pub async fn backup(state: &crate::config::State, to: &Path) -> Result<BackedUp> {
    let Database::Sqlite(db) = &state.database else {
        return Err(postgres_tools("backed up"));
    };
    if !db.exists() {
        return Err(Error::Refused(format!(
            "there is no state store at {}",
            db.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| Error::Refused(format!("{}: not a UTF-8 path", to.display())))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Error::Refused(format!("{}: {e}", to.display())))?;
    let copied = copy_into(db, target).await;
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    let backed_up = copied?;
    file.sync_all()?;
    Ok(backed_up)
}

/// `VACUUM INTO target` on the store at `db`, opened as it is; what it holds.
async fn copy_into(db: &Path, target: &str) -> Result<BackedUp> {
    super::install_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&super::sqlite_url(db, "rw")?)
        .await?;
    let version = super::schema::applied(&pool)
        .await
        .map_err(|_| Error::Refused(format!("{}: not spgate's state store", db.display())))?;
    let check: Option<String> = sqlx::query("SELECT value FROM spgate_meta WHERE key = $1")
        .bind(super::KEY_CHECK)
        .fetch_optional(&pool)
        .await?
        .map(|row| sqlx::Row::try_get(&row, "value"))
        .transpose()?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(BackedUp {
        version,
        key_id: check
            .as_deref()
            .and_then(super::seal::Sealer::sealed_with)
            .map(str::to_string),
    })
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's schema version before it was brought up to date.
    pub version: i64,
    /// Where the store it replaced was kept, if there was one.
    pub kept: Option<PathBuf>,
    /// Device-code sign-ins taken over from the store replaced (newer than the backup's: the
    /// backup's refresh tokens were spent since).
    pub sign_ins: usize,
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
    let prepared = prepare(db, &incoming, state).await;
    let (version, sign_ins) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    File::open(&incoming)?.sync_all()?;
    // The store replaced is kept through links: it stays in place until the rename below, so a
    // crash leaves the old store or the restored one, never none.
    let kept = match db.exists() {
        true => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let kept = sidecar(db, &format!(".before-restore-{stamp}"));
            for suffix in ["", "-wal"] {
                let live = sidecar(db, suffix);
                if live.exists() {
                    std::fs::hard_link(&live, sidecar(&kept, suffix))?;
                }
            }
            Some(kept)
        }
        false => None,
    };
    // The replaced store's log must never be applied to the restored one.
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(sidecar(db, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::rename(&incoming, db)?;
    if let Some(dir) = db.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(Restored {
        version,
        kept,
        sign_ins,
    })
}

/// Opens the copy at `incoming` as a store (bringing its schema up to date, opening its key
/// check with the key in force) and takes over the newer sign-ins of the store at `live`: the
/// backup's schema version and how many sign-ins were taken over.
async fn prepare(
    live: &Path,
    incoming: &Path,
    state: &crate::config::State,
) -> Result<(i64, usize)> {
    let key = state.secret_key.as_ref();
    let store = Store::open(&Database::Sqlite(incoming.to_path_buf()), key, &state.dir).await?;
    let found = store.found_version();
    if found == 0 {
        store.close().await;
        return Err(Error::Refused(format!(
            "{}: not a backup of spgate's state store",
            incoming.display()
        )));
    }
    let mut taken = 0;
    if live.exists() {
        let current = Store::open(&Database::Sqlite(live.to_path_buf()), key, &state.dir).await?;
        for (connection, grant) in current.grants().await? {
            let older = store
                .grant(&connection)
                .await?
                .is_none_or(|g| g.updated_at < grant.updated_at);
            if older {
                store.put_grant(&connection, &grant).await?;
                taken += 1;
            }
        }
        current.close().await;
    }
    store.close().await;
    Ok((found, taken))
}

/// `path` with `suffix` appended to its name.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
