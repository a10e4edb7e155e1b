//! The configuration in force, from the file and the state store together: the file's
//! `[[users]]`, `[[connections]]` and `[[syncs]]` are provisioned into the store (at start and
//! on every reload), and the configuration in force is the file's service sections with every
//! record the store holds, the file's and those made through the API and the CLI, validated as
//! one whole by the configuration's own code.
//!
//! A record made through the API that no longer validates (its connection was deleted from the
//! file, an `env:` variable went away) is left out with an error in the log, so that one bad
//! record cannot keep the gateway from starting; a record of the file that does not validate
//! is the file's error, as it always was.

use serde_json::{Map, Value, json};

use crate::config::{self, Config, Entry, Records, SecretText, Section, culprit};
use crate::events::Events;
use crate::state::records::{By, Record, SecretWrite};
use crate::state::{self, Store};

/// Puts the records `file` declares into `store`, and deletes those it no longer declares.
pub async fn provision(store: &Store, file: &Config) -> Result<(), String> {
    let origin = file.source.origin();
    let done = store
        .provision(origin, file.source.declared())
        .await
        .map_err(|e| format!("provisioning {origin}: {e}"))?;
    for (kind, name) in &done.written {
        tracing::info!(
            file = origin,
            kind = kind.one(),
            name,
            "provisioned from the configuration file"
        );
    }
    for (kind, name) in &done.deleted {
        tracing::info!(
            file = origin,
            kind = kind.one(),
            name,
            "deleted: the configuration file no longer declares it"
        );
    }
    Ok(())
}

/// The configuration in force: `file`'s service sections with the records of `store`.
pub async fn assemble(store: &Store, file: &Config) -> Result<Config, String> {
    let (records, managers) = store.records().await.map_err(|e| e.to_string())?;
    settle(file, records, &managers, None).map_err(|e| e.to_string())
}

/// The configuration the operator's commands see (`spgate sync run`, `connections`, `check`),
/// whether a server runs or not: the records as `file` declares them now, and those made
/// through the API and the CLI, from `store`.
pub async fn assemble_for_commands(store: &Store, file: &Config) -> Result<Config, String> {
    let (stored, managers) = store.records().await.map_err(|e| e.to_string())?;
    let mut records = file.source.declared().clone();
    for section in Section::ALL {
        for entry in stored.of(section) {
            let by_api = manager(managers.as_slice(), section, &entry.name) == Some(None);
            let declared = records.of(section).iter().any(|e| e.name == entry.name);
            if by_api && !declared {
                records.of_mut(section).push(entry.clone());
            }
        }
    }
    settle(file, records, &managers, None).map_err(|e| e.to_string())
}

/// The configuration `entry` would make, saved as a record of `section` (in place of the one of
/// that name), or the validation error about it. Other records that do not validate are left
/// out, as [`assemble`] leaves them out.
pub async fn check(
    store: &Store,
    file: &Config,
    section: Section,
    entry: &Entry,
) -> Result<Result<Config, config::Error>, String> {
    let (mut records, managers) = store.records().await.map_err(|e| e.to_string())?;
    let list = records.of_mut(section);
    match list.iter().position(|e| e.name == entry.name) {
        Some(i) => list[i] = entry.clone(),
        None => list.push(entry.clone()),
    }
    Ok(settle(
        file,
        records,
        &managers,
        Some((section, &entry.name)),
    ))
}

/// Validates `file` with `records`, leaving out, one at a time, records made through the API
/// that an error is about, unless it is the `candidate` being saved.
fn settle(
    file: &Config,
    mut records: Records,
    managers: &[(Section, String, Option<String>)],
    candidate: Option<(Section, &str)>,
) -> Result<Config, config::Error> {
    loop {
        let error = match file.with_records(&records) {
            Ok(config) => return Ok(config),
            Err(error) => error,
        };
        let Some((section, index)) = culprit(&error) else {
            return Err(error);
        };
        let Some(entry) = records.of(section).get(index) else {
            return Err(error);
        };
        let managed = matches!(manager(managers, section, &entry.name), Some(Some(_)));
        if managed || candidate == Some((section, entry.name.as_str())) {
            return Err(error);
        }
        if candidate.is_none() {
            tracing::error!(kind = section.one(), name = entry.name, %error,
                "a record made through the API does not validate: left out until it is fixed");
        }
        records.of_mut(section).remove(index);
    }
}

