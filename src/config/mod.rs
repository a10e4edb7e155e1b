//! The gateway's configuration: a TOML file plus `SPGATE_...` environment overrides, loaded in
//! two stages.
//!
//! 1. `raw.rs`: serde structs that mirror the file and deny unknown keys, filled by the `config`
//!    crate from the file and then from the environment.
//! 2. `validate.rs` (the service sections), `connections.rs`, `users.rs` (with
//!    `permissions.rs`), `syncs.rs` and `notify.rs`, sharing the parsers in `values.rs` and `secret.rs`:
//!    check every value, apply defaults, resolve secrets and produce the typed [`Config`]
//!    (`types.rs`).
//!
//! Every error names the offending key, e.g. `connections[1].client_secret: environment variable
//! SP_SECRET is not set` or `users[0].mounts[2]: give either connection+remote or local, not
//! both`, and never contains a secret's value.
//!
//! # Environment overrides
//!
//! `SPGATE_<SECTION>__<KEY>=value` overrides `<section>.<key>`, e.g. `SPGATE_SFTP__LISTEN` sets
//! `sftp.listen` (names are case-insensitive; `__` separates levels). Only variables with a
//! `__` after the prefix are read, so unrelated variables such as `SPGATE_LOG` are ignored. The
//! array sections (`[[connections]]`, `[[users]]`, `[[syncs]]`, `[[notify]]`) cannot be overridden this way;
//! give their secrets as `env:VAR` instead.
//!
//! # Relative paths
//!
//! With [`load`], relative paths in the file (`state.dir`, certificates, local directories,
//! `file:` secrets) are relative to the directory holding the file.
//!
//! See `config/example.toml` for every key with its meaning and default.

mod connections;
mod error;
mod notify;
mod permissions;
mod raw;
mod records;
mod secret;
mod syncs;
#[cfg(test)]
mod tests;
mod types;
mod users;
mod validate;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::Error;
pub use permissions::{Permission, Permissions};
/// The records as the file declares them, for the admin API's OpenAPI document.
pub use raw::{
    CertKey as CertKeyRecord, Connection as ConnectionRecord, MaxDelete as MaxDeleteRecord,
    Mount as MountRecord, Permissions as PermissionsRecord, SyncJob as SyncJobRecord,
    User as UserRecord,
};
pub use records::{Entry, Records, SecretText, Section, Source, culprit, put_secret, take_secret};
pub use secret::Secret;
pub use types::{
    Admin, AfterCopy, Audit, AuthorizedKey, CertKey, ClientLimits, Config, Conflict, Connection,
    Credential, Database, Direction, Ftp, Limits, MaxDelete, Mount, MountTarget, Names, Notify,
    NotifyChannel, Pem, Sftp, Site, Smtp, State, SyncJob, TlsRequired, UploadCommit, User, Webhook,
};

/// Prefix of the environment variables that override file values.
const ENV_PREFIX: &str = "SPGATE_";

/// Loads `path` with overrides from, and `env:` secrets resolved in, the process environment.
pub fn load(path: &Path) -> Result<Config, Error> {
    let mut env = HashMap::new();
    for (key, value) in std::env::vars_os() {
        let Ok(key) = key.into_string() else { continue };
        match value.into_string() {
            Ok(value) => {
                env.insert(key, value);
            }
            Err(_) if is_override(&key) => return Err(Error::EnvNotUnicode { var: key }),
            Err(_) => {}
        }
    }
    load_with_env(path, &env)
}

/// Like [`load`], but takes the environment (for overrides and `env:` secrets) as a map.
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let origin = path.display().to_string();
    Source::new(&text, &origin, env.clone(), true, base).assemble(&text)
}

/// Parses a configuration from a string, without environment overrides. `env:` secrets are read
/// from the process environment; relative paths stay relative to the working directory.
pub fn parse_str(toml: &str) -> Result<Config, Error> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Source::new(toml, "<string>", env, false, PathBuf::new()).assemble(toml)
}

/// The `SPGATE_<SECTION>__<KEY>` overrides among `env`; the array sections refuse them.
fn overrides(env: &HashMap<String, String>) -> Result<config::Environment, Error> {
    let overrides: config::Map<String, String> = env
        .iter()
        .filter(|(key, _)| is_override(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for var in overrides.keys() {
        let section = var[ENV_PREFIX.len()..]
            .split("__")
            .next()
            .unwrap_or_default();
        let section = section.to_ascii_lowercase();
        if ["connections", "users", "syncs", "notify"].contains(&section.as_str()) {
            return Err(Error::invalid(
                section,
                format!(
                    "{var}: array sections cannot be overridden from the environment; use env:VAR secrets"
                ),
            ));
        }
    }
    Ok(
        config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator("__")
            // Not `try_parsing(true)`: it would turn a token "0123" into 123. Typed fields parse
            // strings themselves ("true", "50"), so nothing is lost.
            .try_parsing(false)
            .source(Some(overrides)),
    )
}

/// Whether an environment variable is a configuration override: `SPGATE_` (any case) followed
/// by a name with at least one `__` level separator.
fn is_override(var: &str) -> bool {
    var.get(..ENV_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
        && var[ENV_PREFIX.len()..].contains("__")
}

/// Both stages: TOML text (+ overrides) -> raw structs -> validated [`Config`].
fn build(
    text: &str,
    origin: &str,
    environment: Option<config::Environment>,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<Config, Error> {
    check_syntax(text, origin)?;
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml));
    if let Some(environment) = environment {
        builder = builder.add_source(environment);
    }
    let raw: raw::Config = builder
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|source| match source {
            // `check_syntax` passed, so this is unlikely; its message may quote the file.
            config::ConfigError::FileParse { .. } => Error::Syntax {
                origin: origin.to_owned(),
                line: 1,
                column: 1,
                message: "the TOML parser rejected the file".to_owned(),
            },
            source => shape(origin, source),
        })?;
    validate::config(raw, &validate::Context { env, base })
}

/// Turns a deserialisation error of the `config` crate into [`Error::Shape`], restoring the dot
/// that the crate drops after an array index (`syncs[0]max_delete` -> `syncs[0].max_delete`).
fn shape(origin: &str, error: config::ConfigError) -> Error {
    use config::ConfigError as E;
    let (key, mut message, from) = match error {
        E::Type {
            unexpected,
            expected,
            key,
            origin,
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
            origin,
        ),
        E::At { error, key, origin } => (key, error.to_string(), origin),
        other => (None, other.to_string(), None),
    };
    if let Some(from) = from {
        message = format!("{message} (from {from})");
    }
    let key = key.map(|key| {
        let mut fixed = String::with_capacity(key.len() + 4);
        let mut chars = key.chars().peekable();
        while let Some(c) = chars.next() {
            fixed.push(c);
            if c == ']'
                && chars
                    .peek()
                    .is_some_and(|next| *next != '[' && *next != '.')
            {
                fixed.push('.');
            }
        }
        fixed
    });
    Error::Shape {
        origin: origin.to_owned(),
        key,
        message,
    }
}

/// Parses `text` as TOML only to report syntax errors by position, without the excerpt of the
/// offending line that the parsers' own messages include.
fn check_syntax(text: &str, origin: &str) -> Result<(), Error> {
    let Err(err) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let mut offset = err.span().map_or(0, |span| span.start).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(Error::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        message: err.message().trim_end().to_owned(),
    })
}
