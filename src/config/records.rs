//! The configuration as records, and back: what the state store keeps of `[[users]]`,
//! `[[connections]]` and `[[syncs]]`, and a configuration assembled from the file's service
//! sections plus the records the store holds.
//!
//! A record is the JSON of one entry exactly as the file would declare it (the same keys, the
//! same values, relative paths and `env:`/`file:` references unresolved). A connection's
//! `client_secret` is taken out of its record and kept apart ([`Entry::secret`]), so that the
//! store can seal it; it is put back only in memory, to validate. Assembling runs the file's own
//! validation over the whole: one code path checks what the file declares and what the API
//! writes.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Config, Error, Pem, Secret};

/// The three kinds of records, as the file names their sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Users,
    Connections,
    Syncs,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Users, Section::Connections, Section::Syncs];

    /// The word for one, in messages.
    pub fn one(self) -> &'static str {
        match self {
            Section::Users => "user",
            Section::Connections => "connection",
            Section::Syncs => "sync job",
        }
    }

    /// The array's key in the file (`users`, `connections`, `syncs`).
    pub fn key(self) -> &'static str {
        match self {
            Section::Users => "users",
            Section::Connections => "connections",
            Section::Syncs => "syncs",
        }
    }
}

/// One record: its name, the JSON the file would declare, and a connection's secret apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub record: Value,
    pub secret: Option<SecretText>,
}

/// A `client_secret` as written: a value, or an `env:`/`file:` reference. Compared by value
/// (to tell whether a record changed); printed as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(***)")
    }
}

impl From<&Secret> for SecretText {
    fn from(secret: &Secret) -> SecretText {
        SecretText(secret.expose().to_string())
    }
}

/// Records of every section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub users: Vec<Entry>,
    pub connections: Vec<Entry>,
    pub syncs: Vec<Entry>,
}

impl Records {
    pub fn of(&self, section: Section) -> &Vec<Entry> {
        match section {
            Section::Users => &self.users,
            Section::Connections => &self.connections,
            Section::Syncs => &self.syncs,
        }
    }

    pub fn of_mut(&mut self, section: Section) -> &mut Vec<Entry> {
        match section {
            Section::Users => &mut self.users,
            Section::Connections => &mut self.connections,
            Section::Syncs => &mut self.syncs,
        }
    }

    /// The records `table` declares (a parsed file). Entries without a string `name` are left
    /// out: the file's validation has refused them already.
    fn declared(table: &toml::Table) -> Records {
        let mut records = Records::default();
        for section in Section::ALL {
            let Some(toml::Value::Array(items)) = table.get(section.key()) else {
                continue;
            };
            for item in items {
                let Ok(mut record) = serde_json::to_value(item) else {
                    continue;
                };
                let Some(name) = record.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let name = name.to_string();
                let secret = match (section, record.as_object_mut()) {
                    (Section::Connections, Some(fields)) => take_secret(fields)
                        .and_then(|v| v.as_str().map(|s| SecretText(s.to_string()))),
                    _ => None,
                };
                records.of_mut(section).push(Entry {
                    name,
                    record,
                    secret,
                });
            }
        }
        records
    }
}

/// Where a configuration came from, to assemble it again with other records: the file's
/// parsed TOML, its name, the environment it was read with and the directory relative paths start
/// from. Printed without any of it but the name (the text may hold secrets).
#[derive(Clone)]
pub struct Source(Arc<Text>);

struct Text {
    /// The file, parsed (empty if it does not parse: no configuration is made from it then).
    table: toml::Table,
    origin: String,
    env: HashMap<String, String>,
    /// Whether `SPGATE_...` variables of `env` override the file's values.
    overrides: bool,
    base: PathBuf,
    declared: Records,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({})", self.0.origin)
    }
}