/// Who manages record `name` of `section`, among `managers` (as [`Store::records`] answers
/// them): `None` if it is not stored, `Some(None)` if the API and the CLI do, else the file.
fn manager<'a>(
    managers: &'a [(Section, String, Option<String>)],
    section: Section,
    name: &str,
) -> Option<Option<&'a str>> {
    managers
        .iter()
        .find(|(kind, stored, _)| *kind == section && stored == name)
        .map(|(_, _, by)| by.as_deref())
}

/// Why a change to a record was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The configuration file `file` manages `what` (e.g. `user alice`).
    Managed {
        what: String,
        file: String,
    },
    /// A create found one of that name.
    Exists(String),
    NotFound(String),
    /// A value is not acceptable: the field within the record, if the error is about one.
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// Something else uses it.
    InUse(String),
    /// The store failed.
    Failed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Managed { what, file } => write!(
                f,
                "{what} is managed by the configuration file {file}: change it there"
            ),
            Refusal::Exists(what) => write!(f, "{what} exists"),
            Refusal::NotFound(what) => write!(f, "no {what}"),
            Refusal::Invalid { message, .. }
            | Refusal::InUse(message)
            | Refusal::Failed(message) => f.write_str(message),
        }
    }
}

impl From<state::Error> for Refusal {
    fn from(error: state::Error) -> Refusal {
        match error {
            state::Error::Managed { kind, name, file } => Refusal::Managed {
                what: format!("{kind} {name}"),
                file,
            },
            other => Refusal::Failed(other.to_string()),
        }
    }
}

impl Refusal {
    pub fn invalid(field: &str, message: impl Into<String>) -> Refusal {
        let message = message.into();
        match field {
            "" => Refusal::Invalid {
                field: None,
                message,
            },
            field => Refusal::Invalid {
                message: format!("{field}: {message}"),
                field: Some(field.to_string()),
            },
        }
    }

    /// A validation error about one record (its keys read `users[I].field`): the field within
    /// the record.
    fn from_config(error: &config::Error) -> Refusal {
        let text = error.to_string();
        let Some(key) = error.key() else {
            return Refusal::invalid("", text);
        };
        let field = key
            .split_once(']')
            .map_or(key, |(_, rest)| rest.trim_start_matches('.'));
        let message = text
            .strip_prefix(key)
            .map_or(text.as_str(), |rest| rest.trim_start_matches(':').trim());
        Refusal::invalid(field, message)
    }
}

/// A record to save through the API or the CLI: as the file would declare it, plus, for a
/// user, `password` in clear (hashed here with argon2id) or a `password_hash` (neither keeps
/// the stored password); for a connection, `client_secret` (sealed apart; without it, and
/// without another credential, the stored secret stays).
pub struct Change {
    pub section: Section,
    pub name: String,
    pub fields: Map<String, Value>,
    /// Only if there is none of that name.
    pub create: bool,
}

