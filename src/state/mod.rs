//! The state store: what spgate keeps that is not in the configuration file, in one database.
//! Two engines, one code path: embedded SQLite (`<state dir>/spgate.db`, the default, nothing
//! to set up) or PostgreSQL (`[state] database = "postgres://..."`, for several instances),
//! both reached through sqlx's `Any` driver with the same portable SQL.
//!
//! - [`schema`]: versioned migrations, applied at start; a newer schema is refused;
//! - [`seal`]: secrets at rest, sealed with AES-256-GCM under `[state] secret_key`;
//! - [`records`]: users, connections and sync jobs as records, each managed either by the
//!   configuration file or through the API and the CLI;
//! - [`host_keys`]: the SSH host keys, generated once;
//! - [`grants`]: the device-code connections' sign-ins (rotating refresh tokens, sealed);
//! - [`audit`]: the transfer audit, kept for `[audit] retention`;
//! - [`alerts`]: alerts raised and cleared (an open one disables its connection);
//! - [`lockouts`]: failed logins in a row per user and address;
//! - [`backup`]: backups and restores of an SQLite store; [`rekey`]: a new master key.
//!
//! The master key: `[state] secret_key` when set. Without it, an SQLite store keeps a key of
//! its own in `<state dir>/secret.key` (0600), generated on first start; a PostgreSQL store
//! refuses to start (every instance must hold the same key). A store holding sealed secrets
//! opens only with the key that sealed them: a missing or different key is refused at start,
//! before anything is served.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod console;
pub mod grants;
pub mod host_keys;
pub mod instances;
pub mod lockouts;
pub mod notify;
pub mod records;
pub mod rekey;
pub mod schema;
pub mod seal;

use std::path::{Path, PathBuf};
use std::sync::Once;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::config::{Database, Secret};
use seal::{SealError, Sealer};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state store: {0}")]
    Database(String),
    #[error(
        "the state store's schema is version {found}, newer than this spgate knows ({known}): \
         run the newer spgate, or restore a backup taken before it"
    )]
    Newer { found: i64, known: i64 },
    #[error("state store: {0}")]
    Seal(#[from] SealError),
    /// The master key is missing or unusable.
    #[error("state store: {0}")]
    Key(String),
    /// `[state]` names a store that cannot be reached as given.
    #[error("state store: {0}")]
    Config(String),
    /// An operation that cannot be done as asked (a secret for a record that has none, a
    /// restore while a server runs, a backup over an existing file...).
    #[error("state store: {0}")]
    Refused(String),
    #[error("{kind} {name} is managed by the configuration file {file}: change it there")]
    Managed {
        kind: &'static str,
        name: String,
        file: String,
    },
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        match e {
            Error::Io(e) => e,
            e => std::io::Error::other(e),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Database(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// An open state store.
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    sealer: Sealer,
    /// The schema version found at opening (0: a new store).
    found: i64,
    /// PostgreSQL: the database's URL (with its password), for the change listener.
    listen_url: Option<Secret>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?}, {:?})", self.engine, self.sealer)
    }
}

/// The meta row that proves the key: a known text sealed with it.
const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLACE: &str = "spgate_meta/key_check";

/// How [`Store::open`] treats what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Create the store (and its directory and key) if missing, and migrate it.
    Create,
    /// Only an existing store at the current schema, changed in nothing by the opening.
    Existing,
}

impl Store {
    /// Opens (creating, then migrating) the store `database` names, with the master key
    /// `secret_key` (see the module docs); `state_dir` holds an SQLite store's own key.
    pub async fn open(
        database: &Database,
        secret_key: Option<&Secret>,
        state_dir: &Path,
    ) -> Result<Store> {
        Store::opening(database, secret_key, state_dir, Opening::Create).await
    }

