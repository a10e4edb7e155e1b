//! `spgate users|connections|syncs ...`: the records in the state store, whether `spgate serve`
//! runs or not. The command writes to the store itself; a running server follows the store's
//! change counter and puts the change in force within a second (closing the sessions of a user
//! disabled or deleted, rebuilding a changed connection, rescheduling a changed job). Changes go
//! through the same validation as the admin API's (and the file's).

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::config::{Config, Secret};
use crate::session::control::{self, Change, Refusal};
use crate::state::Store;
use crate::state::backup::Users;
use crate::state::records::Kind;
use crate::state::seal::Sealer;

/// What `spgate users add` builds a user from, when no JSON record is given.
#[derive(Debug, Default)]
pub struct NewUser {
    /// A SharePoint mount: the connection and the folder in its library.
    pub connection: Option<String>,
    pub remote: Option<String>,
    /// A local mount instead: the folder on this host.
    pub local: Option<String>,
    /// Where the mount appears (default `/`).
    pub path: Option<String>,
    /// Permissions (default `*`).
    pub permissions: Vec<String>,
    pub password_hash: Option<String>,
    pub authorized_keys: Vec<String>,
    pub allow_from: Vec<String>,
}

impl NewUser {
    /// The record the file would declare.
    pub fn record(self) -> Map<String, Value> {
        let mut mount = Map::new();
        mount.insert("path".into(), json!(self.path.as_deref().unwrap_or("/")));
        if let Some(local) = self.local {
            mount.insert("local".into(), json!(local));
        }
        if let Some(connection) = self.connection {
            mount.insert("connection".into(), json!(connection));
            mount.insert(
                "remote".into(),
                json!(self.remote.as_deref().unwrap_or("/")),
            );
        }
        let permissions = match self.permissions.as_slice() {
            [] => json!("*"),
            [one] if one == "*" => json!("*"),
            list => json!(list),
        };
        mount.insert("permissions".into(), permissions);
        let mut user = Map::new();
        if let Some(hash) = self.password_hash {
            user.insert("password_hash".into(), json!(hash));
        }
        if !self.authorized_keys.is_empty() {
            user.insert("authorized_keys".into(), json!(self.authorized_keys));
        }
        if !self.allow_from.is_empty() {
            user.insert("allow_from".into(), json!(self.allow_from));
        }
        user.insert("mounts".into(), json!([mount]));
        user
    }
}

/// Opens the state store `config` names.
/// Runs `work` on the store `config` names, then closes the store, whatever `work` answered:
/// an SQLite store's write-ahead log is folded into its file then, and its `-wal` and `-shm`
/// files go, as after a server's clean stop.
async fn with_store<T>(
    config: &Config,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = open(config).await?;
    let result = work(&store).await;
    store.close().await;
    result
}

pub async fn open(config: &Config) -> std::io::Result<Store> {
    Store::of(&config.state)
        .await
        .map_err(std::io::Error::other)
}

/// Lists the records of `kind` (`json`: as the API shows them).
pub async fn list(
    config: &Config,
    kind: Kind,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        let records = store.list(kind).await?;
        if json {
            let views: Vec<Value> = records
                .iter()
                .map(|r| control::view(kind, r, None))
                .collect();
            let mut listed = Map::new();
            listed.insert(kind.key().into(), views.into());
            writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
            return Ok(true);
        }
        if records.is_empty() {
            writeln!(out, "no {}", kind.key().replace('_', " "))?;
        }
        for record in &records {
            let fields = &record.record;
            let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or("");
            let summary = match kind {
                Kind::Users => {
                    let enabled = fields.get("enabled").and_then(Value::as_bool) != Some(false);
                    let mounts = fields
                        .get("mounts")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let state = if enabled { "enabled" } else { "disabled" };
                    format!("{state:<9} {mounts} mount(s)")
                }
                Kind::Connections => {
                    let auth = match text("auth") {
                        "" if fields.get("certificate").is_some() => "certificate",
                        "" => "client_secret",
                        auth => auth,
                    };
                    format!("{auth:<13} {} ({})", text("site"), text("drive"))
                }
                Kind::Syncs => {
                    let enabled = fields.get("enabled").and_then(Value::as_bool) != Some(false);
                    let state = if enabled { "" } else { " (disabled)" };
                    format!(
                        "{:<8} {} <-> {}:{}{state}",
                        text("direction"),
                        text("local"),
                        text("connection"),
                        text("remote"),
                    )
                }
            };
            let by = match &record.managed_by {
                Some(file) => format!("managed by {file}"),
                None => "managed through the API/CLI".to_string(),
            };
            writeln!(out, "{:<20} {summary}  {by}", record.name)?;
        }
        Ok(true)
    })
    .await
}