/// Validates `change` among the records of `store` (with `file`'s service sections), the way
/// the file's records are validated, and stores it; answers the stored record. The caller puts
/// it in force. A saved connection is enabled again, which is announced on `events` (a server's
/// bus; none from the CLI).
pub async fn save(
    store: &Store,
    file: &Config,
    events: Option<&Events>,
    change: Change,
) -> Result<Record, Refusal> {
    let Change {
        section,
        name,
        mut fields,
        create,
    } = change;
    let what = format!("{} {name}", section.one());
    match fields.get("name") {
        None => {
            fields.insert("name".into(), Value::String(name.clone()));
        }
        Some(given) if given.as_str() == Some(name.as_str()) => {}
        Some(_) => {
            return Err(Refusal::invalid(
                "name",
                format!("differs from the {what}'s name"),
            ));
        }
    }
    let stored = store.get(section, &name).await?;
    absolute_locals(section, &fields, stored.as_ref())?;
    if let Some(stored) = &stored {
        if let Some(file) = &stored.managed_by {
            return Err(Refusal::Managed {
                what,
                file: file.clone(),
            });
        }
        if create {
            return Err(Refusal::Exists(what));
        }
    }
    let secret = match section {
        Section::Users => {
            set_password(&mut fields, stored.as_ref()).await?;
            Secret::Keep
        }
        Section::Connections => connection_secret(&mut fields, stored.as_ref())?,
        Section::Syncs => Secret::Keep,
    };
    let entry = Entry {
        name: name.clone(),
        record: Value::Object(fields),
        secret: match &secret {
            Secret::Keep => stored
                .as_ref()
                .and_then(|r| r.secret.as_ref())
                .map(SecretText::from),
            Secret::Clear => None,
            Secret::Set(value) => Some(SecretText::from(value)),
        },
    };
    check(store, file, section, &entry)
        .await
        .map_err(Refusal::Failed)?
        .map_err(|invalid| Refusal::from_config(&invalid))?;
    let write = match &secret {
        Secret::Keep => SecretWrite::Keep,
        Secret::Clear => SecretWrite::Clear,
        Secret::Set(value) => SecretWrite::Set(value),
    };
    store
        .put(section, &name, &entry.record, write, By::Api)
        .await?;
    if section == Section::Connections {
        // Saving a connection re-enables it, changed or not, on every instance.
        crate::connections::health::enable_in(store, &name, "its record was saved", events).await?;
    }
    store
        .get(section, &name)
        .await?
        .ok_or(Refusal::NotFound(what))
}

/// Deletes `name` of `section` (not one the file manages). A connection that users or sync
/// jobs use is refused with their names; a connection deleted loses its sign-in. The caller
/// puts the change in force.
pub async fn delete(store: &Store, section: Section, name: &str) -> Result<(), Refusal> {
    if section == Section::Connections {
        let (records, _) = store.records().await?;
        let uses = |record: &Value| {
            let mounts = record.get("mounts").and_then(Value::as_array);
            record.get("connection").and_then(Value::as_str) == Some(name)
                || mounts.is_some_and(|m| {
                    m.iter()
                        .any(|m| m.get("connection").and_then(Value::as_str) == Some(name))
                })
        };
        let using: Vec<String> = records
            .users
            .iter()
            .chain(&records.syncs)
            .filter(|e| uses(&e.record))
            .map(|e| e.name.clone())
            .collect();
        if !using.is_empty() {
            return Err(Refusal::InUse(format!(
                "connection {name} is used by {}: change or delete them first",
                using.join(", ")
            )));
        }
    }
    if !store.delete(section, name, By::Api).await? {
        return Err(Refusal::NotFound(format!("{} named {name}", section.one())));
    }
    if section == Section::Connections {
        // A connection made again under this name must be signed in again.
        store.delete_grant(name).await?;
    }
    Ok(())
}