    /// The store `[state]` names if it exists (None for an SQLite store not made yet), opened
    /// without changing anything: no directory, file or key is made, no migration runs, and an
    /// SQLite store left alone is byte for byte as it was (what `spgate check` needs). A store
    /// of an older schema, or one in the middle of a rekey, is refused: the server brings it up
    /// to date at its next start.
    pub async fn open_existing(state: &crate::config::State) -> Result<Option<Store>> {
        if let Database::Sqlite(path) = &state.database
            && !path.exists()
        {
            return Ok(None);
        }
        let opening = Opening::Existing;
        let store = Store::opening(
            &state.database,
            state.secret_key.as_ref(),
            &state.dir,
            opening,
        );
        Ok(Some(store.await?))
    }

    async fn opening(
        database: &Database,
        secret_key: Option<&Secret>,
        state_dir: &Path,
        opening: Opening,
    ) -> Result<Store> {
        install_drivers();
        let (engine, url) = match database {
            Database::Sqlite(path) => {
                let mode = match opening {
                    Opening::Create => {
                        if let Some(parent) = path.parent() {
                            crate::fsio::ensure_private_dir(parent)?;
                        }
                        "rwc"
                    }
                    // Read-write but not create: a read-only SQLite connection leaves the WAL's
                    // -shm and -wal files behind; a read-write one that writes nothing removes
                    // them when it closes.
                    Opening::Existing => "rw",
                };
                (Engine::Sqlite, sqlite_url(path, mode)?)
            }
            Database::Postgres { url, password } => {
                let mut url = reqwest::Url::parse(url)
                    .map_err(|e| Error::Config(format!("[state] database is not a URL: {e}")))?;
                if let Some(password) = password {
                    url.set_password(Some(password.expose())).map_err(|()| {
                        Error::Config("[state] database cannot take a password".into())
                    })?;
                }
                (Engine::Postgres, url.to_string())
            }
        };
        let listen_url = (engine == Engine::Postgres).then(|| Secret::new(url.clone()));
        let sqlite = engine == Engine::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(15))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // A long write (a big library's snapshot) makes the others wait for
                        // it, not fail.
                        sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if opening == Opening::Existing {
            return match Store::existing(&pool, engine, secret_key, state_dir).await {
                Ok((sealer, found)) => Ok(Store {
                    pool,
                    engine,
                    sealer,
                    found,
                    listen_url,
                }),
                Err(e) => {
                    pool.close().await;
                    Err(e)
                }
            };
        }
        if engine == Engine::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let found = schema::migrate(&pool, engine).await?;
        let check = key_check(&pool).await?;
        let sealer = key(engine, secret_key, state_dir, check.as_deref())?;
        match check {
            Some(check) => {
                sealer.open(KEY_CHECK_PLACE, &check)?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO spgate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                )
                .bind(KEY_CHECK)
                .bind(sealer.seal(KEY_CHECK_PLACE, "spgate"))
                .execute(&pool)
                .await?;
            }
        }
        Ok(Store {
            pool,
            engine,
            sealer,
            found,
            listen_url,
        })
    }

    /// The rest of [`Store::open_existing`]: the schema must be current, the key given or on
    /// file and the one the store's secrets are sealed with. The key and the schema version.
    async fn existing(
        pool: &AnyPool,
        engine: Engine,
        secret_key: Option<&Secret>,
        state_dir: &Path,
    ) -> Result<(Sealer, i64)> {
        let found = schema::applied(pool).await?;
        if found > schema::VERSION {
            return Err(Error::Newer {
                found,
                known: schema::VERSION,
            });
        }
        if found < schema::VERSION {
            return Err(Error::Refused(format!(
                "the state store's schema is version {found}, this spgate's is {}: start the \
                 server once to bring it up to date",
                schema::VERSION
            )));
        }
        if engine == Engine::Sqlite && pending_key_file(state_dir).exists() {
            return Err(Error::Refused(
                "a rekey of the state store is under way: start the server once to finish it"
                    .into(),
            ));
        }
        let check = key_check(pool).await?;
        let sealer = match (secret_key, engine) {
            (Some(key), _) => Sealer::new(key)?,
            (None, Engine::Sqlite) => match std::fs::read_to_string(key_file(state_dir)) {
                Ok(text) => Sealer::new(&Secret::new(text))?,
                // Nothing is sealed without a key: any key opens nothing, and none is saved.
                Err(_) if check.is_none() => Sealer::new(&Sealer::generate())?,
                Err(e) => {
                    return Err(Error::Key(format!(
                        "{}: {e}",
                        key_file(state_dir).display()
                    )));
                }
            },
            (None, Engine::Postgres) => key(engine, None, state_dir, None)?,
        };
        if let Some(check) = &check {
            sealer.open(KEY_CHECK_PLACE, check)?;
        }
        Ok((sealer, found))
    }

    /// A store of its own in memory (SQLite), with the current schema and a key of its own:
    /// scratch space that vanishes with it (a sync dry run's copy of its job's state).
    pub async fn scratch() -> Result<Store> {
        install_drivers();
        // One connection, kept: each connection to `:memory:` is a database of its own.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        let found = schema::migrate(&pool, Engine::Sqlite).await?;
        Ok(Store {
            pool,
            engine: Engine::Sqlite,
            sealer: Sealer::new(&Sealer::generate())?,
            found,
            listen_url: None,
        })
    }

    /// [`Store::open`] with what `[state]` says.
    pub async fn of(state: &crate::config::State) -> Result<Store> {
        Store::open(&state.database, state.secret_key.as_ref(), &state.dir).await
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The id of the key secrets are sealed with.
    pub fn key_id(&self) -> &str {
        self.sealer.id()
    }

    /// The schema version the store had when it was opened (0: it was made then).
    pub fn found_version(&self) -> i64 {
        self.found
    }

    /// The schema version in force.
    pub async fn version(&self) -> Result<i64> {
        schema::applied(&self.pool).await
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Closes the pool's connections (an SQLite store's file can then be copied or removed).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The store's change counters (rows of `spgate_changes`): running instances poll them to put
/// in force what changed elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Users, connections, sync jobs.
    Records = 1,
    /// Alerts raised or cleared (connections disabled or enabled).
    Health = 2,
    /// Queued uploads changed by another process (`spgate queue retry|discard`).
    Queue = 3,
}