/// Shows one record as the API does.
pub async fn show(
    config: &Config,
    kind: Kind,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    with_store(config, async |store| match store.get(kind, name).await? {
        Some(record) => {
            let view = control::view(kind, &record, None);
            writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
            Ok(true)
        }
        None => {
            writeln!(out, "no {} named {name}", kind.one())?;
            Ok(false)
        }
    })
    .await
}

/// Saves a record (see [`control::save`]); prints what was done or why not.
pub async fn save(config: &Config, change: Change, out: &mut impl Write) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        let what = format!("{} {}", change.section.one(), change.name);
        let done = control::save(store, config, None, change).await;
        report(
            out,
            done.map(|r| format!("{what} saved (revision {})", r.revision)),
        )
    })
    .await
}

/// Enables or disables a user or a sync job, keeping the rest of its record.
pub async fn set_enabled(
    config: &Config,
    kind: Kind,
    name: &str,
    enabled: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let state = if enabled { "enabled" } else { "disabled" };
    update(
        config,
        kind,
        name,
        out,
        &format!("{} {name} {state}", kind.one()),
        |fields| {
            fields.insert("enabled".into(), enabled.into());
        },
    )
    .await
}

/// Gives a user a new password (its argon2id `hash`), keeping the rest of its record.
pub async fn set_password(
    config: &Config,
    name: &str,
    hash: String,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    update(
        config,
        Kind::Users,
        name,
        out,
        &format!("user {name}: password changed"),
        |fields| {
            fields.insert("password_hash".into(), hash.into());
        },
    )
    .await
}

/// Saves record `name` with `change` made to its stored fields; prints `done` or why not.
async fn update(
    config: &Config,
    kind: Kind,
    name: &str,
    out: &mut impl Write,
    done: &str,
    change: impl FnOnce(&mut Map<String, Value>),
) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        let Some(record) = store.get(kind, name).await? else {
            return report(
                out,
                Err(Refusal::NotFound(format!("{} named {name}", kind.one()))),
            );
        };
        let mut fields = match record.record {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        change(&mut fields);
        let change = Change {
            section: kind,
            name: name.to_string(),
            fields,
            create: false,
        };
        let saved = control::save(store, config, None, change).await;
        report(out, saved.map(|_| done.to_string()))
    })
    .await
}

/// Deletes a record.
pub async fn delete(
    config: &Config,
    kind: Kind,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        let done = control::delete(store, kind, name).await;
        report(out, done.map(|()| format!("{} {name} deleted", kind.one())))
    })
    .await
}

/// `spgate backup FILE`: a consistent copy of an SQLite store, taken while spgate runs or not.
pub async fn backup(config: &Config, to: &Path, out: &mut impl Write) -> anyhow::Result<bool> {
    let done = crate::state::backup::backup(&config.state, to).await?;
    let key = match &done.key_id {
        Some(id) => format!(
            "its secrets are sealed with key {id}, which is not in the backup: keep the key with it"
        ),
        None => "it holds no sealed secret".to_string(),
    };
    writeln!(
        out,
        "state store backed up to {} (schema version {}); {key}",
        to.display(),
        done.version,
    )?;
    Ok(true)
}

/// `spgate restore FILE`: the SQLite store replaced by a backup, spgate stopped.
pub async fn restore(config: &Config, from: &Path, out: &mut impl Write) -> anyhow::Result<bool> {
    let restored = crate::state::backup::restore(&config.state, from).await?;
    writeln!(
        out,
        "state store restored from {} (schema version {}, now {})",
        from.display(),
        restored.version,
        crate::state::schema::VERSION,
    )?;
    if let Some(kept) = &restored.kept {
        writeln!(out, "the store it replaced is kept as {}", kept.display())?;
    }
    if restored.sign_ins > 0 {
        writeln!(
            out,
            "{} device-code sign-in(s) taken over from the replaced store (the backup's were spent since)",
            restored.sign_ins
        )?;
    }
    Ok(true)
}