impl Source {
    pub(super) fn new(
        text: &str,
        origin: &str,
        env: HashMap<String, String>,
        overrides: bool,
        base: PathBuf,
    ) -> Source {
        let table: toml::Table = text.parse().unwrap_or_default();
        let declared = Records::declared(&table);
        Source(Arc::new(Text {
            table,
            origin: origin.to_string(),
            env,
            overrides,
            base,
            declared,
        }))
    }

    /// The file's name (`<string>` when it came from a string).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// The records the file itself declares.
    pub fn declared(&self) -> &Records {
        &self.0.declared
    }

    /// Both stages over `text` (this file's, or one assembled from it) with this source's
    /// environment and base directory.
    pub(super) fn assemble(&self, text: &str) -> Result<Config, Error> {
        let source = &self.0;
        let lookup = |var: &str| source.env.get(var).cloned();
        let environment = match source.overrides {
            true => Some(super::overrides(&source.env)?),
            false => None,
        };
        let mut config = super::build(text, &source.origin, environment, &lookup, &source.base)?;
        config.source = self.clone();
        Ok(config)
    }
}

impl Config {
    /// This configuration's service sections with `records` in place of the file's own
    /// `[[users]]`, `[[connections]]` and `[[syncs]]`, validated as a whole. Errors name keys as
    /// `users[I]...` with `I` the record's index in `records`.
    pub fn with_records(&self, records: &Records) -> Result<Config, Error> {
        let mut table = self.source.0.table.clone();
        for section in Section::ALL {
            let items = records
                .of(section)
                .iter()
                .map(|entry| {
                    let mut record = entry.record.clone();
                    if let (Some(secret), Some(fields)) = (&entry.secret, record.as_object_mut()) {
                        put_secret(fields, &secret.0);
                    }
                    to_toml(&format!("{}.{}", section.key(), entry.name), record)
                })
                .collect::<Result<Vec<_>, _>>()?;
            table.insert(section.key().to_string(), toml::Value::Array(items));
        }
        let text = toml::to_string(&table).map_err(|e| {
            Error::invalid(
                "records",
                format!("cannot be written as a configuration: {e}"),
            )
        })?;
        self.source.assemble(&text)
    }
}

/// Takes a connection's secret out of its fields, for the store to seal apart: its
/// `client_secret`, else its certificate's private key when that is PEM text (a key file's path
/// stays in the record).
pub fn take_secret(fields: &mut Map<String, Value>) -> Option<Value> {
    if let Some(secret) = fields.remove("client_secret") {
        return Some(secret);
    }
    let certificate = fields.get_mut("certificate")?.as_object_mut()?;
    let text = certificate.get("key")?.as_str().is_some_and(Pem::is_text);
    text.then(|| certificate.remove("key")).flatten()
}

/// Puts back what [`take_secret`] took: as the certificate's key when the record has a
/// certificate without one, else as `client_secret`.
pub fn put_secret(fields: &mut Map<String, Value>, secret: &str) {
    let value = Value::String(secret.to_string());
    match fields.get_mut("certificate").and_then(Value::as_object_mut) {
        Some(certificate) if !certificate.contains_key("key") => {
            certificate.insert("key".into(), value);
        }
        _ => {
            fields.insert("client_secret".into(), value);
        }
    }
}

/// Which record a validation error of [`Config::with_records`] is about: its section and index.
pub fn culprit(error: &Error) -> Option<(Section, usize)> {
    let key = error.key()?;
    Section::ALL.into_iter().find_map(|section| {
        let index = key.strip_prefix(section.key())?.strip_prefix('[')?;
        let (index, _) = index.split_once(']')?;
        Some((section, index.parse().ok()?))
    })
}

/// `record` as a TOML value; nulls (which TOML lacks) mean "not given" and are dropped.
fn to_toml(key: &str, record: Value) -> Result<toml::Value, Error> {
    fn strip(value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
            other => other,
        }
    }
    if !record.is_object() {
        return Err(Error::invalid(key, "a record must be a JSON object"));
    }
    toml::Value::try_from(strip(record))
        .map_err(|e| Error::invalid(key, format!("not a configuration value: {e}")))
}