/// Both change counters, as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub records: i64,
    pub health: i64,
    pub queue: i64,
}

impl Store {
    /// The change counters: each grows with every change of its kind, wherever it was made.
    pub async fn counters(&self) -> Result<Counters> {
        let mut counters = Counters::default();
        for row in sqlx::query("SELECT id, counter FROM spgate_changes")
            .fetch_all(self.pool())
            .await?
        {
            let counter: i64 = row.try_get("counter")?;
            match row.try_get::<i64, _>("id")? {
                1 => counters.records = counter,
                2 => counters.health = counter,
                3 => counters.queue = counter,
                _ => {}
            }
        }
        Ok(counters)
    }
}

/// Bumps `counter` within `tx`.
pub(crate) async fn bump(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    counter: Counter,
) -> Result<()> {
    sqlx::query("UPDATE spgate_changes SET counter = counter + 1 WHERE id = $1")
        .bind(counter as i64)
        .execute(&mut **tx)
        .await?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::raw_sql(notify::statement(counter))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The id of a state directory, kept in `<state dir>/state.id` (made on first need): what is
/// its own in a store that several instances share (its upload queue; which of its files an
/// import took in).
pub fn dir_id(state_dir: &Path) -> std::io::Result<String> {
    let file = state_dir.join("state.id");
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(std::io::Error::other(format!(
            "{}: empty (it names this state directory)",
            file.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Made under another name, then linked into place: of two processes making it at
            // once, one id wins and both read it.
            let id = format!("{:016x}", rand::random::<u64>());
            let made = state_dir.join(format!(".state.id.{id}"));
            crate::fsio::write_private(&made, id.as_bytes())?;
            let linked = std::fs::hard_link(&made, &file);
            std::fs::remove_file(&made)?;
            match linked {
                Ok(()) => Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => dir_id(state_dir),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Marks, within `tx`, that state directory `dir`'s files of kind `what` (`alerts`, `sync`,
/// `queue`) are imported: false when they were before (nothing is to be written then).
pub(crate) async fn mark_imported(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    what: &str,
    dir: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO spgate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(format!("imported:{what}:{dir}"))
    .bind(chrono::Utc::now().to_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Renames `file` to `file.imported` (and its SQLite `-wal`/`-shm` beside it, when `sqlite`):
/// what an import took in stays for the administrator to delete. A file another process
/// renamed first is no error.
pub fn keep_imported(file: &Path, sqlite: bool) -> std::io::Result<()> {
    let suffixes: &[&str] = if sqlite { &["", "-wal", "-shm"] } else { &[""] };
    for suffix in suffixes {
        let from = PathBuf::from(format!("{}{suffix}", file.display()));
        let to = PathBuf::from(format!("{}.imported{suffix}", file.display()));
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `<state dir>/secret.key`: an SQLite store's own key when `[state] secret_key` is not set.
pub fn key_file(state_dir: &Path) -> PathBuf {
    state_dir.join("secret.key")
}

/// The master key: the configured one, or an SQLite store's own (read, or made when the store
/// holds nothing sealed yet). `sealed` is the store's key check, if it has one.
fn key(
    engine: Engine,
    configured: Option<&Secret>,
    state_dir: &Path,
    sealed: Option<&str>,
) -> Result<Sealer> {
    if let Some(key) = configured {
        return Ok(Sealer::new(key)?);
    }
    if engine == Engine::Postgres {
        return Err(Error::Key(
            "a PostgreSQL store needs [state] secret_key (the same on every instance; \
             `spgate keygen` prints one)"
                .into(),
        ));
    }
    let file = key_file(state_dir);
    settle_rekey(state_dir, sealed)?;
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Sealer::new(&Secret::new(text))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(sealed) = sealed {
                let id = Sealer::sealed_with(sealed).unwrap_or("?");
                return Err(Error::Key(format!(
                    "the store holds secrets sealed with key {id}, and there is no key: set \
                     [state] secret_key, or put back {}",
                    file.display()
                )));
            }
            let key = Sealer::generate();
            crate::fsio::write_private(&file, key.expose().as_bytes())?;
            tracing::info!(file = %file.display(), "state store: generated its secret key");
            Ok(Sealer::new(&key)?)
        }
        Err(e) => Err(Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", file.display()),
        ))),
    }
}

/// The store's key check (a known text sealed with its key), if it has one yet.
async fn key_check(pool: &AnyPool) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM spgate_meta WHERE key = $1")
        .bind(KEY_CHECK)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|row| row.try_get("value")).transpose()?)
}

/// `<state dir>/secret.key.new`: the new key of a rekey under way (see [`Store::rekey_own`]).
fn pending_key_file(state_dir: &Path) -> PathBuf {
    state_dir.join("secret.key.new")
}

/// Finishes a rekey of an SQLite store's own key that stopped between its commit and the swap of
/// the key file: when the pending key opens the store's key check, the rekey committed and the
/// pending key replaces the old one. Otherwise the pending key is left alone: a rekey may be
/// under way, and only that rekey knows whether it will commit.
fn settle_rekey(state_dir: &Path, sealed: Option<&str>) -> Result<()> {
    let pending = pending_key_file(state_dir);
    let text = match std::fs::read_to_string(&pending) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let committed = sealed.is_some_and(|sealed| {
        Sealer::new(&Secret::new(text)).is_ok_and(|new| new.open(KEY_CHECK_PLACE, sealed).is_ok())
    });
    if committed {
        std::fs::rename(&pending, key_file(state_dir))?;
        tracing::info!("state store: finished a rekey, its new key is in force");
    }
    Ok(())
}

/// Makes sqlx's `Any` driver know both engines (once per process).
fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

/// `sqlite://PATH?mode=MODE`, the path percent-encoded (it may hold `?`, `#`, `%`).
fn sqlite_url(path: &Path, mode: &str) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::Config(format!("{}: not a UTF-8 path", path.display())))?;
    let encoded: String =
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%2F", "/");
    Ok(format!("sqlite://{encoded}?mode={mode}"))
}