/// Refuses a new relative `local` folder (a sync job's, a user's mount's): the file's are
/// relative to the file, and a record made through the API or the CLI has no file to be
/// relative to. One the stored record has already is kept (records saved before this rule).
fn absolute_locals(
    section: Section,
    fields: &Map<String, Value>,
    stored: Option<&Record>,
) -> Result<(), Refusal> {
    let locals = |fields: &Map<String, Value>| -> Vec<(String, Value)> {
        match section {
            Section::Syncs => fields
                .get("local")
                .map(|l| ("local".to_string(), l.clone()))
                .into_iter()
                .collect(),
            Section::Users => fields
                .get("mounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, m)| Some((format!("mounts[{i}].local"), m.get("local")?.clone())))
                .collect(),
            Section::Connections => Vec::new(),
        }
    };
    let kept = match stored.map(|r| &r.record) {
        Some(Value::Object(stored)) => locals(stored),
        _ => Vec::new(),
    };
    for (field, local) in locals(fields) {
        let relative = local
            .as_str()
            .is_some_and(|l| !std::path::Path::new(l).is_absolute());
        if relative && !kept.iter().any(|(_, k)| *k == local) {
            return Err(Refusal::invalid(
                &field,
                "give an absolute path (a record made through the API or the CLI has no \
                 configuration file for a relative one to start from)",
            ));
        }
    }
    Ok(())
}

/// What a save does to a connection's secret.
enum Secret {
    Keep,
    Clear,
    Set(config::Secret),
}

/// Takes a connection's secret (`client_secret`, or the certificate's key as PEM text) out of
/// its fields: set it; or keep the stored one when the record leaves it out and keeps the
/// stored credential's kind (a certificate without `key`, or a client-secret connection without
/// `client_secret`); else clear it.
fn connection_secret(
    fields: &mut Map<String, Value>,
    stored: Option<&Record>,
) -> Result<Secret, Refusal> {
    match config::take_secret(fields) {
        Some(Value::String(value)) if !value.is_empty() => {
            Ok(Secret::Set(config::Secret::new(value)))
        }
        Some(_) => Err(Refusal::invalid(
            "client_secret",
            "must be a non-empty string",
        )),
        None => {
            let kept = stored
                .filter(|s| s.secret.is_some())
                .and_then(|s| match &s.record {
                    Value::Object(old) => Some(secret_slot(old)),
                    _ => None,
                });
            match secret_slot(fields) {
                Some(slot) if kept == Some(Some(slot)) => Ok(Secret::Keep),
                _ => Ok(Secret::Clear),
            }
        }
    }
}

/// Where a connection's fields would take a stored secret back: `client_secret` for a
/// client-secret connection, `certificate.key` for a certificate given without its key; None
/// for any other (delegated, or a key file named).
fn secret_slot(fields: &Map<String, Value>) -> Option<&'static str> {
    match (fields.get("certificate"), fields.contains_key("auth")) {
        (Some(Value::Object(certificate)), _) if !certificate.contains_key("key") => {
            Some("certificate.key")
        }
        (None, false) => Some("client_secret"),
        _ => None,
    }
}

/// Turns `password` (clear) into `password_hash`; with neither, keeps the hash stored.
async fn set_password(
    fields: &mut Map<String, Value>,
    stored: Option<&Record>,
) -> Result<(), Refusal> {
    match (
        fields.remove("password"),
        fields.contains_key("password_hash"),
    ) {
        (Some(_), true) => Err(Refusal::invalid(
            "password",
            "give password or password_hash, not both",
        )),
        (Some(Value::String(password)), false) => {
            if password.is_empty() {
                return Err(Refusal::invalid("password", "must not be empty"));
            }
            let hash = tokio::task::spawn_blocking(move || crate::users::hash_password(&password))
                .await
                .map_err(|e| Refusal::Failed(format!("hashing the password: {e}")))?;
            fields.insert("password_hash".into(), Value::String(hash));
            Ok(())
        }
        (Some(_), false) => Err(Refusal::invalid("password", "must be a string")),
        (None, true) => Ok(()),
        (None, false) => {
            let kept = stored.and_then(|r| r.record.get("password_hash")).cloned();
            if let Some(hash) = kept {
                fields.insert("password_hash".into(), hash);
            }
            Ok(())
        }
    }
}

/// A record of `section` as the API and the CLI show it: a user without its password hash
/// (with whether it has one), a connection without its secret (with whether it has one), who
/// manages it, its revision, and whether it is in force (when known: a record that no longer
/// validates is not).
pub fn view(section: Section, record: &Record, in_force: Option<bool>) -> Value {
    let mut fields = match &record.record {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    match section {
        Section::Users => {
            let has_password = fields.remove("password_hash").is_some();
            fields.insert("has_password".into(), has_password.into());
        }
        Section::Connections => {
            let has = |slot| record.secret.is_some() && secret_slot(&fields) == Some(slot);
            let (secret, key) = (has("client_secret"), has("certificate.key"));
            fields.insert("has_client_secret".into(), secret.into());
            if secret_slot(&fields) == Some("certificate.key") {
                fields.insert("has_private_key".into(), key.into());
            }
        }
        Section::Syncs => {}
    }
    fields.insert("managed_by".into(), json!(record.managed_by));
    fields.insert("revision".into(), record.revision.into());
    fields.insert("updated_at".into(), record.updated_at.into());
    if let Some(in_force) = in_force {
        fields.insert("in_force".into(), in_force.into());
    }
    Value::Object(fields)
}