/// `spgate rekey [--to KEY]`: every secret sealed again with a new master key, spgate stopped.
/// A store keeping its own key gets a new one (or `to`) in `<state dir>/secret.key`; with
/// `[state] secret_key` set, `to` is required and the operator puts it in the file afterwards.
pub async fn rekey(
    config: &Config,
    to: Option<Secret>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let _alone = Users::alone(&config.state.dir)?;
    let own = config.state.secret_key.is_none();
    let new = match (to, own) {
        (Some(key), _) => key,
        (None, true) => Sealer::generate(),
        (None, false) => {
            writeln!(
                out,
                "refused: [state] secret_key is set, so give the new key with --to (env:VAR, \
                 file:PATH or the key; `spgate keygen` prints one)"
            )?;
            return Ok(false);
        }
    };
    let id = Sealer::new(&new)?.id().to_string();
    with_store(config, async |store| {
        let old = store.key_id().to_string();
        let (count, kept) = match own {
            true => {
                let (count, kept) = store.rekey_own(&config.state.dir, &new).await?;
                (count, Some(kept))
            }
            false => (store.rekey(&new).await?, None),
        };
        writeln!(
            out,
            "{count} secret(s) sealed again: key {old} replaced by key {id}"
        )?;
        match kept {
            Some(kept) => writeln!(
                out,
                "{} holds the new key; the old one is kept as {} (backups taken before need it)",
                crate::state::key_file(&config.state.dir).display(),
                kept.display()
            )?,
            None => writeln!(
                out,
                "now set [state] secret_key to the new key on every instance, then start spgate; \
                 keep the old key for the backups taken before"
            )?,
        }
        Ok(true)
    })
    .await
}

fn report(out: &mut impl Write, done: Result<String, Refusal>) -> anyhow::Result<bool> {
    match done {
        Ok(line) => {
            writeln!(out, "{line}")?;
            Ok(true)
        }
        Err(refusal) => {
            writeln!(out, "refused: {refusal}")?;
            Ok(false)
        }
    }
}

/// Whether `name` may name a console administrator: 1 to 64 letters, digits and `.`, `_`, `-`,
/// `@`.
pub fn admin_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// `spgate admins add` and `passwd`: gives administrator `name` the password whose argon2id
/// hash is `hash` (`create`: only a new one; else only an existing one). Its open console
/// sessions end.
pub async fn put_admin(
    config: &Config,
    name: &str,
    hash: &str,
    create: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    if !admin_name_ok(name) {
        writeln!(
            out,
            "error: an administrator's name is 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )?;
        return Ok(false);
    }
    with_store(config, async |store| {
        let exists = store.admin_hash(name).await?.is_some();
        if exists == create {
            let why = if create {
                "already exists"
            } else {
                "does not exist"
            };
            writeln!(out, "error: administrator {name} {why}")?;
            return Ok(false);
        }
        store.put_admin(name, hash).await?;
        let done = if create { "added" } else { "password changed" };
        writeln!(out, "administrator {name}: {done}")?;
        Ok(true)
    })
    .await
}

/// `spgate admins list`.
pub async fn list_admins(config: &Config, out: &mut impl Write) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        let admins = store.admins().await?;
        if admins.is_empty() {
            writeln!(
                out,
                "no administrators: add one with `spgate admins add NAME` to use the web console"
            )?;
        }
        for admin in admins {
            let since = chrono::DateTime::from_timestamp(admin.created_at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            writeln!(out, "{}\tadded {since}", admin.name)?;
        }
        Ok(true)
    })
    .await
}

/// `spgate admins remove`.
pub async fn remove_admin(
    config: &Config,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    with_store(config, async |store| {
        if store.delete_admin(name).await? {
            writeln!(
                out,
                "administrator {name} removed; its console sessions ended"
            )?;
            Ok(true)
        } else {
            writeln!(out, "error: administrator {name} does not exist")?;
            Ok(false)
        }
    })
    .await
}
